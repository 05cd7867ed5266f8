//! Prometheus metrics of tier-3 approvals, registered on the registry the
//! sidecar passes in.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::model::{ApprovalOutcome, PendingApproval};

/// Decisions by outcome, pending count, how long actions were held, and
/// requests refused before an approval was created.
#[derive(Clone, Debug)]
pub struct ApprovalMetrics {
    total: IntCounterVec,
    refused: IntCounterVec,
    pending: IntGauge,
    wait: Histogram,
    auth_failures: IntCounter,
    auth_throttled: IntCounter,
    admin_connections_refused: IntCounterVec,
    decisions_refused: IntCounterVec,
}

impl ApprovalMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let total = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_approvals_total",
                "Decided tier-3 approvals by outcome (approved, denied, expired, cancelled).",
            ),
            &["outcome"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_approvals_refused_total",
                "Approval requests refused before an approval was created, by reason (too_many_pending).",
            ),
            &["reason"],
        )?;
        let pending = IntGauge::new(
            "agent_sidecar_approvals_pending",
            "Tier-3 approvals waiting for an approver.",
        )?;
        let wait = Histogram::with_opts(
            HistogramOpts::new(
                "agent_sidecar_approval_wait_duration_seconds",
                "Time from an approval request to its decision or expiry.",
            )
            .buckets(vec![
                1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
            ]),
        )?;
        let auth_failures = IntCounter::new(
            "agent_sidecar_admin_auth_failures_total",
            "Admin API requests with a missing or wrong bearer token.",
        )?;
        let auth_throttled = IntCounter::new(
            "agent_sidecar_admin_auth_throttled_total",
            "Admin API requests refused with 429 because their peer failed to \
             authenticate too often (the token was not checked).",
        )?;
        let admin_connections_refused = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_admin_connections_refused_total",
                "Connections to an admin or metrics listener closed unserved, by reason: \
                 peer_limit (that peer already holds its share), at_capacity (the listener \
                 holds its most).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(admin_connections_refused.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(wait.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(auth_throttled.clone()))?;
        let decisions_refused = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_approval_decisions_refused_total",
                "Approve/deny requests refused by the approver directory, by reason: \
                 approver_token_required (the admin token alone), approver_mismatch (a name \
                 other than the token's approver).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(decisions_refused.clone()))?;
        Ok(ApprovalMetrics {
            total,
            refused,
            pending,
            wait,
            auth_failures,
            auth_throttled,
            admin_connections_refused,
            decisions_refused,
        })
    }

    /// Counts a failed admin authentication.
    pub(crate) fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    /// Counts a connection an admin listener closed unserved.
    pub(crate) fn admin_connection_refused(&self, reason: &str) {
        self.admin_connections_refused
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts an approve/deny refused by the approver directory.
    pub(crate) fn decision_refused(&self, reason: &str) {
        self.decisions_refused.with_label_values(&[reason]).inc();
    }

    /// Counts a request refused by the authentication throttle.
    pub(crate) fn auth_throttled(&self) {
        self.auth_throttled.inc();
    }

    /// Counts a decision and observes how long the action was held.
    pub(super) fn decided(&self, approval: &PendingApproval) {
        let Some(outcome) = approval.state.outcome() else {
            return;
        };
        let at = match &outcome {
            ApprovalOutcome::Approved(d) | ApprovalOutcome::Denied(d) => d.at,
            ApprovalOutcome::Expired { at } | ApprovalOutcome::Cancelled { at, .. } => *at,
        };
        self.total.with_label_values(&[outcome.label()]).inc();
        self.wait
            .observe(approval.created_at.until(at).as_secs_f64());
    }

    /// Counts a request refused before it became an approval.
    pub(super) fn refused(&self, reason: &str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    /// Sets the pending gauge.
    pub(super) fn set_pending(&self, n: usize) {
        self.pending.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use prometheus::Registry;

    use super::ApprovalMetrics;
    use crate::approvals::model::{
        ApprovalState, ApproverDecision, PendingApproval, UnixMillis, tests::sample_request,
    };

    #[test]
    fn decisions_are_counted_and_timed() {
        let registry = Registry::new();
        let metrics = ApprovalMetrics::register(&registry).expect("registers");
        let mut a = PendingApproval::new("k".into(), sample_request(), UnixMillis(0));
        metrics.decided(&a);
        a.state = ApprovalState::Denied(ApproverDecision {
            by: "x".into(),
            reason: "y".into(),
            at: UnixMillis(2_000),
        });
        metrics.decided(&a);
        metrics.set_pending(3);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encodes");
        assert!(
            text.contains("agent_sidecar_approvals_total{outcome=\"denied\"} 1"),
            "{text}"
        );
        assert!(!text.contains("outcome=\"approved\""), "{text}");
        assert!(text.contains("agent_sidecar_approvals_pending 3"), "{text}");
        assert!(
            text.contains("agent_sidecar_approval_wait_duration_seconds_sum 2"),
            "{text}"
        );
        assert!(
            text.contains("agent_sidecar_approval_wait_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn registering_twice_on_one_registry_fails() {
        let registry = Registry::new();
        ApprovalMetrics::register(&registry).expect("first");
        assert!(ApprovalMetrics::register(&registry).is_err());
    }
}
