//! Rules: a condition on the tool, the action and the risk attributes, and
//! the tier it demands.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::policy::model::tier::Tier;

/// One rule. When every condition in `when` holds, the action is at least
/// `tier`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDecl {
    /// Rule id, unique in the set; decisions name it.
    pub id: String,
    /// Why the rule exists; shown in decision reasons.
    #[serde(default)]
    pub description: Option<String>,
    /// Conditions, all of which must hold (none: every action).
    #[serde(default)]
    pub when: When,
    /// The tier demanded.
    pub tier: Tier,
    /// Id of a rule in a parent document that this rule tightens: it must
    /// match at least whenever the parent's does, at a tier at least as
    /// high. Checked at compile time.
    #[serde(default)]
    pub overrides: Option<String>,
    /// Tier 4 only: also quarantine the agent (its kernel allowlist becomes
    /// deny-all until an operator releases it).
    #[serde(default)]
    pub quarantine: bool,
}

/// The conditions of a rule.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Tool name.
    #[serde(default)]
    pub tool: Option<String>,
    /// Action name (requires `tool`).
    #[serde(default)]
    pub action: Option<String>,
    /// Amount, in the base currency.
    #[serde(default)]
    pub amount: Option<RangeMatch>,
    /// Record count.
    #[serde(default)]
    pub records: Option<RangeMatch>,
    /// Sensitivity classes touched.
    #[serde(default)]
    pub sensitivity: Option<SetMatch>,
    /// Regulatory scopes.
    #[serde(default)]
    pub regulatory: Option<SetMatch>,
    /// Reversibility.
    #[serde(default)]
    pub reversibility: Option<SetMatch>,
}

/// Numeric bounds; every bound given must hold.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeMatch {
    /// Greater than.
    #[serde(default)]
    pub gt: Option<f64>,
    /// Greater than or equal.
    #[serde(default)]
    pub gte: Option<f64>,
    /// Less than.
    #[serde(default)]
    pub lt: Option<f64>,
    /// Less than or equal.
    #[serde(default)]
    pub lte: Option<f64>,
}

/// Set membership: exactly one of `any_of`, `all_of`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMatch {
    /// At least one of these values.
    #[serde(default)]
    pub any_of: Option<Vec<String>>,
    /// Every one of these values.
    #[serde(default)]
    pub all_of: Option<Vec<String>>,
}
