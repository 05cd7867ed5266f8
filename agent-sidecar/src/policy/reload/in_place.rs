//! What a set written in place may change on its own. A file rewritten in
//! place (truncated, then written in several writes), deleted and
//! recreated, or a directory updated file by file passes through states
//! that parse and compile but hold only part of the new set: every prefix
//! of the new files. Such a state may add (the added part is in the final
//! set too) but may not take anything away, so a set read after in-place
//! writes is put in force only if, compared to the set in force, it only
//! adds rules, tools, actions, agents or overlays, raises rule tiers,
//! changes the label or an egress list's entries. Anything else (a rule
//! removed, lowered or rewritten, a default, a tool or an agent changed or
//! removed) must be published atomically (a rename into place, a symlink
//! swap) or vouched for by the bundle manifest.

use std::collections::HashMap;

use crate::policy::{
    diff::{Change, diff},
    set::CompiledPolicySet,
};

/// The changes from `old` to `new` that a write in place may not make,
/// described as `policy diff` prints them; empty if there are none.
pub(crate) fn takes_away(old: &CompiledPolicySet, new: &CompiledPolicySet) -> Vec<String> {
    let new_rules: HashMap<&str, usize> = new
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_ref(), i))
        .collect();
    let mut out = Vec::new();
    for change in diff(old, new).changes {
        match &change {
            Change::Added { .. } => {}
            Change::Changed { item, .. } if item == "label" || item.starts_with("egress of ") => {}
            Change::Changed {
                item,
                old: o,
                new: n,
                ..
            } => {
                if let Some(id) = item.strip_prefix("rule ")
                    && only_raised(old, new, id, &new_rules)
                {
                    continue;
                }
                out.push(format!("~ {item}: `{o}` -> `{n}`"));
            }
            Change::Removed {
                item,
                old: o,
                source,
            } => {
                out.push(format!("- {item}: {o} [{source}]"));
            }
        }
    }
    out
}

/// Whether rule `id` only got a higher tier (or quarantine) in `new`.
fn only_raised(
    old: &CompiledPolicySet,
    new: &CompiledPolicySet,
    id: &str,
    new_rules: &HashMap<&str, usize>,
) -> bool {
    let Some(o) = old.rules.iter().find(|r| r.id.as_ref() == id) else {
        return false;
    };
    let Some(n) = new_rules.get(id).map(|&i| &new.rules[i]) else {
        return false;
    };
    let level = |s: &CompiledPolicySet, scope| s.scopes[scope as usize].level.clone();
    let overrides =
        |s: &CompiledPolicySet, r: Option<u32>| r.map(|i| s.rules[i as usize].id.clone());
    n.tier >= o.tier
        && (n.quarantine || !o.quarantine)
        && n.summary == o.summary
        && level(old, o.scope) == level(new, n.scope)
        && overrides(old, o.overrides) == overrides(new, n.overrides)
}
