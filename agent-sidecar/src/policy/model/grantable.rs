//! The `grantable:` entries of the base document: which just-in-time
//! grants may exist at all, for which agents, for how long, decided by
//! whom (enforced by [`crate::grants`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a grant may give. No grant lowers a tier-4 or deny decision, so
/// none can lift a tier-4 rule or a deny of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantableKind {
    /// One destination `IP:PORT`, added to the agent's kernel allowlist.
    Egress,
    /// A declared tool (target: its name): its calls decided above tier 2
    /// are supervised (tier 2) instead.
    Tool,
    /// A declared action (target: `tool.action`): as `tool`, for one action.
    Action,
    /// A tier ceiling (target: `1`, `2` or `3`): decisions above it are
    /// lowered to it.
    TierCeiling,
}

/// One entry of `grantable:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantableDecl {
    /// What may be granted.
    pub kind: GrantableKind,
    /// The exact targets that may be asked for: `IP:PORT` (egress), a
    /// tool name, `tool.action`, or a tier `1`..`3` (tier_ceiling).
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

#[cfg(test)]
mod tests {
    use crate::policy::test_support::{compile, one_problem};

    fn base(grantable: &str) -> String {
        format!(
            "kind: base\nname: acme\nlabel: t\ntools:\n  - name: erp\n    http: {{ host: erp.test }}\n    actions:\n      - {{ name: pay, method: POST, path: /pay }}\ngrantable:\n{grantable}"
        )
    }

    #[test]
    fn each_kind_of_grantable_target_is_checked_against_the_set() {
        let ok = base(
            "  - { kind: tool, targets: [erp], max_ttl_secs: 60 }\n  - { kind: action, targets: [erp.pay], max_ttl_secs: 60 }\n  - { kind: tier_ceiling, targets: [\"2\"], max_ttl_secs: 60 }\n  - { kind: egress, targets: [\"198.51.100.7:443\"], max_ttl_secs: 60 }\n",
        );
        compile(&[("base.yaml", &ok)]).unwrap();
        for (entry, help) in [
            (
                "  - { kind: tool, targets: [crm], max_ttl_secs: 60 }\n",
                "a tool grant names a tool",
            ),
            (
                "  - { kind: action, targets: [erp.refund], max_ttl_secs: 60 }\n",
                "tool.action",
            ),
            (
                "  - { kind: action, targets: [erp], max_ttl_secs: 60 }\n",
                "tool.action",
            ),
            (
                "  - { kind: tier_ceiling, targets: [\"4\"], max_ttl_secs: 60 }\n",
                "1, 2 or 3",
            ),
            (
                "  - { kind: egress, targets: [\"198.51.100.0/24:443\"], max_ttl_secs: 60 }\n",
                "IP:PORT",
            ),
        ] {
            let p = one_problem(&[("base.yaml", &base(entry))]);
            assert!(p.contains(help), "{entry}: {p}");
        }
    }
}
