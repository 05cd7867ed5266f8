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
