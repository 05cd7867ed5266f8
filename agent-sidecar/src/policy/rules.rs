//! Compiling the `rules:` of every document: resolving tool and action
//! names (visible from the rule's document), checking that every attribute
//! a rule tests is declared by the tools it applies to, interning classes,
//! and resolving `overrides`.

use std::{collections::HashMap, sync::Arc};

use super::{
    action::Reversibility,
    attribute::{Attr, attr_names, reversibility_bit},
    condition::{Bound, Condition, Range, SetPred},
    document::{RangeMatch, RuleDecl, SetMatch},
    error::Problem,
    index::{RuleId, ToolId},
    links::Hierarchy,
    names::Ids,
    scoped_doc::{Doc, sees_every_tool},
    set::Rule,
    tier::Tier,
    tool::ToolTable,
    vocab::Vocab,
};

/// Compiles every rule; problems are appended.
pub(crate) fn compile_rules(
    docs: &[Doc<'_>],
    hier: &Hierarchy,
    tools: &ToolTable,
    ids: &Ids<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut by_id: HashMap<Arc<str>, RuleId> = HashMap::new();
    let mut pending_overrides = Vec::new();
    for doc in docs {
        let ancestors = hier.ancestors(doc.scope as usize);
        let visible = |t: ToolId| {
            let s = tools.tools[t as usize].scope;
            sees_every_tool(doc.doc().kind()) || s == doc.scope || ancestors.contains(&(s as usize))
        };
        for (ri, decl) in doc.doc().rules().iter().enumerate() {
            let path = format!("rules[{ri}]");
            if decl.quarantine && decl.tier != Tier::Halt {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{path}.quarantine")),
                    format!(
                        "rule `{}` quarantines at tier {}; quarantine goes with tier 4",
                        decl.id, decl.tier
                    ),
                    "set `tier: 4` (halt and escalate) or remove `quarantine`",
                ));
            }
            if decl.id.trim().is_empty() {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{path}.id")),
                    "rule `id` is empty",
                    "give every rule a unique id, e.g. `finance.payments-over-25k`",
                ));
                continue;
            }
            if let Some(&prev) = by_id.get(decl.id.as_str()) {
                problems.push(
                    Problem::new(
                        doc.parsed.at(&format!("{path}.id")),
                        format!("rule id `{}` is used twice", decl.id),
                        "rule ids are unique across the policy set; to tighten a parent's rule, give this one a new id and `overrides: PARENT_ID`",
                    )
                    .with_related(rules_loc(&rules, prev), "first used here"),
                );
                continue;
            }
            let Some(cond) = compile_when(decl, doc, &path, tools, ids.vocab, &visible, problems)
            else {
                continue;
            };
            let location = doc.parsed.at(&path);
            let id: Arc<str> = decl.id.as_str().into();
            let rule_id = rules.len() as RuleId;
            by_id.insert(id.clone(), rule_id);
            if let Some(o) = &decl.overrides {
                pending_overrides.push((
                    rule_id,
                    o.clone(),
                    doc.parsed.at(&format!("{path}.overrides")),
                    ancestors.clone(),
                ));
            }
            rules.push(Rule {
                id,
                scope: doc.scope,
                tier: decl.tier,
                summary: cond.describe(ids).into(),
                cond,
                description: decl.description.as_deref().map(Arc::from),
                overrides: None,
                quarantine: decl.quarantine,
                source: location.to_string().into(),
                location,
            });
        }
    }
    for (rule, target, at, ancestors) in pending_overrides {
        match by_id.get(target.as_str()) {
            Some(&t) if ancestors.contains(&(rules[t as usize].scope as usize)) => rules[rule as usize].overrides = Some(t),
            Some(&t) => problems.push(
                Problem::new(at, format!("`overrides: {target}` names a rule that is not in a parent document"), "a rule may only override a rule of its base, team or roles; remove `overrides` or name a parent's rule")
                    .with_related(rules[t as usize].location.clone(), "that rule"),
            ),
            None => problems.push(Problem::new(
                at,
                format!("`overrides: {target}` names no rule"),
                "name the id of a rule in a parent document",
            )),
        }
    }
    rules
}

fn rules_loc(rules: &[Rule], r: RuleId) -> super::location::Location {
    rules[r as usize].location.clone()
}

