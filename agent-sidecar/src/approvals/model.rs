//! The approval record: what is held, why, until when, and what became of it.
//! Every field is serialized as-is into the journal and the admin API.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::chain::ResolvedChain;
use crate::policy::{Action, Tier};

/// Milliseconds since the Unix epoch, written as a JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The current wall-clock time (0 if the clock is before 1970).
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        UnixMillis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        UnixMillis(self.0.saturating_add(ms))
    }

    /// How long from `self` until `later` (zero if `later` is not later).
    pub fn until(self, later: UnixMillis) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }
}

/// A random, URL-safe approval id: `apr_` followed by 32 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApprovalId(String);

impl ApprovalId {
    const PREFIX: &'static str = "apr_";

    /// A fresh id with 128 random bits.
    pub fn random() -> Self {
        let bits: u128 = rand::rng().random();
        ApprovalId(format!("{}{bits:032x}", Self::PREFIX))
    }

    /// Parses an id as found in a URL path; `None` unless it has the exact
    /// shape [`ApprovalId::random`] produces.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix(Self::PREFIX)?;
        let ok = hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| ApprovalId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the agent tried to do, as shown to the approver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionSummary {
    /// The tool (MCP server or REST service) the call goes to.
    pub tool: String,
    /// The action name (MCP tool name or REST route).
    pub action: String,
    /// The target (host, resource or record the action touches).
    pub target: String,
    /// The request input, already redacted by policy. Stored verbatim.
    pub input: serde_json::Value,
    /// Everything else the approver needs to see of the request: the
    /// attribute values the policy decided on and the request as it will
    /// be forwarded (method, raw path and query, headers, body), built by
    /// the caller. Stored verbatim.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub request: serde_json::Value,
}

/// Everything the caller knows when it asks for an approval.
#[derive(Clone, Debug, PartialEq)]
pub struct NewApproval {
    /// The agent that made the call.
    pub agent_id: String,
    /// What the agent tried to do.
    pub action: ActionSummary,
    /// The tier the policy decided (normally [`Tier::Approval`]).
    pub tier: Tier,
    /// The ids of the rules that decided the tier.
    pub rule_ids: Vec<String>,
    /// The content hash of the policy that decided.
    pub policy_version: String,
    /// Why approval is needed, for the approver.
    pub reason: String,
    /// How long approvers have before the request is denied.
    pub sla: Duration,
    /// Digest of everything the decision read and everything that will be
    /// forwarded (`sha256:HEX`). A retry under the same key must carry the
    /// same digest.
    pub binding: String,
    /// The action as the policy decided it, so that it can be decided
    /// again (after a policy reload) while it waits.
    pub decided: Option<Action>,
    /// Who may decide it, when an approval chain of the policy matches.
    pub chain: Option<ResolvedChain>,
}

/// A human decision: who, why, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverDecision {
    /// The approver's identity, as they stated it to the admin API.
    pub by: String,
    /// The approver's reason.
    pub reason: String,
    /// When the decision was recorded.
    pub at: UnixMillis,
}

/// Where an approval is in its lifecycle. Only `Pending` can change into a
/// decision, and only `Approved` into `Forwarded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for an approver.
    Pending,
    /// Approved; not yet forwarded.
    Approved(ApproverDecision),
    /// Denied by an approver.
    Denied(ApproverDecision),
    /// Nobody answered within the SLA: denied by default.
    Expired {
        /// When the expiry was recorded.
        at: UnixMillis,
    },
    /// Withdrawn by the sidecar before it was forwarded: the agent was
    /// quarantined, or the policy in force no longer allows the action.
    Cancelled {
        /// When the cancellation was recorded.
        at: UnixMillis,
        /// Why.
        reason: String,
    },
    /// Approved and claimed for forwarding (at most once).
    Forwarded {
        /// When the forward was claimed.
        at: UnixMillis,
        /// The upstream's status once known; `None` if the sidecar stopped
        /// between the claim and the upstream's answer.
        upstream_status: Option<u16>,
        /// The approval that allowed the forward.
        approved: ApproverDecision,
    },
}

