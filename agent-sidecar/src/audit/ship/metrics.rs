//! Prometheus metrics of the shipper, per destination.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// The shipper's series, labelled by `destination`.
#[derive(Clone, Debug)]
pub struct ShipMetrics {
    queue_depth: IntGaugeVec,
    lag_seconds: IntGaugeVec,
    acked: IntGaugeVec,
    records: IntCounterVec,
    requests: IntCounterVec,
    stalled: IntGaugeVec,
}

impl Default for ShipMetrics {
    /// Metrics on a registry of their own (tests).
    fn default() -> Self {
        ShipMetrics::register(&Registry::new()).expect("fresh registry")
    }
}

impl ShipMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_audit_ship_queue_depth",
                "Audit records stored and not yet acknowledged by the destination: the depth \
                 of its disk-backed queue, i.e. its lag in records.",
            ),
            &["destination"],
        )?;
        let lag_seconds = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_audit_ship_lag_seconds",
                "Age of the oldest audit record not yet acknowledged by the destination \
                 (0 when none waits).",
            ),
            &["destination"],
        )?;
        let acked = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_audit_ship_acked_records",
                "The destination's durable cursor: records acknowledged (or skipped as \
                 rejected or lost) from the start of the log.",
            ),
            &["destination"],
        )?;
        let records = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_audit_ship_records_total",
                "Audit records by result: shipped (acknowledged), rejected (the collector \
                 refused them: 400, 413 or a partial success; not retried), lost (retention \
                 deleted them before they were shipped), skipped (sent as nothing: records \
                 that are not finished tool calls, for a traces destination).",
            ),
            &["destination", "result"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_audit_ship_requests_total",
                "Requests to the destination by outcome: delivered, retried (429, 502, 503, \
                 504, or no answer), rejected (400, 413), stalled (any other status: the \
                 batch is kept and tried again after the longest backoff).",
            ),
            &["destination", "outcome"],
        )?;
        let stalled = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_audit_ship_stalled",
                "1 while the destination cannot go on: a collector answering with a status \
                 that is neither retried nor a rejection, or an audit log that cannot be read \
                 or does not verify (the log says why).",
            ),
            &["destination"],
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(lag_seconds.clone()))?;
        registry.register(Box::new(acked.clone()))?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(stalled.clone()))?;
        Ok(ShipMetrics {
            queue_depth,
            lag_seconds,
            acked,
            records,
            requests,
            stalled,
        })
    }

    /// Sets the queue of `dest`: depth (records), age of its oldest
    /// record (seconds) and its cursor.
    pub fn queue(&self, dest: &str, depth: u64, lag_seconds: u64, acked: u64) {
        self.queue_depth
            .with_label_values(&[dest])
            .set(depth as i64);
        self.lag_seconds
            .with_label_values(&[dest])
            .set(lag_seconds as i64);
        self.acked.with_label_values(&[dest]).set(acked as i64);
    }

    /// Counts `n` records of `dest` with `result`.
    pub fn records(&self, dest: &str, result: &str, n: u64) {
        if n > 0 {
            self.records.with_label_values(&[dest, result]).inc_by(n);
        }
    }

    /// Counts a request of `dest` with `outcome`.
    pub fn request(&self, dest: &str, outcome: &str) {
        self.requests.with_label_values(&[dest, outcome]).inc();
    }

    /// Sets whether `dest` is stalled.
    pub fn stalled(&self, dest: &str, stalled: bool) {
        self.stalled
            .with_label_values(&[dest])
            .set(i64::from(stalled));
    }

    /// Records counted for `dest` with `result` (tests).
    pub fn records_count(&self, dest: &str, result: &str) -> u64 {
        self.records.with_label_values(&[dest, result]).get()
    }

    /// Requests counted for `dest` with `outcome` (tests).
    pub fn requests_count(&self, dest: &str, outcome: &str) -> u64 {
        self.requests.with_label_values(&[dest, outcome]).get()
    }

    /// The queue depth of `dest` (tests).
    pub fn queue_depth(&self, dest: &str) -> i64 {
        self.queue_depth.with_label_values(&[dest]).get()
    }
}
