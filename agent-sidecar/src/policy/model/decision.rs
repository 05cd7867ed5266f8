//! The outcome of deciding one action, as it goes into the audit record.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{tier::Tier, version::PolicyVersion};

/// The outcome for one action. Serializable: it goes into the audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    /// The tier (or deny).
    pub tier: Tier,
    /// The rules (or defaults) that demanded `tier`; never empty.
    pub rules: Vec<DecidingRule>,
    /// The policy set that decided.
    pub policy_version: PolicyVersion,
    /// Why, for humans.
    pub reason: String,
    /// Tier 4 only: a deciding rule also quarantines the agent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantine: bool,
}

/// A rule that demanded the decision's tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DecidingRule {
    /// Rule id, or the pseudo id of a default (`defaults.unknown`,
    /// `defaults.missing_attribute`, `defaults.action`) or of an action's
    /// baseline (`tools.TOOL.actions.ACTION`).
    pub id: Arc<str>,
    /// The document that set it: `base acme`, `team finance`, `agent
    /// procurement-agent`, `overlay prod` or `built-in`.
    pub level: Arc<str>,
    /// `file:line:column` of the rule.
    pub source: Arc<str>,
}
