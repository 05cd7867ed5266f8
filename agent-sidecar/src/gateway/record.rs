//! The last stage of every call: one [`ToolCallEvent`] carrying everything
//! known about the call (who, what, the decision and its rules and policy
//! version, the approval and compensation, what happened, the trace, the
//! time spent), handed to the gateway's [`GatewaySink`]. The log line, the
//! metrics, the owner's and the SOC's webhooks and the audit trail are
//! consumers of that one value (see [`crate::events`]); none of them is a
//! step of the request path. Never carries credentials.

use std::{sync::Arc, time::Instant};

use serde::Serialize;
use serde_json::Value;

use super::{compensate::Compensable, refusal::Refusal};
use crate::{
    approvals::UnixMillis,
    policy::{Action, ActionTarget, AgentIdentity, Decision},
    redaction::InputView,
};

/// What happened to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Forwarded upstream (tier 1 or 2, or approved).
    Forwarded,
    /// Refused before reaching the upstream.
    Refused,
    /// Forwarded, but the upstream could not be reached or failed.
    UpstreamFailed,
}

impl CallOutcome {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Forwarded => "forwarded",
            CallOutcome::Refused => "refused",
            CallOutcome::UpstreamFailed => "upstream_failed",
        }
    }
}

/// One tool call, as the gateway ends it.
#[derive(Clone, Debug, Serialize)]
pub struct ToolCallEvent {
    /// When the call finished.
    pub at: UnixMillis,
    /// `http` or `mcp`.
    pub transport: &'static str,
    /// The action as the policy saw it (agent identity, tool, attributes).
    pub action: Action,
    /// The decision.
    pub decision: Decision,
    /// What happened.
    pub outcome: CallOutcome,
    /// Machine-readable reason of a refusal (`tier_4_halt`,
    /// `approval_denied`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The upstream's status, when forwarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// The approval that held the call (tier 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The compensation that can undo the call (tier 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compensation_id: Option<String>,
    /// W3C traceparent of the upstream request.
    pub traceparent: String,
    /// The agent's span id (hex), when its request carried a valid
    /// `traceparent`: the parent of the gateway's hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_span: Option<String>,
    /// Time in the gateway, microseconds (including any approval wait).
    pub duration_us: u64,
    /// The call as approvers and the owner see it (every attribute value,
    /// the raw query, the body): set for forwarded tier-2 calls, whose
    /// owner is told. Not serialized: consumers decide what of it to keep.
    #[serde(skip)]
    pub shown: Option<Value>,
    /// The registered compensation, for the owner's notice.
    #[serde(skip)]
    pub compensation: Option<Compensable>,
    /// The call's input as the policy's redaction keeps it (for the audit
    /// record), when it was made.
    #[serde(skip)]
    pub input: Option<Arc<InputView>>,
}

impl ToolCallEvent {
    /// The agent's id.
    pub fn agent_id(&self) -> &str {
        &self.action.agent.id
    }

    /// A tier-4 halt (refused by a halting rule).
    pub fn halted(&self) -> bool {
        self.reason.as_deref() == Some(super::refusal::HALT_REASON)
    }

    /// A supervised (tier-2) call that reached the tool: its owner is told.
    pub fn supervised_forward(&self) -> bool {
        self.decision.tier == crate::policy::Tier::Supervised
            && self.outcome == CallOutcome::Forwarded
    }
}

/// Receives every [`ToolCallEvent`], every MCP message the gateway drops
/// and every release of the agent's quarantine. Called on the request
/// path: keep it quick and non-blocking.
pub trait GatewaySink: Send + Sync {
    /// Called once per call, after its outcome is known.
    fn call(&self, event: &ToolCallEvent);

    /// Called for each MCP message the gateway drops: `direction` is
    /// `to_agent` or `to_server`, `reason` e.g. `unexpected_response` or
    /// `server_request_refused`.
    fn mcp_message_dropped(&self, _agent: &str, _direction: &str, _reason: &str) {}

    /// Called when an operator released the agent's quarantine.
    fn quarantine_released(&self, _agent: &AgentIdentity, _operator: &str, _reason: &str) {}
}

/// This stage's handle: where events go.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    sink: Option<Arc<dyn GatewaySink>>,
}

