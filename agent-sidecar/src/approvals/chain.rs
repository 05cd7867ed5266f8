//! Approval chains: who may decide a held action, resolved when the
//! approval is requested and enforced at every decision.
//!
//! A [`ChainSpec`] (the `approval_chains:` entries of a policy document)
//! matches by tool and action and lists ordered [`StepSpec`]s, each a role,
//! a team (or the agent's own team) and a ceiling `up_to`. Resolving a chain
//! for a request ([`ChainSpec::resolve`]) picks the first step whose ceiling
//! covers the declared amount: lower steps may not decide it (above their
//! ceiling); higher steps become eligible one by one each time
//! `escalate_after` passes without a decision. `four_eyes` asks for two
//! distinct approvers (one deny denies); `exclude_owner` refuses the agent's
//! owner. The resolved chain ([`ResolvedChain`]) is stored in the approval
//! and records every approval so far.

use serde::{Deserialize, Serialize};

use super::directory::Approver;
pub use crate::policy::approval_chain::{ChainSpec, ChainSpecError, StepSpec};

/// What an approval request is about, for chain matching and resolution.
#[derive(Clone, Debug, Default)]
pub struct ChainRequest<'a> {
    /// The tool.
    pub tool: &'a str,
    /// The action.
    pub action: &'a str,
    /// The declared amount, in the base currency.
    pub amount: Option<f64>,
    /// The agent's team.
    pub agent_team: Option<&'a str>,
    /// The agent's owner (an approver name).
    pub owner: Option<&'a str>,
}

/// A step as resolved for one approval (the team is concrete).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedStep {
    /// The role.
    pub role: String,
    /// The team; `None` when `agent_team` was asked and the agent has no
    /// team (nobody matches: fail closed).
    pub team: Option<String>,
    /// The ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<f64>,
}

/// One recorded approval of a chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainApproval {
    /// The authenticated approver.
    pub approver: String,
    /// The step they approved as.
    pub step: usize,
    /// When, Unix milliseconds.
    pub at: u64,
}

/// A chain resolved for one approval; stored in the approval record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedChain {
    /// The chain's name.
    pub name: String,
    /// All steps.
    pub steps: Vec<ResolvedStep>,
    /// The first step whose ceiling covers the amount.
    pub first_eligible: usize,
    /// Approvals needed (2 under four-eyes).
    pub required_approvals: usize,
    /// Escalation SLA per step, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_ms: Option<u64>,
    /// The owner who may not approve, if excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_owner: Option<String>,
    /// When the approval was requested, Unix milliseconds.
    pub requested_at: u64,
    /// Approvals so far.
    #[serde(default)]
    pub approvals: Vec<ChainApproval>,
    /// Highest step already announced as escalated.
    #[serde(default)]
    pub escalated_to: usize,
}

/// Why an approver may not decide.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The approver holds no step of the chain.
    #[error("approver {0:?} holds no step of approval chain {1:?} (needs {2})")]
    NotInChain(String, String, String),
    /// The approver's steps are below the amount.
    #[error("approver {0:?} may approve up to {1} in chain {2:?}; this action needs {3}")]
    AboveCeiling(String, String, String, String),
    /// The approver's step is not eligible yet (no escalation so far).
    #[error(
        "approver {0:?} is at step {1} of chain {2:?}; steps up to {3} are eligible now (the next after the escalation SLA)"
    )]
    NotYetEligible(String, usize, String, usize),
    /// The agent's owner is excluded.
    #[error("approver {0:?} owns this agent and chain {1:?} excludes the owner")]
    Owner(String, String),
    /// Four-eyes: the same approver twice.
    #[error("approver {0:?} already approved; chain {1:?} needs {2} distinct approvers")]
    AlreadyApproved(String, String, usize),
}

