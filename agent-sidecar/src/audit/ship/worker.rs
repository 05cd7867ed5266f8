//! One destination's loop: read the records after its cursor from the
//! store, gather a batch (full, or its first record waited the flush
//! interval), send it until the collector takes it (retrying only what
//! may succeed later), then advance the durable cursor. At least once:
//! a crash between the collector's answer and the cursor's fsync sends
//! the batch again, with the same record ids.

use std::{
    ops::ControlFlow,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::header::HeaderValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::watch;

use super::{
    config::{Checked, DestinationConfig, Protocol},
    cursor::Cursor,
    error::ShipError,
    http::{ShipClient, post},
    metrics::ShipMetrics,
    otlp::{self, PROTOBUF, Parsed, PartialSuccess},
    reader::{StoreReader, StoredLine},
    retry::{Verdict, classify},
    source::ShipSource,
    webhook,
};
use crate::audit::{record::AuditRecord, time::Timestamp};

/// How one batch ended.
enum Sent {
    /// Acknowledged, or given up for good (rejected): the cursor moves.
    Done,
    /// Shutting down before the collector took it: the cursor stays.
    Stopped,
}

/// The loop of one destination.
pub(crate) struct Worker {
    pub cfg: DestinationConfig,
    pub checked: Checked,
    pub client: ShipClient,
    pub cursor: Option<Cursor>,
    pub reader: Option<StoreReader>,
    pub source: ShipSource,
    pub metrics: ShipMetrics,
    pub resource: Resource,
    pub poll: Duration,
    pub shutdown: watch::Receiver<bool>,
    pub pending: Vec<StoredLine>,
    pub first_pending_at: Option<Instant>,
}

impl Worker {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn acked(&self) -> u64 {
        self.cursor.as_ref().map_or(0, Cursor::next_seq)
    }

    fn read_to(&self) -> u64 {
        self.reader.as_ref().map_or(0, StoreReader::next_seq)
    }

    /// Runs until shutdown; then sends every record stored by then, each
    /// batch once (no retry), and returns at the first one not taken.
    pub(super) async fn run(mut self) {
        tracing::info!(
            destination = self.name(),
            protocol = self.cfg.protocol.as_str(),
            endpoint = %self.checked.uri,
            from = self.acked(),
            "shipping audit records"
        );
        if self.checked.uri.scheme_str() == Some("http") {
            tracing::warn!(
                destination = self.name(),
                endpoint = %self.checked.uri,
                "audit records are shipped without TLS: use an https:// collector unless it runs on this host"
            );
        }
        loop {
            let stopping = self.stopping();
            if let Err(e) = self.fill().await {
                self.metrics.stalled(self.name(), true);
                tracing::error!(destination = self.name(), "{e}");
                if stopping || self.pause(self.cfg.backoff.max).await.is_break() {
                    return;
                }
                continue;
            }
            self.observe();
            if self.pending.is_empty() {
                // Only lost or skipped records were read: move past them.
                if self.read_to() > self.acked() && self.advance().await.is_err() {
                    return;
                }
                if stopping {
                    return; // drained
                }
                // A shutdown ends the wait: the next turn reads what was
                // stored meanwhile (the last records) and sends it.
                let _ = self.pause(self.poll).await;
                continue;
            }
            let waited = self
                .first_pending_at
                .map_or(Duration::ZERO, |t| t.elapsed());
            let full = self.pending.len() >= self.cfg.batch_size;
            if !full && !stopping && waited < self.cfg.flush_interval {
                let wait = (self.cfg.flush_interval - waited).min(self.poll);
                // A shutdown ends the wait: what is pending is sent.
                let _ = self.pause(wait).await;
                continue;
            }
            match self.send_batch(stopping).await {
                Sent::Done => {
                    if self.advance().await.is_err() {
                        return;
                    }
                }
                Sent::Stopped => return,
            }
            // Shutting down: the next batch too, until the queue is empty,
            // a batch is not taken at once, or the grace period ends.
        }
    }

    /// Reads more records into the pending batch (as many as fit).
    async fn fill(&mut self) -> Result<(), ShipError> {
        let room = self.cfg.batch_size.saturating_sub(self.pending.len());
        if room == 0 {
            return Ok(());
        }
        let end = self.source.durable();
        let mut reader = self.reader.take().expect("reader present");
        let (reader, result) = tokio::task::spawn_blocking(move || {
            let r = reader.read(room, end);
            (reader, r)
        })
        .await
        .expect("the store read does not panic");
        self.reader = Some(reader);
        let batch = result?;
        if let Some((from, to)) = batch.lost {
            self.metrics.records(self.name(), "lost", to - from);
            tracing::error!(
                destination = self.name(),
                from,
                to = to - 1,
                "audit records were deleted by retention before they were shipped: they are lost for this destination (the segment's .meta file says what was deleted)"
            );
        }
        if !batch.lines.is_empty() && self.pending.is_empty() {
            self.first_pending_at = Some(Instant::now());
        }
        self.pending.extend(batch.lines);
        self.metrics.stalled(self.name(), false);
        Ok(())
    }

    /// Publishes the queue's depth, age and cursor.
    fn observe(&self) {
        let acked = self.acked();
        let end = self.source.durable().unwrap_or_else(|| self.read_to());
        let lag = self.pending.first().map_or(0, |l| {
            let age = Timestamp::now().nanos().saturating_sub(l.time.nanos());
            (age.max(0) / 1_000_000_000) as u64
        });
        self.metrics
            .queue(self.name(), end.saturating_sub(acked), lag, acked);
    }

    /// Whether shutdown was asked (or the handle dropped).
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    /// Sleeps `d`; breaks when shutdown is asked meanwhile.
    async fn pause(&mut self, d: Duration) -> ControlFlow<()> {
        if self.stopping() {
            return ControlFlow::Break(());
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => ControlFlow::Continue(()),
            _ = self.shutdown.changed() => ControlFlow::Break(()),
        }
    }

    /// Sleeps `d` before a retry, publishing the queue (which grows while
    /// the collector is away) every second; breaks on shutdown.
    async fn wait_observing(&mut self, d: Duration) -> ControlFlow<()> {
        let until = Instant::now() + d;
        loop {
            self.observe();
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return ControlFlow::Continue(());
            }
            self.pause(left.min(Duration::from_secs(1))).await?;
        }
    }

    /// Stores the cursor after the pending batch (and anything skipped).
    async fn advance(&mut self) -> Result<(), ()> {
        let next = self.read_to();
        let last_id = self
            .pending
            .last()
            .and_then(|l| AuditRecord::parse(&l.line).ok().map(|r| r.id))
            .or_else(|| self.cursor.as_ref().and_then(|c| c.state().last_id.clone()));
        let mut cursor = self.cursor.take().expect("cursor present");
        let (cursor, result) = tokio::task::spawn_blocking(move || {
            let r = cursor.advance(next, last_id);
            (cursor, r)
        })
        .await
        .expect("the cursor write does not panic");
        self.cursor = Some(cursor);
        match result {
            Ok(()) => {
                self.pending.clear();
                self.first_pending_at = None;
                self.observe();
                Ok(())
            }
            Err(e) => {
                // The batch was delivered but the cursor could not be
                // stored: stop here (a restart sends it again).
                self.metrics.stalled(self.name(), true);
                tracing::error!(
                    destination = self.name(),
                    "{e}; shipping to this destination stops"
                );
                Err(())
            }
        }
    }

    /// Sends the pending batch until it is delivered or given up.
    async fn send_batch(&mut self, stopping: bool) -> Sent {
        let mut parsed = Vec::with_capacity(self.pending.len());
        for stored in &self.pending {
            match AuditRecord::parse(&stored.line) {
                Ok(record) => parsed.push(Parsed { stored, record }),
                Err(e) => {
                    self.metrics.stalled(&self.cfg.name, true);
                    tracing::error!(
                        destination = self.cfg.name,
                        seq = stored.seq,
                        "record {} is not a valid record ({e}); shipping stops here: run `agent-sidecar audit verify` on the log",
                        stored.seq
                    );
                    return Sent::Stopped;
                }
            }
        }
        let first_id = parsed
            .first()
            .map(|p| p.record.id.clone())
            .unwrap_or_default();
        let (body, content_type, units) = match &self.cfg.protocol {
            Protocol::OtlpLogs => (
                otlp::encode_logs(&otlp::logs_request(&parsed, &self.resource)),
                PROTOBUF,
                parsed.len(),
            ),
            Protocol::OtlpTraces => match otlp::traces_request(&parsed, &self.resource) {
                Some(req) => {
                    let spans = req
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len())
                        .sum();
                    (otlp::encode_traces(&req), PROTOBUF, spans)
                }
                None => {
                    self.metrics
                        .records(&self.cfg.name, "skipped", parsed.len() as u64);
                    return Sent::Done;
                }
            },
            Protocol::Webhook(_) => (
                webhook::body(&self.pending),
                webhook::JSON_LINES,
                parsed.len(),
            ),
        };
        let records = parsed.len() as u64;
        let skipped = records.saturating_sub(units as u64);
        drop(parsed);
        let body = Bytes::from(body);
        let (from, to) = (
            self.pending.first().map_or(0, |l| l.seq),
            self.pending.last().map_or(0, |l| l.seq),
        );
        let msg_id = webhook::message_id(&first_id, self.pending.len());
        let mut attempt = 0u32;
        loop {
            let mut headers = self.checked.headers.clone();
            if let Protocol::Webhook(secret) = &self.cfg.protocol {
                let ts = Timestamp::now().nanos() / 1_000_000_000;
                let sig = webhook::signature(secret.key(), &msg_id, ts, &body);
                for (k, v) in [
                    ("webhook-id", msg_id.clone()),
                    ("webhook-timestamp", ts.to_string()),
                    ("webhook-signature", sig),
                ] {
                    headers.insert(k, HeaderValue::from_str(&v).expect("ASCII header value"));
                }
            }
            let name = self.cfg.name.clone();
            let wait = match post(
                &self.client,
                &self.checked.uri,
                &headers,
                content_type,
                body.clone(),
                self.cfg.timeout,
            )
            .await
            {
                Ok(answer) => match classify(answer.status, answer.retry_after.as_ref()) {
                    Verdict::Delivered => {
                        let partial = match self.cfg.protocol {
                            Protocol::OtlpLogs => otlp::logs_partial(&answer.body),
                            Protocol::OtlpTraces => otlp::traces_partial(&answer.body),
                            Protocol::Webhook(_) => PartialSuccess::default(),
                        };
                        let rejected = (partial.rejected.max(0) as u64).min(units as u64);
                        self.metrics.request(&name, "delivered");
                        self.metrics.stalled(&name, false);
                        self.metrics
                            .records(&name, "shipped", records - skipped - rejected);
                        self.metrics.records(&name, "skipped", skipped);
                        if rejected > 0 {
                            self.metrics.records(&name, "rejected", rejected);
                            tracing::error!(
                                destination = name,
                                from,
                                to,
                                rejected,
                                message = partial.message,
                                "the collector took the batch but rejected some of its records (partial success); they are not sent again and stay in the audit log"
                            );
                        } else if !partial.message.is_empty() {
                            tracing::warn!(
                                destination = name,
                                from,
                                to,
                                message = partial.message,
                                "the collector accepted the batch with a warning"
                            );
                        }
                        return Sent::Done;
                    }
                    Verdict::Rejected => {
                        self.metrics.request(&name, "rejected");
                        self.metrics.records(&name, "rejected", records - skipped);
                        self.metrics.records(&name, "skipped", skipped);
                        tracing::error!(
                            destination = name,
                            from,
                            to,
                            status = answer.status.as_u16(),
                            answer = %String::from_utf8_lossy(&answer.body[..answer.body.len().min(512)]),
                            "the collector rejected the batch; it is not sent again and its records stay in the audit log"
                        );
                        return Sent::Done;
                    }
                    Verdict::Retry(after) => {
                        self.metrics.request(&name, "retried");
                        let wait = after
                            .map(|a| self.cfg.backoff.honour(a))
                            .unwrap_or_else(|| self.cfg.backoff.delay(attempt, &mut rand::rng()));
                        tracing::warn!(
                            destination = name,
                            from,
                            to,
                            status = answer.status.as_u16(),
                            wait_ms = wait.as_millis() as u64,
                            "the collector asked to send the batch again later"
                        );
                        wait
                    }
                    Verdict::Stalled => {
                        self.metrics.request(&name, "stalled");
                        self.metrics.stalled(&name, true);
                        tracing::error!(
                            destination = name,
                            from,
                            to,
                            status = answer.status.as_u16(),
                            answer = %String::from_utf8_lossy(&answer.body[..answer.body.len().min(512)]),
                            "the collector refused the batch with a status that points at the configuration (URL, credentials) or the collector; the records are kept and sent again later"
                        );
                        self.cfg.backoff.max
                    }
                },
                Err(e) => {
                    self.metrics.request(&name, "retried");
                    let wait = self.cfg.backoff.delay(attempt, &mut rand::rng());
                    tracing::warn!(
                        destination = name,
                        from,
                        to,
                        wait_ms = wait.as_millis() as u64,
                        "sending audit records failed: {e}"
                    );
                    wait
                }
            };
            attempt = attempt.saturating_add(1);
            if stopping || self.wait_observing(wait).await.is_break() {
                return Sent::Stopped;
            }
        }
    }
}
