//! One action under the active and the candidate set.

use serde::{Deserialize, Serialize};

use crate::policy::{Action, CompiledPolicySet, Decision, Tier};

/// What one set decided: the tier and the deciding rule ids (sorted).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Verdict {
    /// The tier (or deny).
    pub tier: Tier,
    /// The deciding rules' ids, sorted.
    pub rules: Vec<String>,
}

impl Verdict {
    /// The verdict of `decision`.
    pub fn of(decision: &Decision) -> Verdict {
        let mut rules: Vec<String> = decision.rules.iter().map(|r| r.id.to_string()).collect();
        rules.sort();
        rules.dedup();
        Verdict {
            tier: decision.tier,
            rules,
        }
    }
}

/// A decision that would differ under the candidate set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What the set in force decided.
    pub active: Verdict,
    /// What the candidate would decide.
    pub candidate: Verdict,
}

impl Difference {
    /// `tier` when the tier changes, else `rules` (same tier, other
    /// deciding rules).
    pub fn kind(&self) -> &'static str {
        if self.active.tier == self.candidate.tier {
            "rules"
        } else {
            "tier"
        }
    }
}

/// Decides `action` under `candidate` and compares with the `active`
/// decision: `None` when tier and deciding rules are the same.
pub fn compare(
    active: &Decision,
    candidate: &CompiledPolicySet,
    action: &Action,
) -> Option<Difference> {
    let active = Verdict::of(active);
    let candidate = Verdict::of(&candidate.decide(action));
    (active != candidate).then_some(Difference { active, candidate })
}
