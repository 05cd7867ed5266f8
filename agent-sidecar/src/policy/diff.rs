//! `policy diff`: rule-level changes between two compiled versions — rules,
//! tools and actions, defaults, egress entries, agents, overlays and the
//! label. Positions are not compared: moving a rule within its file is no
//! change; moving it to another document is.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use super::{
    defaults::DEFAULT_FIELDS,
    document::{Document, Kind},
    set::CompiledPolicySet,
    tool::{Route, Segment, ToolMatch},
};

/// What happened to one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "change")]
pub enum Change {
    /// Only in the new version.
    Added {
        /// The item (`rule finance.large-payments`).
        item: String,
        /// Its content.
        new: String,
        /// Where it is in the new version.
        source: String,
    },
    /// Only in the old version.
    Removed {
        /// The item.
        item: String,
        /// Its content.
        old: String,
        /// Where it was.
        source: String,
    },
    /// In both, with different content.
    Changed {
        /// The item.
        item: String,
        /// Old content.
        old: String,
        /// New content.
        new: String,
        /// Where it is in the new version.
        source: String,
    },
}

/// The changes between two versions.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyDiff {
    /// Old version (`label (sha256:…)`).
    pub from: String,
    /// New version.
    pub to: String,
    /// Changes, sorted by item.
    pub changes: Vec<Change>,
}

impl PolicyDiff {
    /// Whether the versions decide alike (no change found).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compares two sets.
pub fn diff(old: &CompiledPolicySet, new: &CompiledPolicySet) -> PolicyDiff {
    let a = facts(old);
    let b = facts(new);
    let mut changes = Vec::new();
    for (item, (old_v, old_src)) in &a {
        match b.get(item) {
            None => changes.push(Change::Removed {
                item: item.clone(),
                old: old_v.clone(),
                source: old_src.clone(),
            }),
            Some((new_v, src)) if new_v != old_v => changes.push(Change::Changed {
                item: item.clone(),
                old: old_v.clone(),
                new: new_v.clone(),
                source: src.clone(),
            }),
            Some(_) => {}
        }
    }
    for (item, (new_v, src)) in &b {
        if !a.contains_key(item) {
            changes.push(Change::Added {
                item: item.clone(),
                new: new_v.clone(),
                source: src.clone(),
            });
        }
    }
    changes.sort_by(|x, y| item_of(x).cmp(item_of(y)));
    PolicyDiff {
        from: old.version.to_string(),
        to: new.version.to_string(),
        changes,
    }
}

fn item_of(c: &Change) -> &str {
    match c {
        Change::Added { item, .. }
        | Change::Removed { item, .. }
        | Change::Changed { item, .. } => item,
    }
}

/// Item -> (content, where).
fn facts(set: &CompiledPolicySet) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let mut put = |item: String, value: String, source: String| {
        out.insert(item, (value, source));
    };
    put("label".into(), set.version.label.to_string(), String::new());
    let envs: Vec<&str> = set.environments.iter().map(|e| e.as_ref()).collect();
    put("environments".into(), envs.join(", "), String::new());
    let mut rates: Vec<String> = set
        .vocab
        .rates
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    rates.sort();
    put(
        "currency".into(),
        format!("{} (rates: {})", set.vocab.currency, rates.join(", ")),
        String::new(),
    );
    let join =
        |v: &[std::sync::Arc<str>]| v.iter().map(|s| s.as_ref()).collect::<Vec<_>>().join(", ");
    put(
        "vocabulary sensitivity".into(),
        join(&set.vocab.sensitivity),
        String::new(),
    );
    put(
        "vocabulary regulatory".into(),
        join(&set.vocab.regulatory),
        String::new(),
    );
    for r in &set.rules {
        let level = &set.scopes[r.scope as usize].level;
        let mut v = format!("{} when {} ({level})", r.tier, r.summary);
        if let Some(o) = r.overrides {
            v.push_str(&format!(", overrides {}", set.rules[o as usize].id));
        }
        put(format!("rule {}", r.id), v, r.source.to_string());
    }
    for t in &set.tools {
        let m = match &t.matcher {
            ToolMatch::Http(h) => format!("http host {h}"),
            ToolMatch::Mcp(s) => format!("mcp server {s}"),
        };
        let level = &set.scopes[t.scope as usize].level;
        put(
            format!("tool {}", t.name),
            format!("{m} ({level})"),
            t.location.to_string(),
        );
        for &a in &t.actions {
            let info = &set.actions[a as usize];
            let route = match &info.route {
                Route::Http { method, segments } => format!(
                    "{method} /{}",
                    segments.iter().map(segment).collect::<Vec<_>>().join("/")
                ),
                Route::Mcp(name) => format!("mcp tool {name}"),
            };
            let tier = info
                .baseline
                .as_ref()
                .map_or("default".to_string(), |b| b.tier.as_str().to_string());
            let mut attrs = Vec::new();
            for attr in super::attribute::Attr::ALL {
                if let Some(src) = &info.sources[attr as usize] {
                    attrs.push(format!("{} from {}", attr.name(), src.from));
                }
            }
            let redact = set
                .gateway
                .redactions
                .get(&t.name)
                .and_then(|a| a.get(&info.name))
                .map(|r| redaction_summary(r))
                .unwrap_or_default();
            put(
                format!("action {}", info.qualified),
                format!(
                    "{route}, baseline tier {tier}, attributes [{}]{redact}",
                    attrs.join("; ")
                ),
                info.location.to_string(),
            );
        }
    }
    for (file, doc) in documents(set) {
        let level = format!("{} {}", doc.kind().as_str(), doc.name());
        if let Some(d) = doc.defaults() {
            for (i, t) in [d.unknown, d.missing_attribute, d.action]
                .into_iter()
                .enumerate()
            {
                if let Some(t) = t {
                    put(
                        format!("defaults.{} of {level}", DEFAULT_FIELDS[i]),
                        t.as_str().into(),
                        file.clone(),
                    );
                }
            }
        }
        if let Some(e) = doc.egress() {
            let entries: Vec<String> = e
                .allow
                .iter()
                .map(|x| format!("{} {:?}", x.target, x.protocol).to_lowercase())
                .collect();
            put(
                format!("egress of {level}"),
                format!("[{}]", entries.join(", ")),
                file.clone(),
            );
        }
        if let Document::Agent(a) = &doc {
            put(
                format!("agent {}", a.id),
                format!(
                    "owner {}, team {}, roles [{}], purpose {}",
                    a.owner,
                    a.team.as_deref().unwrap_or("-"),
                    a.roles.join(", "),
                    a.purpose
                ),
                file.clone(),
            );
        }
        if doc.kind() == Kind::Overlay {
            put(
                format!("overlay {}", doc.name()),
                "present".into(),
                file.clone(),
            );
        }
    }
    out
}