impl Refusal {
    /// A short machine-readable reason (metric label, audit field).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotInChain(..) => "not_in_chain",
            Refusal::AboveCeiling(..) => "above_ceiling",
            Refusal::NotYetEligible(..) => "not_yet_eligible",
            Refusal::Owner(..) => "owner_excluded",
            Refusal::AlreadyApproved(..) => "already_approved",
        }
    }
}

/// A step of a chain that did not decide the approval, as the notifier and
/// the audit trail hear of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ChainStep<'a> {
    /// One approval of several was recorded; the call stays held.
    PartiallyApproved {
        /// Who approved.
        approver: &'a str,
        /// Approvals so far.
        have: usize,
        /// Approvals needed.
        need: usize,
    },
    /// The SLA of the eligible steps passed: `to_step` became eligible
    /// and its approvers are notified.
    Escalated {
        /// The newly eligible step (0-based).
        to_step: usize,
        /// Its role.
        role: &'a str,
        /// Its team.
        team: Option<&'a str>,
    },
    /// An approver who may not decide tried to.
    Refused {
        /// Who tried.
        approver: &'a str,
        /// The machine-readable reason ([`Refusal::reason`]).
        reason: &'static str,
        /// The full explanation.
        message: String,
    },
}

/// Who decides an approval: a name only (no approver directory: anyone
/// holding the admin token), or an approver the directory authenticated.
#[derive(Clone, Debug)]
pub enum Decider {
    /// A claimed name; an approval with a chain refuses it.
    Named(String),
    /// An authenticated approver, checked against the chain.
    Approver(Approver),
}

impl Decider {
    /// The name the decision is recorded under.
    pub fn name(&self) -> &str {
        match self {
            Decider::Named(n) => n,
            Decider::Approver(a) => &a.name,
        }
    }
}

/// The effect of an accepted approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Enough approvals: the action is approved.
    Approved,
    /// More approvals are needed (`have` of `need`): the call stays held.
    Partial {
        /// Approvals so far.
        have: usize,
        /// Approvals needed.
        need: usize,
    },
}

fn fmt_amount(a: Option<f64>) -> String {
    a.map_or_else(|| "an undeclared amount".into(), |v| format!("{v}"))
}

impl ChainSpec {
    /// Resolves the chain for `req` at `now_ms`. With no declared amount
    /// only the top step may decide (fail closed). With an amount above
    /// every ceiling, nobody may: the approval can only be denied or expire.
    pub fn resolve(&self, req: &ChainRequest<'_>, now_ms: u64) -> ResolvedChain {
        let steps: Vec<ResolvedStep> = self
            .steps
            .iter()
            .map(|s| ResolvedStep {
                role: s.role.clone(),
                team: if s.agent_team {
                    req.agent_team.map(str::to_string)
                } else {
                    s.team.clone()
                },
                up_to: s.up_to,
            })
            .collect();
        let first_eligible = match req.amount {
            Some(a) => steps
                .iter()
                .position(|s| s.up_to.is_none_or(|u| a <= u))
                .unwrap_or(steps.len()),
            None => steps
                .iter()
                .position(|s| s.up_to.is_none())
                .unwrap_or(steps.len()),
        };
        ResolvedChain {
            name: self.name.clone(),
            steps,
            first_eligible,
            required_approvals: if self.four_eyes { 2 } else { 1 },
            escalate_after_ms: self.escalate_after_secs.map(|s| s * 1000),
            excluded_owner: if self.exclude_owner {
                req.owner.map(str::to_string)
            } else {
                None
            },
            requested_at: now_ms,
            approvals: Vec::new(),
            escalated_to: first_eligible,
        }
    }
}

/// The first chain of `chains` matching the request, resolved.
pub fn resolve_first(
    chains: &[ChainSpec],
    req: &ChainRequest<'_>,
    now_ms: u64,
) -> Option<ResolvedChain> {
    chains
        .iter()
        .find(|c| c.matches(req.tool, req.action))
        .map(|c| c.resolve(req, now_ms))
}