#[allow(clippy::too_many_arguments)]
fn compile_when(
    decl: &RuleDecl,
    doc: &Doc<'_>,
    path: &str,
    tools: &ToolTable,
    vocab: &Vocab,
    visible: &dyn Fn(ToolId) -> bool,
    problems: &mut Vec<Problem>,
) -> Option<Condition> {
    let before = problems.len();
    let w = &decl.when;
    let at = |key: &str| doc.parsed.at(&format!("{path}.when.{key}"));
    let mut cond = Condition::default();
    if let Some(t) = &w.tool {
        match tools.names.get(t.as_str()) {
            Some(&id) if visible(id) => cond.tool = Some(id),
            Some(&id) => problems.push(
                Problem::new(
                    at("tool"),
                    format!("tool `{t}` is not declared in this document or its parents"),
                    "declare the tool in this document, its base, team or roles, or move the rule next to the tool",
                )
                .with_related(tools.tools[id as usize].location.clone(), "the tool is declared here"),
            ),
            None => problems.push(Problem::new(at("tool"), format!("unknown tool `{t}`"), "name a tool declared under `tools:` in this document or a parent")),
        }
    }
    if let Some(a) = &w.action {
        match cond.tool {
            None if w.tool.is_none() => problems.push(Problem::new(
                at("action"),
                "`action` needs `tool`",
                "add `tool: TOOL` next to `action`",
            )),
            None => {}
            Some(t) => {
                let tool = &tools.tools[t as usize];
                match tool
                    .actions
                    .iter()
                    .find(|&&x| tools.actions[x as usize].name.as_ref() == a)
                {
                    Some(&x) => cond.action = Some(x),
                    None => problems.push(
                        Problem::new(
                            at("action"),
                            format!("tool `{}` has no action `{a}`", tool.name),
                            format!(
                                "use one of: {}",
                                tool.actions
                                    .iter()
                                    .map(|&x| tools.actions[x as usize].name.as_ref())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                        .with_related(tool.location.clone(), "the tool is declared here"),
                    ),
                }
            }
        }
    }
    cond.amount = w
        .amount
        .as_ref()
        .and_then(|r| range(r, &at("amount"), "amount", problems));
    cond.records = w
        .records
        .as_ref()
        .and_then(|r| range(r, &at("records"), "records", problems));
    let class = |m: &SetMatch, key: &str, names: &[Arc<str>], problems: &mut Vec<Problem>| {
        set(m, doc, &format!("{path}.when.{key}"), key, problems, |v| {
            names
                .iter()
                .position(|n| n.as_ref() == v)
                .map(|i| 1u64 << i)
                .ok_or_else(|| {
                    format!(
                        "use one of [{}] (the base document's `vocabulary.{key}`)",
                        names
                            .iter()
                            .map(|n| n.as_ref())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
    };
    cond.sensitivity = w
        .sensitivity
        .as_ref()
        .and_then(|m| class(m, "sensitivity", &vocab.sensitivity, problems));
    cond.regulatory = w
        .regulatory
        .as_ref()
        .and_then(|m| class(m, "regulatory", &vocab.regulatory, problems));
    cond.reversibility = w.reversibility.as_ref().and_then(|m| {
        set(
            m,
            doc,
            &format!("{path}.when.reversibility"),
            "reversibility",
            problems,
            |v| {
                Reversibility::parse(v)
                    .map(reversibility_bit)
                    .ok_or_else(|| "use reversible, compensable or irreversible".to_string())
            },
        )
    });
    if problems.len() != before {
        return None;
    }
    check_declared(&cond, doc, path, tools, visible, problems);
    (problems.len() == before).then_some(cond)
}

/// A rule may only test attributes the tools it applies to declare.
fn check_declared(
    cond: &Condition,
    doc: &Doc<'_>,
    path: &str,
    tools: &ToolTable,
    visible: &dyn Fn(ToolId) -> bool,
    problems: &mut Vec<Problem>,
) {
    let tested = cond.attrs();
    if tested == 0 {
        return;
    }
    let (declared, what, related) = match (cond.tool, cond.action) {
        (_, Some(a)) => {
            let info = &tools.actions[a as usize];
            (
                info.declared,
                format!("action `{}`", info.qualified),
                Some(info.location.clone()),
            )
        }
        (Some(t), None) => {
            let tool = &tools.tools[t as usize];
            let d = tool
                .actions
                .iter()
                .fold(0, |m, &a| m | tools.actions[a as usize].declared);
            (
                d,
                format!("no action of tool `{}`", tool.name),
                Some(tool.location.clone()),
            )
        }
        (None, None) => {
            let d = (0..tools.tools.len() as ToolId)
                .filter(|&t| visible(t))
                .flat_map(|t| tools.tools[t as usize].actions.iter())
                .fold(0, |m, &a| m | tools.actions[a as usize].declared);
            (d, "no tool visible from this document".to_string(), None)
        }
    };
    let missing = tested & !declared;
    if missing == 0 {
        return;
    }
    let first = Attr::ALL
        .into_iter()
        .find(|a| missing & a.bit() != 0)
        .expect("a missing attribute");
    let verb = if cond.action.is_some() {
        "does not declare"
    } else {
        "declares"
    };
    let mut p = Problem::new(
        doc.parsed.at(&format!("{path}.when.{}", first.name())),
        format!(
            "the rule tests `{}`, which {what} {verb}",
            attr_names(missing)
        ),
        format!(
            "declare where `{}` comes from under the tool's or action's `attributes:` (body, query, header or const), or remove the condition",
            first.name()
        ),
    );
    if let Some(r) = related {
        p = p.with_related(r, "declared here");
    }
    problems.push(p);
}

fn range(
    r: &RangeMatch,
    at: &super::location::Location,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<Range> {
    let mut bad = |msg: String, help: &str| {
        problems.push(Problem::new(at.clone(), msg, help.to_string()));
        None
    };
    if r.gt.is_some() && r.gte.is_some() || r.lt.is_some() && r.lte.is_some() {
        return bad(
            format!("`{what}` has both a strict and a non-strict bound on one side"),
            "keep one of `gt`/`gte` and one of `lt`/`lte`",
        );
    }
    let lo =
        r.gt.map(|v| Bound {
            value: v,
            inclusive: false,
        })
        .or(r.gte.map(|v| Bound {
            value: v,
            inclusive: true,
        }));
    let hi =
        r.lt.map(|v| Bound {
            value: v,
            inclusive: false,
        })
        .or(r.lte.map(|v| Bound {
            value: v,
            inclusive: true,
        }));
    if lo.is_none() && hi.is_none() {
        return bad(
            format!("`{what}` has no bound"),
            "give `gt`, `gte`, `lt` or `lte`",
        );
    }
    if [lo, hi].iter().flatten().any(|b| !b.value.is_finite()) {
        return bad(
            format!("`{what}` has a bound that is not a finite number"),
            "use finite numbers",
        );
    }
    let range = Range { lo, hi };
    if range.is_empty() {
        return bad(
            format!("no `{what}` can satisfy these bounds"),
            "make the lower bound smaller than the upper bound",
        );
    }
    Some(range)
}

fn set(
    m: &SetMatch,
    doc: &Doc<'_>,
    path: &str,
    what: &str,
    problems: &mut Vec<Problem>,
    lookup: impl Fn(&str) -> Result<u64, String>,
) -> Option<SetPred> {
    let (key, list, any) = match (&m.any_of, &m.all_of) {
        (Some(l), None) => ("any_of", l, true),
        (None, Some(l)) => ("all_of", l, false),
        _ => {
            problems.push(Problem::new(
                doc.parsed.at(path),
                format!("`{what}` needs exactly one of `any_of` and `all_of`"),
                "write e.g. `{ any_of: [pii, phi] }`",
            ));
            return None;
        }
    };
    if list.is_empty() {
        problems.push(Problem::new(
            doc.parsed.at(&format!("{path}.{key}")),
            format!("`{what}.{key}` is empty"),
            "list at least one value",
        ));
        return None;
    }
    let mut bits = 0;
    for (i, v) in list.iter().enumerate() {
        match lookup(v) {
            Ok(b) => bits |= b,
            Err(help) => {
                problems.push(Problem::new(
                    doc.parsed.at(&format!("{path}.{key}[{i}]")),
                    format!("unknown {what} value `{v}`"),
                    help,
                ));
                return None;
            }
        }
    }
    Some(if any {
        SetPred::Any(bits)
    } else {
        SetPred::All(bits)
    })
}
