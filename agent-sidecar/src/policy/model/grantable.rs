//! The `grantable:` entries of the base document: which just-in-time
//! grants may exist at all, for which agents, for how long, decided by
//! whom (enforced by [`crate::grants`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a grant may give. This version grants egress destinations only:
/// a grant adds one `IP:PORT` to the agent's kernel allowlist for its
/// time and never changes a tool decision, so it cannot lift a tier-4
/// rule or a deny of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantableKind {
    /// One destination `IP:PORT`.
    Egress,
}

/// One entry of `grantable:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantableDecl {
    /// What may be granted.
    pub kind: GrantableKind,
    /// The exact targets that may be asked for (`IP:PORT`).
    pub targets: Vec<String>,
    /// The longest a grant may last, in seconds (at most 7 days).
    pub max_ttl_secs: u64,
    /// Only agents of these teams may ask (all when both lists are empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// Only these agents may ask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Who may approve (approver names); any approver but the agent and
    /// the requester when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// When the agent's `idle` alert fires (`detection.idle_after`), its
    /// grants in force are revoked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke_when_idle: bool,
}

/// The longest `max_ttl_secs` accepted.
pub const MAX_GRANT_TTL_SECS: u64 = 7 * 24 * 3600;

impl GrantableDecl {
    /// Whether the entry applies to agent `id` of `team`.
    pub fn selects(&self, id: &str, team: Option<&str>) -> bool {
        (self.teams.is_empty() && self.agents.is_empty())
            || self.agents.iter().any(|a| a == id)
            || team.is_some_and(|t| self.teams.iter().any(|x| x == t))
    }
}
