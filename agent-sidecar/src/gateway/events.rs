//! One structured event per tool call the gateway saw: who, what, the
//! decision, what happened, and the trace it belongs to. Never carries
//! headers or credentials.

use serde::Serialize;

use crate::{
    approvals::UnixMillis,
    policy::{Action, Decision},
};

/// What happened to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded upstream (tier 1 or 2, or approved).
    Forwarded,
    /// Refused before reaching the upstream.
    Refused,
    /// Forwarded, but the upstream could not be reached or failed.
    UpstreamFailed,
}

/// A gateway event.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayEvent {
    /// When the call finished.
    pub at: UnixMillis,
    /// `http` or `mcp`.
    pub transport: &'static str,
    /// The action as the policy saw it (agent identity, tool, attributes).
    pub action: Action,
    /// The decision.
    pub decision: Decision,
    /// What happened.
    pub outcome: Outcome,
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
    /// Time in the gateway, microseconds (including any approval wait).
    pub duration_us: u64,
}

/// Receives every [`GatewayEvent`] (the audit trail hooks in here).
pub trait GatewaySink: Send + Sync {
    /// Called once per call, after its outcome is known.
    fn event(&self, event: &GatewayEvent);

    /// Called for each MCP message the gateway drops: `direction` is
    /// `to_agent` or `to_server`, `reason` e.g. `unexpected_response` or
    /// `server_request_refused`.
    fn mcp_message_dropped(&self, _agent: &str, _direction: &str, _reason: &str) {}
}

/// Logs the event with `tracing` and hands it to the sink, if any.
pub(crate) fn emit(sink: Option<&dyn GatewaySink>, event: GatewayEvent) {
    tracing::info!(
        target: "agent_sidecar::gateway",
        agent = %event.action.agent.id,
        tool = event.action.tool.as_deref().unwrap_or("-"),
        action = event.action.action.as_deref().unwrap_or("-"),
        tier = %event.decision.tier,
        outcome = ?event.outcome,
        reason = event.reason.as_deref().unwrap_or(""),
        upstream_status = event.upstream_status.unwrap_or(0),
        traceparent = %event.traceparent,
        "tool call"
    );
    if let Some(sink) = sink {
        sink.event(&event);
    }
}
