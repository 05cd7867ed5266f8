//! "A child can tighten but never loosen": the checks that make every
//! document at most as permissive as its parents. Each error names the
//! child's place and the parent's.
//!
//! - A child's `defaults` are at least its parents'.
//! - A rule with `overrides: P` matches at least whenever `P` does, at a
//!   tier at least `P`'s.
//! - A child rule that would set a lower tier for actions a parent rule (or
//!   a parent-declared action baseline) already puts higher is refused: it
//!   could never take effect and says the opposite of what happens.
//! - A child's egress allowlist is within its parent's: every entry is
//!   covered by a parent entry (CIDR containment, same port or the parent
//!   allows every port, protocol subset). A parent without an allowlist
//!   allows nothing.

use std::collections::HashMap;

use super::{
    defaults::{DEFAULT_FIELDS, built_in},
    document::Kind,
    error::Problem,
    index::RuleId,
    links::Hierarchy,
    scoped_doc::{Doc, floors},
    set::Rule,
    tool::ToolTable,
};
use crate::egress::{AllowEntry, NamePattern, NameRule, PatternKind, Protocols, Target};

/// Runs every check; problems are appended.
pub(crate) fn check(
    docs: &[Doc<'_>],
    hier: &Hierarchy,
    tools: &ToolTable,
    rules: &[Rule],
    problems: &mut Vec<Problem>,
) {
    defaults(docs, hier, problems);
    overrides(rules, problems);
    lowering(docs, hier, tools, rules, problems);
    egress(docs, hier, problems);
}

fn defaults(docs: &[Doc<'_>], hier: &Hierarchy, problems: &mut Vec<Problem>) {
    for doc in docs {
        if doc.doc().kind() == Kind::Base {
            continue;
        }
        let Some(own) = doc.doc().defaults() else {
            continue;
        };
        let own = floors(doc, own);
        for (field, f) in own.iter().enumerate() {
            let Some(f) = f else { continue };
            // The strictest value any ancestor sets (or the built-in one
            // when none does).
            let parent = hier
                .ancestors(doc.scope as usize)
                .into_iter()
                .filter_map(|a| {
                    docs[a]
                        .doc()
                        .defaults()
                        .and_then(|d| floors(&docs[a], d)[field].clone())
                })
                .max_by_key(|p| p.tier);
            let (tier, place) = match &parent {
                Some(p) => (
                    p.tier,
                    format!(
                        "{} sets `defaults.{}: {}` at {}",
                        p.level,
                        DEFAULT_FIELDS[field],
                        p.tier.as_str(),
                        p.source
                    ),
                ),
                None => (
                    built_in(field),
                    format!("the built-in default is {}", built_in(field).as_str()),
                ),
            };
            if f.tier < tier {
                let mut p = Problem::new(
                    doc.parsed
                        .at(&format!("defaults.{}", DEFAULT_FIELDS[field])),
                    format!(
                        "`defaults.{}: {}` lowers the parent's default ({}): a child can only raise tiers",
                        DEFAULT_FIELDS[field],
                        f.tier.as_str(),
                        tier.as_str()
                    ),
                    format!(
                        "set it to {} or higher, or remove it to inherit",
                        tier.as_str()
                    ),
                );
                p = match &parent {
                    Some(pf) => p.with_related(location_of(docs, &pf.source), place),
                    None => p.with_related(docs[hier.base].parsed.at(""), place),
                };
                problems.push(p);
            }
        }
    }
}

/// The location a floor's `source` text names.
fn location_of(docs: &[Doc<'_>], source: &str) -> super::location::Location {
    for d in docs {
        let file = d.parsed.positions.file_name();
        if let Some(rest) = source
            .strip_prefix(file.as_ref())
            .and_then(|r| r.strip_prefix(':'))
        {
            let mut parts = rest.split(':').map(|n| n.parse::<u32>().unwrap_or(0));
            return super::location::Location {
                file: file.clone(),
                line: parts.next().unwrap_or(0),
                column: parts.next().unwrap_or(0),
            };
        }
    }
    super::location::Location::file(source.into())
}

fn overrides(rules: &[Rule], problems: &mut Vec<Problem>) {
    for r in rules {
        let Some(p) = r.overrides else { continue };
        let parent = &rules[p as usize];
        if r.tier < parent.tier {
            problems.push(
                Problem::new(
                    r.location.clone(),
                    format!(
                        "rule `{}` overrides `{}` with {}, lower than the parent's {}: a child can only raise tiers",
                        r.id, parent.id, r.tier, parent.tier
                    ),
                    format!("set `tier: {}` or higher", parent.tier.as_str()),
                )
                .with_related(parent.location.clone(), format!("parent rule `{}` ({}): {}", parent.id, parent.tier, parent.summary)),
            );
        } else if !parent.cond.implies(&r.cond) {
            problems.push(
                Problem::new(
                    r.location.clone(),
                    format!(
                        "rule `{}` overrides `{}` but does not match every action the parent's rule matches (child: {}; parent: {})",
                        r.id, parent.id, r.summary, parent.summary
                    ),
                    "an override may only widen the parent's condition (lower thresholds, more classes); to cover a narrower case add a separate rule without `overrides`",
                )
                .with_related(parent.location.clone(), format!("parent rule `{}`", parent.id)),
            );
        }
    }
}

/// Rules of one document, by what they select.
#[derive(Default)]
struct Index {
    global: Vec<RuleId>,
    by_tool: HashMap<u32, Vec<RuleId>>,
    by_action: HashMap<u32, Vec<RuleId>>,
}

fn lowering(
    docs: &[Doc<'_>],
    hier: &Hierarchy,
    tools: &ToolTable,
    rules: &[Rule],
    problems: &mut Vec<Problem>,
) {
    let mut index: Vec<Index> = (0..docs.len()).map(|_| Index::default()).collect();
    for (i, r) in rules.iter().enumerate() {
        let ix = &mut index[r.scope as usize];
        match (r.cond.tool, r.cond.action) {
            (_, Some(a)) => ix.by_action.entry(a).or_default().push(i as RuleId),
            (Some(t), None) => ix.by_tool.entry(t).or_default().push(i as RuleId),
            (None, None) => ix.global.push(i as RuleId),
        }
    }
    let empty = Vec::new();
    for r in rules {
        let ancestors = hier.ancestors(r.scope as usize);
        if ancestors.is_empty() {
            continue;
        }
        // Parent rules that can match whenever `r` does select a subset of
        // `r`'s tool and action.
        let found = ancestors.iter().find_map(|&a| {
            let ix = &index[a];
            let by_tool = r
                .cond
                .tool
                .and_then(|t| ix.by_tool.get(&t))
                .unwrap_or(&empty);
            let by_action = r
                .cond
                .action
                .and_then(|x| ix.by_action.get(&x))
                .unwrap_or(&empty);
            ix.global
                .iter()
                .chain(by_tool)
                .chain(by_action)
                .map(|&p| &rules[p as usize])
                .find(|p| {
                    p.tier > r.tier
                        && Some(&p.id) != r.overrides.map(|o| &rules[o as usize].id)
                        && r.cond.implies(&p.cond)
                })
        });
        if let Some(p) = found {
            problems.push(
                Problem::new(
                    r.location.clone(),
                    format!(
                        "rule `{}` sets {} where parent rule `{}` already demands {}: a child can only raise tiers, so this rule could never take effect",
                        r.id, r.tier, p.id, p.tier
                    ),
                    format!("raise the rule to {} or higher, or remove it; to change the parent's rule, change the parent", p.tier.as_str()),
                )
                .with_related(p.location.clone(), format!("parent rule `{}` ({}): {}", p.id, p.tier, p.summary)),
            );
            continue;
        }
        if let Some(a) = r.cond.action {
            let info = &tools.actions[a as usize];
            let declared_above =
                ancestors.contains(&(tools.tools[info.tool as usize].scope as usize));
            if let (Some(b), true) = (&info.baseline, declared_above)
                && b.tier > r.tier
            {
                problems.push(
                    Problem::new(
                        r.location.clone(),
                        format!(
                            "rule `{}` sets {} for action `{}`, whose baseline in a parent is {}: a child can only raise tiers",
                            r.id, r.tier, info.qualified, b.tier
                        ),
                        format!("raise the rule to {} or higher, or remove it", b.tier.as_str()),
                    )
                    .with_related(location_of(docs, &b.source), format!("`tier: {}` of action `{}`", b.tier.as_str(), info.qualified)),
                );
            }
        }
    }
}

/// Whether `child` allows nothing that `parent` does not.
pub(crate) fn entry_within(child: &AllowEntry, parent: &AllowEntry) -> bool {
    target_within(&child.target, &parent.target)
        && protocols_within(child.protocol, parent.protocol)
}

fn target_within(child: &Target, parent: &Target) -> bool {
    parent.net.contains(&child.net) && (parent.port.is_none() || parent.port == child.port)
}

fn protocols_within(child: Protocols, parent: Protocols) -> bool {
    parent == Protocols::Any || child == parent
}

fn egress(docs: &[Doc<'_>], hier: &Hierarchy, problems: &mut Vec<Problem>) {
    for doc in docs {
        let Some(own) = doc.doc().egress() else {
            continue;
        };
        let Some(mut parent) = hier.egress_parent(doc.scope as usize) else {
            continue;
        };
        // The nearest ancestor that declares an allowlist bounds this one.
        let parent_list = loop {
            if let Some(e) = docs[parent].doc().egress() {
                break Some(e);
            }
            match hier.egress_parent(parent) {
                Some(p) => parent = p,
                None => break None,
            }
        };
        let pdoc = &docs[parent];
        // Where the parent's bound is (its list, or the whole document when it
        // declares none), and what to call it.
        let bound = |key: &str, what: &str| match parent_list {
            Some(_) => (pdoc.parsed.at(key), format!("{what} of {}", pdoc.level)),
            None => (
                pdoc.parsed.at(""),
                format!(
                    "{} declares no egress allowlist, so its children may allow nothing",
                    pdoc.level
                ),
            ),
        };
        for (i, entry) in own.allow.iter().enumerate() {
            let covered =
                parent_list.is_some_and(|l| l.allow.iter().any(|p| entry_within(entry, p)));
            if covered {
                continue;
            }
            let (related, what) = bound("egress.allow", "the allowlist");
            problems.push(
                Problem::new(
                    doc.parsed.at(&format!("egress.allow[{i}]")),
                    format!(
                        "egress entry `{}` ({}) is not within the allowlist of {}: a child can never widen its parent's egress",
                        entry.target,
                        protocol_name(entry.protocol),
                        pdoc.level
                    ),
                    "narrow the entry to a network, port and protocol the parent allows, or add it to the parent first",
                )
                .with_related(related, what),
            );
        }
        for (i, entry) in own.names.iter().enumerate() {
            let covered = parent_list
                .is_some_and(|l| l.names.iter().any(|p| name_within(&entry.rule, &p.rule)));
            if covered {
                continue;
            }
            let (related, what) = bound("egress.names", "the name rules");
            problems.push(
                Problem::new(
                    doc.parsed.at(&format!("egress.names[{i}]")),
                    format!(
                        "egress name rule `{}` is not within the name rules of its parent: a child can never widen its parent's egress",
                        entry.rule
                    ),
                    "narrow the pattern, ports or protocol to what the parent allows (an exact name under a parent's wildcard, the parent's ports or fewer), or add it to the parent first",
                )
                .with_related(related, what),
            );
        }
    }
}

/// Whether every name, port and protocol `child` allows, `parent` allows
/// too, and `child` is exempt from the rebinding guard only where `parent`
/// is.
pub(crate) fn name_within(child: &NameRule, parent: &NameRule) -> bool {
    pattern_within(&child.pattern, &parent.pattern)
        && protocols_within(child.protocols, parent.protocols)
        && (!child.allow_private || parent.allow_private)
        && match (&child.ports, &parent.ports) {
            (_, None) => child.ports.as_ref().is_none_or(|p| !p.contains(&DOT_PORT)),
            (None, Some(_)) => false,
            (Some(c), Some(p)) => c.iter().all(|port| p.contains(port)),
        }
}

/// Port 853 (DNS over TLS): never implied by a rule without ports.
const DOT_PORT: u16 = 853;

fn pattern_within(child: &NamePattern, parent: &NamePattern) -> bool {
    use PatternKind::{AnyDepth, Exact, OneLabel};
    match (child.kind(), parent.kind()) {
        // An exact name is within any pattern that matches it.
        (Exact, _) => parent.matches(child.base()),
        (OneLabel, OneLabel) => child.base() == parent.base(),
        // `*.b` and `**.b` cover names below `b`: within `**.p` when `b` is
        // `p` or below it.
        (OneLabel | AnyDepth, AnyDepth) => {
            parent.base().is_empty()
                || child.base() == parent.base()
                || parent.matches(child.base())
        }
        (AnyDepth, OneLabel) | (_, Exact) => false,
    }
}

fn protocol_name(p: Protocols) -> &'static str {
    match p {
        Protocols::Any => "tcp and udp",
        Protocols::Tcp => "tcp",
        Protocols::Udp => "udp",
    }
}

#[cfg(test)]
mod tests;
