//! [`LogLines`]: the `tracing` lines of tool calls and quarantine releases
//! (target `agent_sidecar::gateway`) and kernel refusals (target
//! `agent_sidecar::egress`). The resolver and the proxies write their
//! own lines where they decide (rate-limited per agent), so their events
//! are not logged again here.

use tracing::{info, warn};

use super::{ActionEvent, ActionSink, DetectionResponse, QuarantineReleased};
use crate::{gateway::ToolCallEvent, kernel::events::DenyRecord};

/// Writes one log line per tool call, quarantine release and kernel
/// refusal.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogLines;

impl ActionSink for LogLines {
    fn consume(&self, event: ActionEvent<'_>) {
        match event {
            ActionEvent::ToolCall(e) => tool_call(e),
            ActionEvent::KernelDeny(d) => kernel_deny(d.agent_id, d.record),
            ActionEvent::QuarantineReleased(r) => quarantine_released(&r),
            ActionEvent::Response(r) => detection_response(r),
            _ => {}
        }
    }
}

fn tool_call(event: &ToolCallEvent) {
    info!(
        target: "agent_sidecar::gateway",
        agent = %event.action.agent.id,
        tool = event.action.tool.as_deref().unwrap_or("-"),
        action = event.action.action.as_deref().unwrap_or("-"),
        tier = %event.decision.tier,
        outcome = event.outcome.as_str(),
        reason = event.reason.as_deref().unwrap_or(""),
        upstream_status = event.upstream_status.unwrap_or(0),
        traceparent = %event.traceparent,
        "tool call"
    );
}

fn quarantine_released(r: &QuarantineReleased<'_>) {
    warn!(
        target: "agent_sidecar::gateway",
        agent = %r.agent.id,
        operator = r.operator,
        reason = r.reason,
        "quarantine released"
    );
}

fn kernel_deny(agent_id: &str, r: &DenyRecord) {
    let destination = r
        .destination
        .map(|d| d.to_string())
        .unwrap_or_else(|| "-".into());
    warn!(
        target: "agent_sidecar::egress",
        agent_id,
        hook = r.hook,
        reason = r.reason,
        destination = %destination,
        protocol = %r.protocol,
        pid = r.pid,
        uid = r.uid,
        comm = %r.comm,
        cgroup_id = r.cgroup_id,
        family = r.family,
        sock_type = r.sock_type,
        "egress denied"
    );
}

fn detection_response(r: &DetectionResponse) {
    warn!(
        target: "agent_sidecar::detect",
        agent = %r.agent_id,
        alert = %r.alert_id,
        detector = %r.detector,
        response = r.response.as_str(),
        min_tier = r.min_tier.map(|t| t.rank()).unwrap_or(0),
        until = r.until.map(|u| u.0).unwrap_or(0),
        applied = r.applied,
        error = r.error.as_deref().unwrap_or(""),
        "detector response"
    );
}
