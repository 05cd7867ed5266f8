//! Prometheus metrics of the tool gateway, fed by its events.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::record::ToolCallEvent;

/// `agent_sidecar_gateway_calls_total`,
/// `agent_sidecar_gateway_call_duration_seconds` and
/// `agent_sidecar_gateway_mcp_messages_dropped_total`. Cheap to clone.
#[derive(Clone)]
pub struct GatewayMetrics {
    calls: IntCounterVec,
    seconds: HistogramVec,
    mcp_dropped: IntCounterVec,
}

impl GatewayMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_gateway_calls_total",
                "Tool calls seen by the gateway, by tool, tier and outcome \
                 (forwarded, refused, upstream_failed) and refusal reason.",
            ),
            &["agent_id", "tool", "tier", "outcome", "reason"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "agent_sidecar_gateway_call_duration_seconds",
                "Time a tool call spent in the gateway, including any approval wait and \
                 the upstream's answer head.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
                300.0, 3600.0,
            ]),
            &["agent_id", "tier"],
        )?;
        let mcp_dropped = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_gateway_mcp_messages_dropped_total",
                "MCP messages the gateway dropped, by direction (to_agent, to_server) and \
                 reason (unexpected_response, server_request_refused, invalid_message, \
                 answer_lost: the server's answer ended before the response to the agent).",
            ),
            &["agent_id", "direction", "reason"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(mcp_dropped.clone()))?;
        Ok(GatewayMetrics {
            calls,
            seconds,
            mcp_dropped,
        })
    }
}

impl GatewayMetrics {
    /// Counts one call.
    pub fn call(&self, e: &ToolCallEvent) {
        let tier = e.decision.tier.as_str();
        let outcome = e.outcome.as_str();
        let tool = e.action.tool.as_deref().unwrap_or("undeclared");
        let reason = e.reason.as_deref().unwrap_or("");
        let agent = e.action.agent.id.as_str();
        self.calls
            .with_label_values(&[agent, tool, tier, outcome, reason])
            .inc();
        self.seconds
            .with_label_values(&[agent, tier])
            .observe(e.duration_us as f64 / 1e6);
    }

    /// Counts one dropped MCP message.
    pub fn mcp_message_dropped(&self, agent: &str, direction: &str, reason: &str) {
        self.mcp_dropped
            .with_label_values(&[agent, direction, reason])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        approvals::UnixMillis,
        policy::{Action, CompiledPolicySet},
    };

    #[test]
    fn events_are_counted_by_tool_tier_and_outcome() {
        let registry = Registry::new();
        let m = GatewayMetrics::register(&registry).unwrap();
        let set = CompiledPolicySet::compile(crate::policy::Snapshot::from_files(
            "p",
            vec![crate::policy::source::SourceFile {
                path: "base.yaml".into(),
                text: "kind: base\nname: t\nlabel: t\n".into(),
            }],
        ))
        .unwrap();
        let mut action = Action::default();
        action.agent.id = "a1".into();
        action.tool = Some("crm".into());
        let decision = set.decide(&action);
        let event = ToolCallEvent {
            at: UnixMillis::now(),
            transport: "mcp",
            action,
            decision,
            outcome: crate::gateway::CallOutcome::Refused,
            reason: Some("approval_expired".into()),
            upstream_status: None,
            approval_id: None,
            compensation_id: None,
            traceparent: String::new(),
            caller_span: None,
            duration_us: 1_500_000,
            shown: None,
            compensation: None,
            input: None,
        };
        m.call(&event);
        m.call(&event);
        let text = {
            use prometheus::Encoder;
            let mut buf = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut buf)
                .unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert!(
            text.contains(r#"agent_sidecar_gateway_calls_total{agent_id="a1",outcome="refused",reason="approval_expired",tier="3",tool="crm"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"agent_sidecar_gateway_call_duration_seconds_bucket{agent_id="a1",tier="3",le="5"} 2"#
            ),
            "{text}"
        );
    }
}