impl ResolvedChain {
    /// The highest eligible step at `now_ms` (escalation widens the set one
    /// step per SLA period), capped at the last step.
    pub fn eligible_until(&self, now_ms: u64) -> usize {
        let last = self.steps.len().saturating_sub(1);
        let ups = match self.escalate_after_ms {
            Some(sla) if sla > 0 => (now_ms.saturating_sub(self.requested_at) / sla) as usize,
            _ => 0,
        };
        self.first_eligible.saturating_add(ups).min(last)
    }

    /// When the next escalation is due, if any step remains above.
    pub fn next_escalation_at(&self) -> Option<u64> {
        let sla = self.escalate_after_ms?;
        if self.escalated_to + 1 >= self.steps.len() {
            return None;
        }
        let periods = (self.escalated_to - self.first_eligible + 1) as u64;
        Some(self.requested_at + periods * sla)
    }

    /// Records due escalations; returns the newly eligible steps (each is
    /// an escalation event to notify and audit).
    pub fn escalate(&mut self, now_ms: u64) -> Vec<usize> {
        if self.first_eligible >= self.steps.len() {
            return Vec::new();
        }
        let until = self.eligible_until(now_ms);
        let new: Vec<usize> = (self.escalated_to + 1..=until).collect();
        self.escalated_to = self.escalated_to.max(until);
        new
    }

    fn step_holds(step: &ResolvedStep, who: &Approver) -> bool {
        who.has_role(&step.role) && step.team.as_deref() == Some(who.team.as_str())
    }

    fn needs(&self) -> String {
        match self.steps.get(self.first_eligible) {
            Some(s) => format!(
                "role {} of team {}",
                s.role,
                s.team.as_deref().unwrap_or("<the agent's team, unknown>")
            ),
            None => "an approver with a higher ceiling than any step".into(),
        }
    }

    /// The step `who` may decide as at `now_ms`, or why not. Used for both
    /// approve and deny.
    pub fn check(&self, who: &Approver, now_ms: u64) -> Result<usize, Refusal> {
        if self.excluded_owner.as_deref() == Some(who.name.as_str()) {
            return Err(Refusal::Owner(who.name.clone(), self.name.clone()));
        }
        let held: Vec<usize> = (0..self.steps.len())
            .filter(|&i| Self::step_holds(&self.steps[i], who))
            .collect();
        let Some(&top) = held.last() else {
            return Err(Refusal::NotInChain(
                who.name.clone(),
                self.name.clone(),
                self.needs(),
            ));
        };
        if top < self.first_eligible {
            let amount = self
                .steps
                .get(self.first_eligible.wrapping_sub(1))
                .and_then(|s| s.up_to)
                .map_or_else(|| "more".into(), |u| format!("more than {u}"));
            return Err(Refusal::AboveCeiling(
                who.name.clone(),
                fmt_amount(self.steps[top].up_to),
                self.name.clone(),
                amount,
            ));
        }
        let until = self.eligible_until(now_ms);
        let Some(&step) = held
            .iter()
            .find(|&&i| i >= self.first_eligible && i <= until)
        else {
            return Err(Refusal::NotYetEligible(
                who.name.clone(),
                top,
                self.name.clone(),
                until,
            ));
        };
        if self.approvals.iter().any(|a| a.approver == who.name) {
            return Err(Refusal::AlreadyApproved(
                who.name.clone(),
                self.name.clone(),
                self.required_approvals,
            ));
        }
        Ok(step)
    }

    /// Records an approval by `who`, if eligible.
    pub fn approve(&mut self, who: &Approver, now_ms: u64) -> Result<Progress, Refusal> {
        let step = self.check(who, now_ms)?;
        self.approvals.push(ChainApproval {
            approver: who.name.clone(),
            step,
            at: now_ms,
        });
        let have = self.approvals.len();
        Ok(if have >= self.required_approvals {
            Progress::Approved
        } else {
            Progress::Partial {
                have,
                need: self.required_approvals,
            }
        })
    }
}

#[cfg(test)]
mod tests;
