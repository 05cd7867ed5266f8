//! What a grant is, and the bounds a request must stay within.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a grant gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// A tool by name.
    Tool,
    /// An action by name.
    Action,
    /// A tier ceiling (1 to 3): decisions above it are lowered to it.
    TierCeiling,
    /// An egress destination, `NAME:PORT` or `IP:PORT`.
    Egress,
}

impl GrantKind {
    /// The name used in the API, the bounds and the audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Tool => "tool",
            GrantKind::Action => "action",
            GrantKind::TierCeiling => "tier_ceiling",
            GrantKind::Egress => "egress",
        }
    }
}

/// Where a grant is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// Requested, waiting for an approver.
    Pending,
    /// Approved: in force until `expires_at`.
    Approved,
    /// Refused by an approver.
    Denied,
    /// Withdrawn by an operator before its expiry.
    Revoked,
    /// Its time ran out.
    Expired,
}

impl GrantState {
    /// The name used in the API and the audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Pending => "pending",
            GrantState::Approved => "approved",
            GrantState::Denied => "denied",
            GrantState::Revoked => "revoked",
            GrantState::Expired => "expired",
        }
    }
}

/// A request for a grant, as the agent or an operator makes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// The agent the grant is for.
    pub agent: String,
    /// What is asked for.
    pub kind: GrantKind,
    /// The tool, action, ceiling tier or destination.
    pub target: String,
    /// Why: shown to the approver, kept in the audit trail.
    pub purpose: String,
    /// How long it is asked for, in seconds.
    pub ttl_secs: u64,
    /// Who asked (the agent's id when the agent asks itself).
    pub requested_by: String,
}

/// One grant and its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `g-` and 16 hex digits.
    pub id: String,
    /// The request as made.
    #[serde(flatten)]
    pub request: GrantRequest,
    /// Where it is in its life.
    pub state: GrantState,
    /// Who approved, denied or revoked it.
    pub decided_by: Option<String>,
    /// The reason given with the decision.
    pub reason: Option<String>,
    /// Unix seconds of the request.
    pub created_at: u64,
    /// Unix seconds it stops being in force (set on approval).
    pub expires_at: Option<u64>,
}

impl Grant {
    /// Whether the grant is in force at unix second `now`.
    pub fn in_force(&self, now: u64) -> bool {
        self.state == GrantState::Approved && self.expires_at.is_some_and(|e| now < e)
    }
}

/// What may be granted at all, and by whom.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantBounds {
    /// Kinds that may be granted; a kind not listed is refused.
    pub kinds: Vec<GrantKind>,
    /// Targets that may be granted (exact); empty allows none.
    pub targets: Vec<String>,
    /// Longest TTL a grant may have.
    #[serde(with = "humantime_serde_secs")]
    pub max_ttl: Duration,
    /// Who may approve; empty means any authenticated approver but the
    /// agent.
    pub approvers: Vec<String>,
    /// Targets no grant may ever lift (tier-4 rules, org-level denies).
    pub never: Vec<String>,
}

mod humantime_serde_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Why a grant operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The kind is not grantable for this agent.
    #[error("a {kind} grant is not allowed: add `{kind}` to the grantable kinds of the policy")]
    KindNotGrantable {
        /// The kind asked for.
        kind: &'static str,
    },
    /// The target is not among the grantable ones.
    #[error("`{target}` is not grantable: the grantable targets are {allowed:?}")]
    TargetNotGrantable {
        /// The target asked for.
        target: String,
        /// What may be asked for.
        allowed: Vec<String>,
    },
    /// The target is fixed by a tier-4 rule or an org-level deny.
    #[error("`{target}` is denied by a tier-4 rule or an org-level deny: no grant can lift it")]
    NeverGrantable {
        /// The target asked for.
        target: String,
    },
    /// The TTL is zero or above the bound.
    #[error("a TTL of {asked} s is outside 1..={max} s: ask for at most {max} s")]
    TtlOutOfBounds {
        /// Seconds asked for.
        asked: u64,
        /// The bound.
        max: u64,
    },
    /// A required field is empty.
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    /// The approver is the agent, or the one who asked.
    #[error(
        "`{approver}` cannot approve a grant for `{agent}` that it requested or that is its own"
    )]
    SelfApproval {
        /// Who tried.
        approver: String,
        /// The grant's agent.
        agent: String,
    },
    /// The approver is not among the policy's approvers.
    #[error("`{0}` is not an approver of these grants")]
    NotAnApprover(String),
    /// No grant has this id.
    #[error("no grant `{0}`: list them with `agent-sidecar grants list`")]
    NotFound(String),
    /// The grant is not in the state the operation needs.
    #[error("grant `{id}` is {state}: only a {wanted} grant can be {verb}")]
    WrongState {
        /// The grant.
        id: String,
        /// Its state.
        state: &'static str,
        /// The state needed.
        wanted: &'static str,
        /// What was attempted.
        verb: &'static str,
    },
    /// The grants file could not be read or written.
    #[error("grants file {path}: {source}; check the state directory's permissions and space")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The grants file is not valid.
    #[error("grants file {path} is corrupt: {detail}; move it aside to start with no grant")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl GrantBounds {
    /// Checks `req` against the bounds: refused at request time.
    pub fn check(&self, req: &GrantRequest) -> Result<(), GrantError> {
        for (value, field) in [
            (&req.agent, "agent"),
            (&req.target, "target"),
            (&req.purpose, "purpose"),
            (&req.requested_by, "requested_by"),
        ] {
            if value.trim().is_empty() {
                return Err(GrantError::Empty(field));
            }
        }
        if self.never.iter().any(|n| n == &req.target) {
            return Err(GrantError::NeverGrantable {
                target: req.target.clone(),
            });
        }
        if !self.kinds.contains(&req.kind) {
            return Err(GrantError::KindNotGrantable {
                kind: req.kind.as_str(),
            });
        }
        if !self.targets.iter().any(|t| t == &req.target) {
            return Err(GrantError::TargetNotGrantable {
                target: req.target.clone(),
                allowed: self.targets.clone(),
            });
        }
        let max = self.max_ttl.as_secs();
        if req.ttl_secs == 0 || req.ttl_secs > max {
            return Err(GrantError::TtlOutOfBounds {
                asked: req.ttl_secs,
                max,
            });
        }
        Ok(())
    }

    /// Checks that `approver` may decide `grant`: never the agent, never
    /// the one who asked, and one of the approvers when they are listed.
    pub fn check_approver(&self, grant: &Grant, approver: &str) -> Result<(), GrantError> {
        let approver = approver.trim();
        if approver.is_empty() {
            return Err(GrantError::Empty("approver"));
        }
        if approver.eq_ignore_ascii_case(grant.request.agent.trim())
            || approver.eq_ignore_ascii_case(grant.request.requested_by.trim())
        {
            return Err(GrantError::SelfApproval {
                approver: approver.to_string(),
                agent: grant.request.agent.clone(),
            });
        }
        if !self.approvers.is_empty() && !self.approvers.iter().any(|a| a == approver) {
            return Err(GrantError::NotAnApprover(approver.to_string()));
        }
        Ok(())
    }
}