impl ApprovalState {
    /// The state's name (its JSON `kind`), as used in the API's `?state=`
    /// filter.
    pub fn name(&self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved(_) => "approved",
            ApprovalState::Denied(_) => "denied",
            ApprovalState::Expired { .. } => "expired",
            ApprovalState::Cancelled { .. } => "cancelled",
            ApprovalState::Forwarded { .. } => "forwarded",
        }
    }

    /// True once a human or the SLA has decided.
    pub fn is_decided(&self) -> bool {
        !matches!(self, ApprovalState::Pending)
    }

    /// The outcome a waiter sees, or `None` while pending.
    pub fn outcome(&self) -> Option<ApprovalOutcome> {
        match self {
            ApprovalState::Pending => None,
            ApprovalState::Approved(d) | ApprovalState::Forwarded { approved: d, .. } => {
                Some(ApprovalOutcome::Approved(d.clone()))
            }
            ApprovalState::Denied(d) => Some(ApprovalOutcome::Denied(d.clone())),
            ApprovalState::Expired { at } => Some(ApprovalOutcome::Expired { at: *at }),
            ApprovalState::Cancelled { at, reason } => Some(ApprovalOutcome::Cancelled {
                at: *at,
                reason: reason.clone(),
            }),
        }
    }
}

/// What a held call learns when its approval is decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// An approver said yes. Forwarding still needs
    /// [`claim_forward`](super::ApprovalStore::claim_forward).
    Approved(ApproverDecision),
    /// An approver said no.
    Denied(ApproverDecision),
    /// The SLA passed without an answer: denied by default.
    Expired {
        /// When the expiry was recorded.
        at: UnixMillis,
    },
    /// The sidecar withdrew it (quarantine, policy change).
    Cancelled {
        /// When the cancellation was recorded.
        at: UnixMillis,
        /// Why.
        reason: String,
    },
}

impl ApprovalOutcome {
    /// True only for [`ApprovalOutcome::Approved`]: everything else is a denial.
    pub fn is_approved(&self) -> bool {
        matches!(self, ApprovalOutcome::Approved(_))
    }

    /// The label used in metrics: `approved`, `denied` or `expired`.
    pub fn label(&self) -> &'static str {
        match self {
            ApprovalOutcome::Approved(_) => "approved",
            ApprovalOutcome::Denied(_) => "denied",
            ApprovalOutcome::Expired { .. } => "expired",
            ApprovalOutcome::Cancelled { .. } => "cancelled",
        }
    }
}

/// One held action and its lifecycle: the unit of the journal and the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// Random, URL-safe id.
    pub id: ApprovalId,
    /// The agent that made the call.
    pub agent_id: String,
    /// What the agent tried to do.
    pub action: ActionSummary,
    /// The tier the policy decided.
    pub tier: Tier,
    /// The ids of the rules that decided the tier.
    pub rule_ids: Vec<String>,
    /// The content hash of the policy that decided.
    pub policy_version: String,
    /// Why approval is needed.
    pub reason: String,
    /// Retries carrying this key attach to this approval.
    pub idempotency_key: String,
    /// Digest of the decided and forwarded bytes (`sha256:HEX`); a retry
    /// under the same key with another digest is refused. Empty in records
    /// written before digests existed: such an approval matches no retry.
    #[serde(default)]
    pub binding: String,
    /// The action as the policy decided it (re-decided on policy reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<Action>,
    /// When the approval was requested.
    pub created_at: UnixMillis,
    /// When it expires (and is denied) if nobody answers.
    pub sla_deadline: UnixMillis,
    /// Where it is in its lifecycle: `{"kind": "pending"}`,
    /// `{"kind": "approved", "by", "reason", "at"}`...
    pub state: ApprovalState,
    /// The approval chain resolved when it was requested (eligible steps,
    /// approvals needed, approvals so far); absent when no chain matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ResolvedChain>,
}

impl PendingApproval {
    /// A new pending approval with a random id.
    pub fn new(key: String, req: NewApproval, now: UnixMillis) -> Self {
        PendingApproval {
            id: ApprovalId::random(),
            agent_id: req.agent_id,
            action: req.action,
            tier: req.tier,
            rule_ids: req.rule_ids,
            policy_version: req.policy_version,
            reason: req.reason,
            idempotency_key: key,
            binding: req.binding,
            decided: req.decided,
            created_at: now,
            sla_deadline: now.plus(req.sla),
            state: ApprovalState::Pending,
            chain: req.chain,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
