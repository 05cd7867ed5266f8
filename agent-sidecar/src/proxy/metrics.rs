//! Prometheus metrics of the proxy listeners, registered on the registry the
//! sidecar passes in.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::events::{ListenerKind, ProxyEvent};

/// Counters and gauges of the proxy.
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    connections: IntCounterVec,
    refusals: IntCounterVec,
    bytes: IntCounterVec,
    active: IntGaugeVec,
}

impl ProxyMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let connections = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_proxy_connections_total",
                "Proxied connections and forwarded requests by outcome \
                 (allowed, refused, failed).",
            ),
            &["agent_id", "listener", "decision"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_proxy_refusals_total",
                "Refused or failed proxy connections by reason code.",
            ),
            &["agent_id", "listener", "reason"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_proxy_bytes_total",
                "Bytes spliced through the proxy (direction: up = agent to upstream, \
                 down = upstream to agent).",
            ),
            &["agent_id", "listener", "direction"],
        )?;
        let active = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_proxy_active_connections",
                "Proxy connections currently open.",
            ),
            &["agent_id", "listener"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(active.clone()))?;
        Ok(Self {
            connections,
            refusals,
            bytes,
            active,
        })
    }

    /// Counts a finished connection.
    pub(crate) fn observe(&self, e: &ProxyEvent) {
        let listener = e.listener.as_str();
        self.connections
            .with_label_values(&[e.agent_id.as_str(), listener, e.decision.as_str()])
            .inc();
        if let Some(reason) = &e.reason {
            self.refusals
                .with_label_values(&[e.agent_id.as_str(), listener, reason.as_str()])
                .inc();
        }
        self.bytes
            .with_label_values(&[e.agent_id.as_str(), listener, "up"])
            .inc_by(e.bytes_up);
        self.bytes
            .with_label_values(&[e.agent_id.as_str(), listener, "down"])
            .inc_by(e.bytes_down);
    }

    /// Counts a connection closed by the listener's limit (`reason`:
    /// `evicted_idle` or `at_capacity`).
    pub(crate) fn shed(&self, agent_id: &str, listener: ListenerKind, reason: &str) {
        self.refusals
            .with_label_values(&[agent_id, listener.as_str(), reason])
            .inc();
    }

    /// The open-connections gauge of a listener.
    pub(crate) fn active(&self, agent_id: &str, listener: ListenerKind) -> IntGauge {
        self.active
            .with_label_values(&[agent_id, listener.as_str()])
    }
}