impl Recorder {
    /// Events to `sink`; none are kept without one.
    pub(crate) fn new(sink: Option<Arc<dyn GatewaySink>>) -> Self {
        Recorder { sink }
    }

    /// Hands a finished call to the sink.
    pub(crate) fn call(&self, event: ToolCallEvent) {
        if let Some(sink) = &self.sink {
            sink.call(&event);
        }
    }

    /// Reports the release of the agent's quarantine by `operator`.
    pub(crate) fn quarantine_released(&self, agent: &AgentIdentity, operator: &str, reason: &str) {
        if let Some(sink) = &self.sink {
            sink.quarantine_released(agent, operator, reason);
        }
    }

    /// Reports a dropped MCP message.
    pub(crate) fn mcp_message_dropped(&self, agent: &str, direction: &str, reason: &str) {
        if let Some(sink) = &self.sink {
            sink.mcp_message_dropped(agent, direction, reason);
        }
    }
}

/// What happened to one call, until its event is recorded with the action
/// and decision (moved in, not copied).
pub(crate) struct CallRecord {
    started: Instant,
    traceparent: String,
    caller_span: Option<String>,
    outcome: CallOutcome,
    reason: Option<String>,
    upstream_status: Option<u16>,
    approval_id: Option<String>,
    compensation: Option<Compensable>,
    shown: Option<Value>,
    input: Option<Arc<InputView>>,
}

impl CallRecord {
    /// A call that started at `started`, traced as `traceparent` (a child
    /// of the agent's span `caller_span`, when it sent one).
    pub(crate) fn new(traceparent: String, caller_span: Option<String>, started: Instant) -> Self {
        CallRecord {
            started,
            traceparent,
            caller_span,
            outcome: CallOutcome::Refused,
            reason: None,
            upstream_status: None,
            approval_id: None,
            compensation: None,
            shown: None,
            input: None,
        }
    }

    /// The call's input as kept by the policy's redaction.
    pub(crate) fn input(&mut self, view: Arc<InputView>) {
        self.input = Some(view);
    }

    /// The W3C traceparent of the call.
    pub(crate) fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The agent's span id, when it sent a valid traceparent.
    pub(crate) fn caller_span(&self) -> Option<&str> {
        self.caller_span.as_deref()
    }

    /// Refused with `r`.
    pub(crate) fn refused(&mut self, r: &Refusal) {
        self.outcome = CallOutcome::Refused;
        self.reason = Some(r.reason.to_string());
        self.approval_id = r.approval_id.clone();
    }

    /// Forwarded, but the upstream failed with `r`.
    pub(crate) fn upstream_failed(&mut self, r: &Refusal) {
        self.outcome = CallOutcome::UpstreamFailed;
        self.reason = Some(r.reason.to_string());
    }

    /// Forwarded; the upstream answered `status`.
    pub(crate) fn forwarded(&mut self, status: u16) {
        self.outcome = CallOutcome::Forwarded;
        self.upstream_status = Some(status);
    }

    /// Forwarded under approval `approval_id`.
    pub(crate) fn approved(&mut self, approval_id: String) {
        self.approval_id = Some(approval_id);
    }

    /// The call as approvers and the owner see it.
    pub(crate) fn shown(&mut self, request: Value) {
        self.shown = Some(request);
    }

    /// The compensation registered for the call.
    pub(crate) fn compensable(&mut self, entry: Compensable) {
        self.compensation = Some(entry);
    }

    /// Ends the call: its event goes to `recorder`.
    pub(crate) fn finish(self, recorder: &Recorder, action: Action, decision: Decision) {
        let transport = match action.target {
            Some(ActionTarget::Mcp { .. }) => "mcp",
            _ => "http",
        };
        let shown = match decision.tier {
            crate::policy::Tier::Supervised if self.outcome == CallOutcome::Forwarded => self.shown,
            _ => None,
        };
        recorder.call(ToolCallEvent {
            at: UnixMillis::now(),
            transport,
            action,
            decision,
            outcome: self.outcome,
            reason: self.reason,
            upstream_status: self.upstream_status,
            approval_id: self.approval_id,
            compensation_id: self.compensation.as_ref().map(|c| c.id.clone()),
            traceparent: self.traceparent,
            caller_span: self.caller_span,
            duration_us: self.started.elapsed().as_micros() as u64,
            shown,
            compensation: self.compensation,
            input: self.input,
        });
    }
}
