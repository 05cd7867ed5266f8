//! What the log counts, for the caller to export as metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of the log's counters (monotonic unless said otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditCounters {
    /// Records accepted by `append`.
    pub appended: u64,
    /// Records written to the segment files.
    pub written: u64,
    /// Records fsynced.
    pub durable: u64,
    /// Record bytes written (lines and newlines).
    pub bytes: u64,
    /// fsyncs of segment files.
    pub fsyncs: u64,
    /// Failed writes and fsyncs.
    pub failures: u64,
    /// Appends refused (log failing, backlog, closed).
    pub refused: u64,
    /// Segments sealed.
    pub segments_sealed: u64,
    /// Segments deleted by retention.
    pub segments_deleted: u64,
    /// Checkpoints signed.
    pub checkpoints: u64,
    /// Checkpoints refused because the tree did not extend the last one.
    pub checkpoint_refusals: u64,
    /// Checkpoints a sink failed to take.
    pub sink_failures: u64,
    /// Torn tails repaired at open.
    pub repairs: u64,
    /// Gauge: whether appends are refused right now.
    pub failing: bool,
}

impl AuditCounters {
    /// Records accepted but not yet written (a gauge).
    pub fn queued(&self) -> u64 {
        self.appended.saturating_sub(self.written)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub appended: AtomicU64,
    pub written: AtomicU64,
    pub durable: AtomicU64,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub failures: AtomicU64,
    pub refused: AtomicU64,
    pub segments_sealed: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_refusals: AtomicU64,
    pub sink_failures: AtomicU64,
    pub repairs: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, failing: bool) -> AuditCounters {
        AuditCounters {
            appended: self.appended.load(Relaxed),
            written: self.written.load(Relaxed),
            durable: self.durable.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            failures: self.failures.load(Relaxed),
            refused: self.refused.load(Relaxed),
            segments_sealed: self.segments_sealed.load(Relaxed),
            segments_deleted: self.segments_deleted.load(Relaxed),
            checkpoints: self.checkpoints.load(Relaxed),
            checkpoint_refusals: self.checkpoint_refusals.load(Relaxed),
            sink_failures: self.sink_failures.load(Relaxed),
            repairs: self.repairs.load(Relaxed),
            failing,
        }
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}
