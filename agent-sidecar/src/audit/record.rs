//! The audit record: one JSON line per action, with the minimum data set
//! that compliance asks for (who, what, to what, under which policy, who
//! approved, what happened, how long it is kept) and its place in the log
//! (sequence number, previous record's hash).
//!
//! # Canonical encoding
//!
//! A record's bytes are exactly its stored line without the newline:
//! `serde_json` of [`AuditRecord`], fields in declaration order, no
//! whitespace, absent optional fields left out. Those bytes are what the
//! Merkle leaf hash covers (`SHA-256(0x00 || line)`); a verifier hashes the
//! line as stored and never re-encodes it. `docs/audit.md` documents every
//! field and `docs/audit.schema.json` is generated from these types.
//!
//! Producers fill an [`AuditEntry`]; the log adds what only it can know
//! (sequence number, id, time, previous hash, retention expiry) and makes
//! the [`AuditRecord`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{hash::Hash, time::Timestamp};

mod parts;

pub use parts::{
    ActionInfo, ActionTarget, ActionType, AgentIdentity, Decision, InputContext, Outcome,
    OutcomeStatus, Oversight, PolicyResult, Redaction, RedactionMethod, Retention, TraceContext,
};

/// The version of the record format written in `v`.
pub const RECORD_VERSION: u32 = 1;

/// What happened: the event a record stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A tool call through the gateway (REST or MCP tools/call).
    ToolCall,
    /// A tier-3 call was held and approvers were asked.
    ApprovalRequested,
    /// Approvers were notified (webhook delivered).
    ApprovalNotified,
    /// An approver approved or denied a held call.
    ApprovalDecided,
    /// A held call's approval SLA ran out; the call was denied.
    ApprovalExpired,
    /// A held call was cancelled (halt, quarantine, shutdown).
    ApprovalCancelled,
    /// One approval of several an approval chain needs (four-eyes) was
    /// recorded; the call stays held.
    ApprovalPartiallyApproved,
    /// An approval chain's SLA passed: the next step up became eligible
    /// and was notified.
    ApprovalEscalated,
    /// An approver the approval chain does not allow tried to decide.
    ApprovalDecisionRefused,
    /// A tier-2 call declared how it can be reversed.
    CompensationDeclared,
    /// A reversal was triggered within its window.
    CompensationTriggered,
    /// The result of a triggered reversal.
    CompensationResult,
    /// The kernel refused a connection or packet of the agent.
    KernelDeny,
    /// The agent was quarantined at the kernel.
    Quarantine,
    /// The agent's quarantine was lifted.
    QuarantineReleased,
    /// The resolver refused a name.
    DnsRefused,
    /// A proxy refused a host.
    ProxyRefused,
    /// A connection through a proxy ended (allowed, or failed upstream).
    ProxyConnection,
    /// A tier policy set was loaded at start.
    PolicyLoaded,
    /// A tier policy set was reloaded.
    PolicyReloaded,
    /// A policy reload was refused; the last good set stays.
    PolicyReloadRefused,
    /// The sidecar started.
    SidecarStarted,
    /// The sidecar stopped.
    SidecarStopped,
    /// A behavioural detector fired and the sidecar responded (notify,
    /// raised minimum tier, quarantine).
    DetectionResponse,
    /// The log cut a torn last line when it was opened (written by the log).
    LogRepaired,
    /// Retention deleted an expired segment (written by the log).
    RetentionApplied,
    /// An action went ahead although the audit log could not take its
    /// record (an explicit fail-open setting; counted).
    FailOpen,
    /// A kill switch was tripped, engaged or released, or the
    /// fleet-controls file was refused (`detail.step`).
    KillSwitch,
    /// A just-in-time grant step (`detail.step`: requested, approved,
    /// denied, revoked, expired, refused).
    Grant,
    /// The candidate policy set would decide an action differently
    /// (`detail.difference.active`, `.candidate`); nothing was enforced
    /// from it.
    ShadowDifference,
    /// The policy fixtures (`--policy-fixtures`) failed against the set in
    /// force (`detail.reason` names the scenarios).
    PolicyFixturesFailed,
    /// A hop between agents (`detail.step`: minted, admitted, refused,
    /// answer_refused; `detail.reason` on refusals).
    Delegation,
}

