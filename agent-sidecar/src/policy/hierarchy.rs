//! How the documents of a set relate: one base; teams, roles and overlays
//! under it; agents under their team (or the base) and their roles. Checks
//! that every reference resolves and every name is unique.

use std::collections::HashMap;

use super::{
    document::{Document, Kind, Parsed},
    error::Problem,
    links::Hierarchy,
    location::Location,
};

impl Hierarchy {
    /// Links the documents; problems are appended and `None` returned when
    /// the links cannot be made.
    pub(crate) fn build(
        docs: &[Parsed],
        root: Location,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let before = problems.len();
        let bases: Vec<usize> = (0..docs.len())
            .filter(|&i| docs[i].doc.kind() == Kind::Base)
            .collect();
        let base = match bases.as_slice() {
            [] => {
                problems.push(Problem::new(
                    root,
                    "the policy set has no `kind: base` document",
                    "add the organisation's policy, e.g. org.yaml with `kind: base`, `name` and `label`",
                ));
                return None;
            }
            [b, rest @ ..] => {
                for &other in rest {
                    problems.push(
                        Problem::new(
                            docs[other].at("kind"),
                            "a second `kind: base` document",
                            "a policy set has exactly one base document; make this one a team, role or overlay, or merge it into the base",
                        )
                        .with_related(docs[*b].at("kind"), "the base document"),
                    );
                }
                *b
            }
        };
        let mut names: [HashMap<String, usize>; 5] = Default::default();
        for (i, p) in docs.iter().enumerate() {
            let kind = p.doc.kind();
            if kind == Kind::Base {
                continue;
            }
            let name = p.doc.name().to_string();
            let key = p.doc.name_key();
            if name.trim().is_empty() {
                problems.push(Problem::new(
                    p.at(key),
                    format!("`{key}` is empty"),
                    format!("give the {} a {key}", kind.as_str()),
                ));
                continue;
            }
            if let Some(&prev) = names[kind as usize].get(&name) {
                problems.push(
                    Problem::new(
                        p.at(key),
                        format!("{} `{name}` is defined twice", kind.as_str()),
                        format!(
                            "each {} is defined by one document; merge the two",
                            kind.as_str()
                        ),
                    )
                    .with_related(docs[prev].at(key), "first defined here"),
                );
                continue;
            }
            names[kind as usize].insert(name, i);
        }
        let [_, teams, roles, agents, overlays] = names;
        let mut parents = vec![Vec::new(); docs.len()];
        let Document::Base(base_doc) = &docs[base].doc else {
            unreachable!("base index holds the base document")
        };
        for (i, p) in docs.iter().enumerate() {
            match &p.doc {
                Document::Base(_) => {}
                Document::Team(_) | Document::Role(_) => parents[i].push(base),
                Document::Overlay(o) => {
                    parents[i].push(base);
                    if !base_doc.environments.contains(&o.environment) {
                        problems.push(
                            Problem::new(
                                p.at("environment"),
                                format!("environment `{}` is not one of the base's environments", o.environment),
                                format!(
                                    "use one of [{}] or add it to `environments` in the base document",
                                    base_doc.environments.join(", ")
                                ),
                            )
                            .with_related(docs[base].at("environments"), "environments are declared here"),
                        );
                    }
                }
                Document::Agent(a) => {
                    match &a.team {
                        None => parents[i].push(base),
                        Some(t) => match teams.get(t) {
                            Some(&ti) => parents[i].push(ti),
                            None => problems.push(Problem::new(
                                p.at("team"),
                                format!("team `{t}` is not defined"),
                                known("teams", &teams, "add a `kind: team` document with that name or fix the spelling"),
                            )),
                        },
                    }
                    for (ri, r) in a.roles.iter().enumerate() {
                        match roles.get(r) {
                            Some(&role) if parents[i].contains(&role) => problems.push(Problem::new(
                                p.at(&format!("roles[{ri}]")),
                                format!("role `{r}` is listed twice"),
                                "list each role once",
                            )),
                            Some(&role) => parents[i].push(role),
                            None => problems.push(Problem::new(
                                p.at(&format!("roles[{ri}]")),
                                format!("role `{r}` is not defined"),
                                known("roles", &roles, "add a `kind: role` document with that name or fix the spelling"),
                            )),
                        }
                    }
                }
            }
        }
        (problems.len() == before).then_some(Hierarchy {
            base,
            agents,
            overlays,
            parents,
        })
    }

    /// Every ancestor of `doc`, nearest first, each once.
    pub(crate) fn ancestors(&self, doc: usize) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut queue: Vec<usize> = self.parents[doc].clone();
        while let Some(d) = (!queue.is_empty()).then(|| queue.remove(0)) {
            if !out.contains(&d) {
                out.push(d);
                queue.extend(self.parents[d].iter().copied());
            }
        }
        out
    }

    /// The document whose egress allowlist bounds `doc`'s: an agent's team
    /// (or the base), a team's base.
    pub(crate) fn egress_parent(&self, doc: usize) -> Option<usize> {
        self.parents[doc].first().copied()
    }
}

fn known(what: &str, names: &HashMap<String, usize>, otherwise: &str) -> String {
    let mut list: Vec<&str> = names.keys().map(String::as_str).collect();
    list.sort_unstable();
    if list.is_empty() {
        format!("no {what} are defined; {otherwise}")
    } else {
        format!("defined {what}: {}; {otherwise}", list.join(", "))
    }
}
