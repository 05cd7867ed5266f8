//! [`AuditMetrics`]: what the audit trail's producers count, as Prometheus
//! series (the log's own counters are in [`super::AuditCounters`]).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The audit trail's series. Cheap to clone.
#[derive(Clone)]
pub struct AuditMetrics {
    refused: IntCounter,
    fail_open: IntCounter,
    lost: IntCounterVec,
    failing: IntGauge,
}

impl AuditMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<AuditMetrics> {
        let refused = IntCounter::new(
            "agent_sidecar_audit_actions_refused_total",
            "Actions refused because their audit record could not be written \
             (disk full, permissions, a failed fsync): the audit trail fails closed.",
        )?;
        let fail_open = IntCounter::new(
            "agent_sidecar_audit_fail_open_total",
            "Actions let through although their audit record could not be written \
             (only with --audit-fail-open).",
        )?;
        let lost = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_audit_records_lost_total",
                "Records of events that gate nothing (outcomes, DNS and proxy refusals, \
                 kernel denies, approvals, policy loads) that the audit log could not take, \
                 by record kind.",
            ),
            &["kind"],
        )?;
        let failing = IntGauge::new(
            "agent_sidecar_audit_failing",
            "1 while the audit log refuses records (actions are refused unless \
             --audit-fail-open), else 0.",
        )?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(fail_open.clone()))?;
        registry.register(Box::new(lost.clone()))?;
        registry.register(Box::new(failing.clone()))?;
        Ok(AuditMetrics {
            refused,
            fail_open,
            lost,
            failing,
        })
    }

    /// An action refused for want of its record.
    pub fn action_refused(&self) {
        self.refused.inc();
        self.failing.set(1);
    }

    /// An action let through without its record (fail-open).
    pub fn fail_open(&self) {
        self.fail_open.inc();
        self.failing.set(1);
    }

    /// A record of `kind` the log did not take.
    pub fn lost(&self, kind: &str) {
        self.lost.with_label_values(&[kind]).inc();
        self.failing.set(1);
    }

    /// The log took a record again.
    pub fn recovered(&self) {
        self.failing.set(0);
    }
}
