//! Shipping: the stored audit records, sent at least once to the fleet's
//! collectors, nothing lost while one is down.
//!
//! Each destination is a disk-backed queue over the log itself: a durable
//! cursor (`DIR/ship/<name>.cursor`) names the first record its collector
//! has not acknowledged; a [`Shipper`] task per destination reads the
//! records after it from the segment files ([`reader`]), sends them in
//! batches and advances the cursor only when the collector took them.
//! A restart resumes at the cursor; collectors de-duplicate by record id.
//!
//! - [`otlp`]: OpenTelemetry logs (one log record per audit record) and
//!   traces (one GenAI `execute_tool` span per finished tool call) over
//!   OTLP/HTTP protobuf;
//! - [`webhook`]: JSON lines signed in the Standard Webhooks style;
//! - [`retry`]: only 429, 502, 503 and 504 (and no answer) are retried,
//!   after `Retry-After` or an exponential backoff with jitter; 400, 413
//!   and partial successes are counted as rejected and not sent again;
//! - [`metrics`]: queue depth, lag and results per destination.
//!
//! `docs/audit.md` ("Shipping") documents the behaviour and the flags.

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle};

pub mod args;
mod config;
pub mod cursor;
mod error;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod reader;
pub mod retry;
mod source;
pub mod webhook;
mod worker;

pub use args::{AuditShipArgs, OtlpSignal};
pub use config::{
    DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL, DEFAULT_TIMEOUT, DestinationConfig, MAX_BATCH_SIZE,
    Protocol, ShipConfig, WebhookSecret, headers_from_file, read_private,
};
pub use cursor::{Cursor, CursorState, SHIP_DIR};
pub use error::ShipError;
pub use metrics::ShipMetrics;
pub use retry::Backoff;
pub use source::ShipSource;

/// Ships one audit log to its destinations: checked and with every
/// cursor open (and locked) once built; [`Shipper::spawn`] starts one
/// task per destination.
pub struct Shipper {
    workers: Vec<worker::Worker>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field(
                "destinations",
                &self.workers.iter().map(|w| &w.cfg.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Shipper {
    /// Checks `config` and opens the destinations' cursors. Two
    /// destinations with one name, a bad URL, header or secret, or a cursor
    /// held by another process are errors.
    pub fn new(
        config: ShipConfig,
        source: ShipSource,
        metrics: ShipMetrics,
    ) -> Result<Shipper, ShipError> {
        let (stop, shutdown) = watch::channel(false);
        let client = http::client(config.tls.clone(), Duration::from_secs(10));
        let resource = otlp::resource(config.instance.as_deref());
        let mut workers = Vec::with_capacity(config.destinations.len());
        for (i, d) in config.destinations.iter().enumerate() {
            if config.destinations[..i].iter().any(|o| o.name == d.name) {
                return Err(ShipError::Config {
                    what: format!("audit destination {:?}", d.name),
                    reason: "two destinations have this name".into(),
                    fix: "give each destination its own name".into(),
                });
            }
            let checked = d.check(config.tls.is_some())?;
            let cursor = Cursor::open(&config.dir, &d.name)?;
            if let Some(end) = source.durable()
                && cursor.next_seq() > end
            {
                return Err(ShipError::Config {
                    what: format!("audit destination {:?}", d.name),
                    reason: format!(
                        "its cursor says {} records were shipped, but the log holds {end}: the log was cut or replaced",
                        cursor.next_seq()
                    ),
                    fix: "run `agent-sidecar audit verify` on the log; if the log is right, delete the cursor file to ship it again".into(),
                });
            }
            check_last_acked(&config.dir, &d.name, &cursor)?;
            let reader = reader::StoreReader::new(&config.dir, cursor.next_seq());
            metrics.queue(&d.name, 0, 0, cursor.next_seq());
            workers.push(worker::Worker {
                cfg: d.clone(),
                checked,
                client: client.clone(),
                cursor: Some(cursor),
                reader: Some(reader),
                source: source.clone(),
                metrics: metrics.clone(),
                resource: resource.clone(),
                poll: config.poll_interval,
                shutdown: shutdown.clone(),
                pending: Vec::new(),
                first_pending_at: None,
            });
        }
        Ok(Shipper { workers, stop })
    }

    /// Starts one task per destination (on the current tokio runtime).
    pub fn spawn(self) -> ShipperHandle {
        let tasks = self
            .workers
            .into_iter()
            .map(|w| tokio::spawn(w.run()))
            .collect();
        ShipperHandle {
            stop: self.stop,
            tasks,
        }
    }
}

/// Checks that the last record the cursor names as acknowledged is still
/// the one in the log (same id): a log replaced under its cursors would
/// otherwise be shipped from the middle. A record retention deleted
/// cannot be checked and is not.
fn check_last_acked(dir: &std::path::Path, name: &str, cursor: &Cursor) -> Result<(), ShipError> {
    let (Some(last), Some(id)) = (cursor.next_seq().checked_sub(1), &cursor.state().last_id) else {
        return Ok(());
    };
    let batch = reader::StoreReader::new(dir, last).read(1, None)?;
    let Some(stored) = batch.lines.first().filter(|l| l.seq == last) else {
        return Ok(());
    };
    let found = super::record::AuditRecord::parse(&stored.line)
        .map(|r| r.id)
        .unwrap_or_default();
    if &found == id {
        return Ok(());
    }
    Err(ShipError::Config {
        what: format!("audit destination {name:?}"),
        reason: format!(
            "its cursor says record {last} ({id}) was the last one shipped, but the log holds {found:?} there: the log was replaced"
        ),
        fix: "run `agent-sidecar audit verify` on the log; if the log is right, delete the cursor file to ship it again".into(),
    })
}

/// The running shipper.
#[derive(Debug)]
pub struct ShipperHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ShipperHandle {
    /// Asks every destination to send the records stored by then (each
    /// batch once, no retries), waits up to `grace` for them, then stops
    /// them. What was not acknowledged is sent after the next start.
    /// Returns how many destinations were stopped before they were done.
    pub async fn shutdown(self, grace: Duration) -> usize {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let mut cut = 0;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
                cut += 1;
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests;
