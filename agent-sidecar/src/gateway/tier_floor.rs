//! [`TierFloor`]: a minimum tier the behavioural detectors can impose on
//! the agent for a while (a detector's `raise_tier` response): every call
//! decided below it is raised to it (tier 3: every call needs an
//! approver), with the alert named among the deciding rules. Checking it
//! is one atomic load while no floor is set.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use crate::policy::{DecidingRule, Decision, Tier};

/// The deciding rule's id of a raised minimum tier.
pub const FLOOR_RULE: &str = "detection.min_tier";

/// The tier of a floor and the alert that set it.
type FloorState = Option<(Tier, Arc<str>)>;

/// The agent's minimum tier until a time. Clones share it.
#[derive(Clone, Default)]
pub struct TierFloor {
    /// Unix ms until which the floor holds; 0 when none is set.
    until: Arc<AtomicU64>,
    state: Arc<Mutex<FloorState>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TierFloor {
    /// Raises the minimum tier to `tier` until `until_ms` (Unix ms), for
    /// `reason` (the alert). A higher floor or a later end already set is
    /// kept: floors only tighten.
    pub fn raise(&self, tier: Tier, until_ms: u64, reason: &str) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let active = self.until.load(Ordering::Acquire) > now_ms();
        let tier = match (*s).as_ref() {
            Some((t, _)) if active && *t > tier => *t,
            _ => tier,
        };
        *s = Some((tier, reason.into()));
        self.until.fetch_max(until_ms, Ordering::AcqRel);
    }

    /// The floor in force: its tier, reason and end (Unix ms).
    pub fn current(&self) -> Option<(Tier, Arc<str>, u64)> {
        let until = self.until.load(Ordering::Acquire);
        if until == 0 || until <= now_ms() {
            return None;
        }
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.as_ref().map(|(t, r)| (*t, r.clone(), until))
    }

    /// `decision`, raised to the floor when one is in force and the
    /// decision is below it.
    pub fn apply(&self, mut decision: Decision) -> Decision {
        if self.until.load(Ordering::Relaxed) == 0 {
            return decision;
        }
        let Some((tier, reason, _)) = self.current() else {
            return decision;
        };
        if decision.tier >= tier {
            return decision;
        }
        decision.tier = tier;
        decision.reason = format!(
            "{} (raised to tier {} by a behavioural alert: {reason})",
            decision.reason,
            tier.rank()
        );
        decision.rules = vec![DecidingRule {
            id: FLOOR_RULE.into(),
            level: "detection".into(),
            source: reason,
        }];
        decision
    }
}

#[cfg(test)]
mod tests;