fn segment(s: &Segment) -> String {
    match s {
        Segment::Literal(l) => l.clone(),
        Segment::Param => "{}".into(),
        Segment::Rest => "*".into(),
    }
}

/// The documents of a compiled set, re-read from its snapshot (it compiled,
/// so they parse).
fn documents(set: &CompiledPolicySet) -> Vec<(String, Document)> {
    set.snapshot
        .files
        .iter()
        .filter_map(|f| {
            let name = set.snapshot.display_name(&f.path);
            super::document::parse(name.clone(), &f.text)
                .ok()
                .map(|p| (name.to_string(), p.doc))
        })
        .collect()
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- {}", self.from)?;
        writeln!(f, "+++ {}", self.to)?;
        if self.changes.is_empty() {
            return writeln!(f, "no rule-level changes");
        }
        for c in &self.changes {
            match c {
                Change::Added { item, new, source } => {
                    writeln!(f, "+ {item}: {new}{}", at(source))?;
                }
                Change::Removed { item, old, source } => {
                    writeln!(f, "- {item}: {old}{}", at(source))?;
                }
                Change::Changed {
                    item,
                    old,
                    new,
                    source,
                } => {
                    writeln!(f, "~ {item}{}", at(source))?;
                    writeln!(f, "    - {old}")?;
                    writeln!(f, "    + {new}")?;
                }
            }
        }
        let count = |k: fn(&Change) -> bool| self.changes.iter().filter(|c| k(c)).count();
        writeln!(
            f,
            "{} added, {} removed, {} changed",
            count(|c| matches!(c, Change::Added { .. })),
            count(|c| matches!(c, Change::Removed { .. })),
            count(|c| matches!(c, Change::Changed { .. }))
        )
    }
}

fn at(source: &str) -> String {
    if source.is_empty() {
        String::new()
    } else {
        format!("  [{source}]")
    }
}

/// `, redact [...]`: every field rule of an action, in a stable order
/// (empty when it has none): changing what records keep changes the
/// action.
fn redaction_summary(r: &super::redaction::FieldRedaction) -> String {
    let name = |m: super::redaction::RedactMethod| match m {
        super::redaction::RedactMethod::Keep => "keep",
        super::redaction::RedactMethod::Hash => "hash",
        super::redaction::RedactMethod::Drop => "drop",
    };
    let mut parts: Vec<String> = r
        .body
        .iter()
        .filter(|b| b.declared)
        .map(|b| format!("body {} {}", b.pointer, name(b.method)))
        .collect();
    parts.extend(
        r.query
            .iter()
            .map(|(q, m)| format!("query {q} {}", name(*m))),
    );
    parts.extend(
        r.headers
            .iter()
            .map(|(h, m)| format!("header {h} {}", name(*m))),
    );
    if parts.is_empty() {
        return String::new();
    }
    parts.sort();
    format!(", redact [{}]", parts.join("; "))
}

#[cfg(test)]
mod tests;