impl RecordKind {
    /// The snake_case name, as written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::ToolCall => "tool_call",
            RecordKind::ApprovalRequested => "approval_requested",
            RecordKind::ApprovalNotified => "approval_notified",
            RecordKind::ApprovalDecided => "approval_decided",
            RecordKind::ApprovalExpired => "approval_expired",
            RecordKind::ApprovalCancelled => "approval_cancelled",
            RecordKind::ApprovalPartiallyApproved => "approval_partially_approved",
            RecordKind::ApprovalEscalated => "approval_escalated",
            RecordKind::ApprovalDecisionRefused => "approval_decision_refused",
            RecordKind::CompensationDeclared => "compensation_declared",
            RecordKind::CompensationTriggered => "compensation_triggered",
            RecordKind::CompensationResult => "compensation_result",
            RecordKind::KernelDeny => "kernel_deny",
            RecordKind::Quarantine => "quarantine",
            RecordKind::QuarantineReleased => "quarantine_released",
            RecordKind::DnsRefused => "dns_refused",
            RecordKind::ProxyRefused => "proxy_refused",
            RecordKind::ProxyConnection => "proxy_connection",
            RecordKind::PolicyLoaded => "policy_loaded",
            RecordKind::PolicyReloaded => "policy_reloaded",
            RecordKind::PolicyReloadRefused => "policy_reload_refused",
            RecordKind::SidecarStarted => "sidecar_started",
            RecordKind::SidecarStopped => "sidecar_stopped",
            RecordKind::DetectionResponse => "detection_response",
            RecordKind::LogRepaired => "log_repaired",
            RecordKind::RetentionApplied => "retention_applied",
            RecordKind::FailOpen => "fail_open",
            RecordKind::KillSwitch => "kill_switch",
            RecordKind::Grant => "grant",
            RecordKind::ShadowDifference => "shadow_difference",
            RecordKind::PolicyFixturesFailed => "policy_fixtures_failed",
            RecordKind::Delegation => "delegation",
        }
    }
}

/// Where in an action's life a record was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the effect: the decision, written before the call is
    /// forwarded or held (a held call's first record).
    Attempt,
    /// After the effect: how the action ended (a held call's second
    /// record, or a call's result).
    Outcome,
    /// A point event with no before and after (a policy load, a start).
    Event,
}

/// What a producer records: everything but the log's own fields.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// What happened.
    pub kind: RecordKind,
    /// Before or after the effect.
    pub phase: Phase,
    /// Who acted.
    pub agent: AgentIdentity,
    /// The workflow's W3C trace context.
    pub trace: Option<TraceContext>,
    /// What was done, to what.
    pub action: Option<ActionInfo>,
    /// The input, already redacted by the producer.
    pub input: Option<InputContext>,
    /// The policy's verdict.
    pub policy: Option<PolicyResult>,
    /// Human oversight: approval and compensation.
    pub oversight: Option<Oversight>,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// Retention class; `None` takes the log's default class.
    pub retention_class: Option<String>,
    /// Kind-specific details (JSON object), already redacted.
    pub detail: Option<Value>,
}

impl AuditEntry {
    /// An entry with only its kind, phase and agent set.
    pub fn new(kind: RecordKind, phase: Phase, agent: AgentIdentity) -> AuditEntry {
        AuditEntry {
            kind,
            phase,
            agent,
            trace: None,
            action: None,
            input: None,
            policy: None,
            oversight: None,
            outcome: None,
            retention_class: None,
            detail: None,
        }
    }
}

/// One record of the audit log, as stored (one JSON line) and hashed.
/// Field order is the canonical order of the line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Record format version (currently 1).
    pub v: u32,
    /// Position in the log, from 0, without gaps; also the record's leaf
    /// index in the Merkle tree.
    pub seq: u64,
    /// UUIDv7 naming the record across logs and collectors.
    pub id: String,
    /// When the log took the record (RFC 3339 UTC, nanoseconds); never
    /// earlier than the previous record's time.
    pub time: Timestamp,
    /// Leaf hash of the previous record (`seq - 1`); 64 zeros for seq 0.
    pub prev: Hash,
    /// What happened.
    pub kind: RecordKind,
    /// Before or after the effect.
    pub phase: Phase,
    /// Who acted.
    pub agent: AgentIdentity,
    /// The workflow's W3C trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// What was done, to what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionInfo>,
    /// The input, redacted by policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputContext>,
    /// The policy's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyResult>,
    /// Human oversight: approval and compensation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversight: Option<Oversight>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// How long the record is kept.
    pub retention: Retention,
    /// Kind-specific details (a JSON object), redacted by the producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl AuditRecord {
    /// Builds the record of `entry` with the log's fields.
    pub fn from_entry(
        entry: AuditEntry,
        seq: u64,
        id: String,
        time: Timestamp,
        prev: Hash,
        retention: Retention,
    ) -> AuditRecord {
        AuditRecord {
            v: RECORD_VERSION,
            seq,
            id,
            time,
            prev,
            kind: entry.kind,
            phase: entry.phase,
            agent: entry.agent,
            trace: entry.trace,
            action: entry.action,
            input: entry.input,
            policy: entry.policy,
            oversight: entry.oversight,
            outcome: entry.outcome,
            retention,
            detail: entry.detail,
        }
    }

    /// Appends the canonical line (without the newline) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("a record always serializes");
    }

    /// The canonical line, without the newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(512);
        self.encode_into(&mut v);
        v
    }

    /// Parses one stored line (without the newline).
    pub fn parse(line: &[u8]) -> Result<AuditRecord, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

#[cfg(test)]
mod tests;
