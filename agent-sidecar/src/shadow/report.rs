//! The differences of a replay (or of live traffic) grouped by change.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use super::compare::{Difference, Verdict};
use crate::policy::Tier;

/// How many example audit record ids a change keeps.
pub(super) const EXAMPLES: usize = 5;

/// One change: every action whose decision moves from `active` to
/// `candidate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `tier` (the tier changes) or `rules` (same tier, other rules).
    pub kind: &'static str,
    /// What the set in force decides.
    pub active: Verdict,
    /// What the candidate would decide.
    pub candidate: Verdict,
    /// How many actions.
    pub count: u64,
    /// Actions per agent.
    pub agents: BTreeMap<String, u64>,
    /// The first audit record ids of such actions (at most
    /// [`EXAMPLES`]).
    pub examples: Vec<String>,
}

/// The differences between two policy versions over a set of actions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShadowReport {
    /// The version (content hash) of the set in force.
    pub active_version: String,
    /// The version of the candidate.
    pub candidate_version: String,
    /// Actions decided under both.
    pub actions: u64,
    /// Recorded calls that could not be rebuilt into an action (no tool
    /// call details, unreadable attributes); they are not compared.
    pub skipped: u64,
    /// Actions whose decision would differ.
    pub differing: u64,
    /// The changes, most frequent first.
    pub changes: Vec<Change>,
}

impl ShadowReport {
    /// An empty report of `active` against `candidate`.
    pub fn new(active_version: &str, candidate_version: &str) -> ShadowReport {
        ShadowReport {
            active_version: active_version.to_string(),
            candidate_version: candidate_version.to_string(),
            ..ShadowReport::default()
        }
    }

    /// Counts one action decided under both; `diff` when it would differ.
    pub fn add(&mut self, record_id: &str, agent: &str, diff: Option<Difference>) {
        self.actions += 1;
        if let Some(diff) = diff {
            self.record(record_id, agent, diff);
        }
    }

    /// Counts one difference (`record_id`: the audit record that shows it).
    pub fn record(&mut self, record_id: &str, agent: &str, diff: Difference) {
        self.differing += 1;
        let i = match self
            .changes
            .iter()
            .position(|c| c.active == diff.active && c.candidate == diff.candidate)
        {
            Some(i) => i,
            None => {
                self.changes.push(Change {
                    kind: diff.kind(),
                    active: diff.active,
                    candidate: diff.candidate,
                    count: 0,
                    agents: BTreeMap::new(),
                    examples: Vec::new(),
                });
                self.changes.len() - 1
            }
        };
        let c = &mut self.changes[i];
        c.count += 1;
        *c.agents.entry(agent.to_string()).or_default() += 1;
        if c.examples.len() < EXAMPLES {
            c.examples.push(record_id.to_string());
        }
    }

    /// Sorts the changes: most actions first, then by verdicts (stable
    /// output for equal counts).
    pub fn finish(mut self) -> ShadowReport {
        self.changes.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.active, &a.candidate).cmp(&(&b.active, &b.candidate)))
        });
        self
    }
}

fn tier(t: Tier) -> String {
    match t {
        Tier::Deny => "deny".into(),
        t => format!("tier {}", t.rank()),
    }
}

fn verdict(v: &Verdict) -> String {
    format!("{} [{}]", tier(v.tier), v.rules.join(", "))
}

impl fmt::Display for ShadowReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "active {} vs candidate {}: {} actions decided, {} would differ, {} skipped",
            short(&self.active_version),
            short(&self.candidate_version),
            self.actions,
            self.differing,
            self.skipped
        )?;
        for c in &self.changes {
            writeln!(f)?;
            writeln!(
                f,
                "{} x{}: {} -> {}",
                c.kind,
                c.count,
                verdict(&c.active),
                verdict(&c.candidate)
            )?;
            let agents: Vec<String> = c.agents.iter().map(|(a, n)| format!("{a} ({n})")).collect();
            writeln!(f, "  agents:   {}", agents.join(", "))?;
            writeln!(f, "  examples: {}", c.examples.join(", "))?;
        }
        Ok(())
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
