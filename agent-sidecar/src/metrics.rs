//! Prometheus metrics of the sidecar.

use std::sync::Mutex;

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::kernel::{KernelCounters, events::DenyRecord};

/// Every metric the sidecar exports.
pub struct Metrics {
    registry: Registry,
    egress_denied: IntCounterVec,
    kernel_decisions: IntCounterVec,
    allowlist_entries: IntGaugeVec,
    last_kernel: Mutex<KernelCounters>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers all metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let egress_denied = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_egress_denied_total",
                "Egress attempts refused by the kernel hooks, per deny event received.",
            ),
            &["agent_id", "hook", "reason", "protocol"],
        )
        .expect("valid metric");
        let kernel_decisions = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_kernel_decisions_total",
                "Decisions counted inside the kernel programs (outcome: allowed, denied, \
                 skb_dropped, events_lost).",
            ),
            &["agent_id", "outcome"],
        )
        .expect("valid metric");
        let allowlist_entries = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_allowlist_entries",
                "Entries in the kernel egress allowlist.",
            ),
            &["agent_id"],
        )
        .expect("valid metric");
        for c in [&egress_denied, &kernel_decisions] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(allowlist_entries.clone()))
            .expect("unique metric");
        Self {
            registry,
            egress_denied,
            kernel_decisions,
            allowlist_entries,
            last_kernel: Mutex::new(KernelCounters::default()),
        }
    }

    /// Counts one deny event.
    pub fn record_deny(&self, agent_id: &str, r: &DenyRecord) {
        self.egress_denied
            .with_label_values(&[agent_id, r.hook, r.reason, &r.protocol])
            .inc();
    }

    /// Sets the allowlist size.
    pub fn set_allowlist_entries(&self, agent_id: &str, n: usize) {
        self.allowlist_entries
            .with_label_values(&[agent_id])
            .set(n as i64);
    }

    /// Advances the kernel counters to the totals read from the maps.
    pub fn observe_kernel(&self, agent_id: &str, now: KernelCounters) {
        let mut last = self.last_kernel.lock().expect("metrics lock");
        for (outcome, new, old) in [
            ("allowed", now.allowed, last.allowed),
            ("denied", now.denied, last.denied),
            ("skb_dropped", now.skb_dropped, last.skb_dropped),
            ("events_lost", now.events_lost, last.events_lost),
        ] {
            self.kernel_decisions
                .with_label_values(&[agent_id, outcome])
                .inc_by(new.saturating_sub(old));
        }
        *last = now;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).expect("utf-8 metrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_counters_advance_by_delta() {
        let m = Metrics::new();
        m.observe_kernel(
            "a",
            KernelCounters {
                allowed: 5,
                denied: 2,
                ..Default::default()
            },
        );
        m.observe_kernel(
            "a",
            KernelCounters {
                allowed: 7,
                denied: 2,
                ..Default::default()
            },
        );
        let text = m.render();
        assert!(
            text.contains(
                r#"agent_sidecar_kernel_decisions_total{agent_id="a",outcome="allowed"} 7"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"agent_sidecar_kernel_decisions_total{agent_id="a",outcome="denied"} 2"#
            ),
            "{text}"
        );
    }
}
