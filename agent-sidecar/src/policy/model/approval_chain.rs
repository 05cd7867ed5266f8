//! The `approval_chains:` entries of base and team documents: who may
//! decide a held action (resolved and enforced by
//! [`crate::approvals::chain`]).

use serde::{Deserialize, Serialize};

/// One step of a chain, as written in policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The role an approver must hold.
    pub role: String,
    /// The team the approver must belong to; absent with `agent_team: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The approver must belong to the agent's own team.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent_team: bool,
    /// Highest amount this step may approve; absent = no ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<f64>,
}

/// One approval chain, as written in policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// A name for audit and the API.
    pub name: String,
    /// Tools matched (exact names, or `*`); empty = every tool.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Actions matched (exact names, or `*`); empty = every action.
    #[serde(default)]
    pub actions: Vec<String>,
    /// The ordered steps, lowest authority first.
    pub steps: Vec<StepSpec>,
    /// Seconds per step without a decision before the next step up becomes
    /// eligible; absent = no escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_secs: Option<u64>,
    /// Two distinct eligible approvers must approve.
    #[serde(default)]
    pub four_eyes: bool,
    /// The agent's owner may not approve its own agent's action.
    #[serde(default)]
    pub exclude_owner: bool,
}

/// Why a chain is invalid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ChainSpecError {
    /// No steps.
    #[error("approval chain {0:?} has no steps; list at least one `{{role, team, up_to}}`")]
    NoSteps(String),
    /// A step has both or neither of `team` and `agent_team`.
    #[error(
        "approval chain {0:?} step {1}: give exactly one of `team: NAME` or `agent_team: true`"
    )]
    Team(String, usize),
    /// Ceilings do not increase.
    #[error(
        "approval chain {0:?} step {1}: `up_to` must be a non-negative number that increases from step to step, and only the last step may omit it"
    )]
    Ceiling(String, usize),
    /// A zero SLA would escalate at once.
    #[error("approval chain {0:?}: `escalate_after_secs` must be at least 1")]
    ZeroSla(String),
}

fn matches(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|p| p == "*" || p == value)
}

impl ChainSpec {
    /// Checks the chain is well-formed.
    pub fn validate(&self) -> Result<(), ChainSpecError> {
        if self.steps.is_empty() {
            return Err(ChainSpecError::NoSteps(self.name.clone()));
        }
        let mut prev: Option<f64> = None;
        for (i, s) in self.steps.iter().enumerate() {
            if s.team.is_some() == s.agent_team {
                return Err(ChainSpecError::Team(self.name.clone(), i));
            }
            match (s.up_to, prev) {
                (Some(u), _) if !u.is_finite() || u < 0.0 => {
                    return Err(ChainSpecError::Ceiling(self.name.clone(), i));
                }
                (None, _) if i + 1 != self.steps.len() => {
                    return Err(ChainSpecError::Ceiling(self.name.clone(), i));
                }
                (Some(u), Some(p)) if u <= p || u.is_nan() => {
                    return Err(ChainSpecError::Ceiling(self.name.clone(), i));
                }
                _ => {}
            }
            prev = s.up_to.or(prev);
        }
        if self.escalate_after_secs == Some(0) {
            return Err(ChainSpecError::ZeroSla(self.name.clone()));
        }
        Ok(())
    }

    /// True if the chain governs this tool and action.
    pub fn matches(&self, tool: &str, action: &str) -> bool {
        matches(&self.tools, tool) && matches(&self.actions, action)
    }
}
