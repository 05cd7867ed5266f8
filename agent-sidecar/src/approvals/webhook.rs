//! [`WebhookNotifier`]: POSTs events (approvals, the owner's and the SOC's
//! notices, alerts) as signed JSON envelopes to a URL.
//!
//! Every event is wrapped in the sidecar's [`Envelope`] (an event id for
//! de-duplication, the schema version, an RFC 3339 timestamp) and, with a
//! secret, signed in the Standard Webhooks style (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64>`). Events go
//! through a bounded channel to one background task, so the producer
//! never waits for the webhook; the task writes each to its [`DiskQueue`]
//! first, then sends the queue oldest first, retrying with exponential
//! backoff, so a webhook that is down gets its events when it is back,
//! also after a restart. A 4xx answer other than 408 and 429 refuses the
//! event for good. Every outcome is counted ([`DeliveryMetrics`]).
//! Deliveries go through the sidecar's pooled HTTP client
//! ([`crate::http_client`]): one kept connection per webhook, `https://`
//! URLs verified against the trust anchors the configuration gives (a
//! certificate that does not verify fails the attempt; nothing is sent in
//! the clear), through the operator's HTTP proxy when the configuration
//! names one.

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode, header};
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    chain::ChainStep,
    http::{HttpError, RemoteEndpoint},
    model::{PendingApproval, UnixMillis},
    notify::Notifier,
};
use crate::webhook::{DeliveryMetrics, DiskQueue, Envelope, PushError, WebhookSecret, signature};

/// Where and how hard to deliver webhook events.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `http://` or `https://host[:port]/path` to POST to.
    pub url: String,
    /// How an `https://` URL's server is verified; its ALPN is replaced by
    /// `h2, http/1.1`. Required for `https://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Which URLs go through an HTTP proxy (`CONNECT`), e.g.
    /// [`crate::http_client::proxy_from_env`]; `None`: none do.
    pub proxy: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
    /// Timeout of one attempt (connect, send, read the answer).
    pub timeout: Duration,
    /// Attempts per event, at least 1; after the last, the event is
    /// dropped (counted, logged).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubles after each failure,
    /// up to 30 s.
    pub initial_backoff: Duration,
    /// Events that may wait in memory between their producer and the
    /// queue, and in the queue, before new ones are dropped (counted).
    pub queue: usize,
    /// The queue's directory (mode 0700); `None` keeps the queue in
    /// memory only (events waiting at exit are lost).
    pub queue_dir: Option<PathBuf>,
    /// The signing secret; `None` sends unsigned events.
    pub secret: Option<WebhookSecret>,
    /// The webhook's name in the metrics (`approver`, `owner`, `soc`).
    pub sink: String,
    /// Where outcomes are counted.
    pub metrics: Option<Arc<dyn DeliveryMetrics>>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("sink", &self.sink)
            .field("queue_dir", &self.queue_dir)
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Defaults for `url`: 5 s timeout, 50 attempts (about 20 minutes
    /// with the backoff), 500 ms first backoff, 10,000 queued events in
    /// memory, unsigned, no TLS configuration (`http://` only), counted
    /// nowhere.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            tls: None,
            proxy: None,
            timeout: Duration::from_secs(5),
            attempts: 50,
            initial_backoff: Duration::from_millis(500),
            queue: 10_000,
            queue_dir: None,
            secret: None,
            sink: "webhook".into(),
            metrics: None,
        }
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.delivery(&self.sink, outcome);
        }
    }
}

/// A [`Notifier`] that POSTs `{"event": "approval.pending", "approval":
/// {...}}` (in the envelope) to a URL; also the delivery path of the
/// owner's and SOC's notices and of alerts ([`WebhookNotifier::post`]).
pub struct WebhookNotifier {
    tx: mpsc::Sender<Envelope>,
    sink: String,
    metrics: Option<Arc<dyn DeliveryMetrics>>,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl WebhookNotifier {
    /// Validates the URL, opens the queue (sending first what an earlier
    /// run left in it) and starts the delivery task (needs a tokio
    /// runtime). The task ends when the notifier is dropped and its queue
    /// is drained, or the webhook fails (the queue keeps the rest).
    pub fn spawn(config: WebhookConfig) -> Result<Self, HttpError> {
        let endpoint =
            RemoteEndpoint::parse_proxied(&config.url, config.tls.clone(), config.proxy.clone())?;
        let (queue, unreadable) =
            DiskQueue::open(config.queue_dir.clone(), config.queue).map_err(|source| {
                HttpError::Queue {
                    path: config.queue_dir.clone().unwrap_or_default(),
                    source,
                }
            })?;
        for f in unreadable {
            config.count("dropped");
            tracing::error!(sink = %config.sink, file = %f.display(), "a queued webhook event is unreadable; it is left in place and not sent");
        }
        if !queue.is_empty() {
            tracing::info!(sink = %config.sink, queued = queue.len(), "webhook events left by an earlier run are sent first");
        }
        let (tx, rx) = mpsc::channel::<Envelope>(config.queue.max(1));
        let this = WebhookNotifier {
            tx,
            sink: config.sink.clone(),
            metrics: config.metrics.clone(),
        };
        tokio::spawn(deliver(endpoint, config, queue, rx));
        Ok(this)
    }

    /// Queues any JSON event (an object whose `event` field names its
    /// kind) in the envelope. Never waits: when the queue is full the event
    /// is dropped, counted and logged.
    pub fn post(&self, event: &serde_json::Value) {
        let env = Envelope::wrap(event, UnixMillis::now().0 as i64);
        let id = env.id.clone();
        if let Err(e) = self.tx.try_send(env) {
            let outcome = match e {
                mpsc::error::TrySendError::Full(_) => "queue_full",
                mpsc::error::TrySendError::Closed(_) => "dropped",
            };
            if let Some(m) = &self.metrics {
                m.delivery(&self.sink, outcome);
            }
            tracing::error!(sink = %self.sink, event = %id, kind = %event["event"], error = %e, "webhook queue full or closed; event dropped");
        }
    }

    fn approval(&self, event: &'static str, approval: &PendingApproval) {
        self.post(&json!({ "event": event, "approval": approval }));
    }
}

impl Notifier for WebhookNotifier {
    fn pending(&self, approval: &PendingApproval) {
        self.approval("approval.pending", approval);
    }

    fn decided(&self, approval: &PendingApproval) {
        self.approval("approval.decided", approval);
    }

    /// Escalations and partial approvals reach the approvers (the newly
    /// eligible step must hear of it); refused approvers are in the audit
    /// trail only.
    fn chain_step(&self, approval: &PendingApproval, step: &ChainStep<'_>) {
        let event = match step {
            ChainStep::Escalated { .. } => "approval.escalated",
            ChainStep::PartiallyApproved { .. } => "approval.partially_approved",
            ChainStep::Refused { .. } => return,
        };
        self.post(&json!({ "event": event, "approval": approval, "chain_step": step }));
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt (network, TLS, timeout, 5xx, 408, 429).
    Retry(String),
    /// Refused for good (another 4xx).
    Rejected(StatusCode),
}

/// The delivery task: takes new events into the queue, sends the queue
/// oldest first, removes what was delivered or refused for good; after a
/// failure, backs off (still taking new events in).
async fn deliver(
    endpoint: RemoteEndpoint,
    config: WebhookConfig,
    mut queue: DiskQueue,
    mut rx: mpsc::Receiver<Envelope>,
) {
    let mut backoff = config.initial_backoff;
    let mut open = true;
    let attempts = config.attempts.max(1);
    loop {
        while let Ok(e) = rx.try_recv() {
            store(&mut queue, e, &config);
        }
        let Some(front) = queue.front_mut() else {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(e) => store(&mut queue, e, &config),
                None => open = false,
            }
            continue;
        };
        match attempt(&endpoint, &config, &front.id, &front.body).await {
            Ok(()) => {
                config.count("sent");
                queue.pop_front();
                backoff = config.initial_backoff;
            }
            Err(Failure::Rejected(status)) => {
                config.count("rejected");
                tracing::error!(sink = %config.sink, event = %front.id, %status, "the webhook refused the event; it is not sent again");
                queue.pop_front();
            }
            Err(Failure::Retry(why)) => {
                config.count("failed");
                front.attempts += 1;
                if front.attempts >= attempts {
                    config.count("dropped");
                    tracing::error!(sink = %config.sink, event = %front.id, attempts, error = %why, "webhook delivery failed on every attempt; event dropped");
                    queue.pop_front();
                    backoff = config.initial_backoff;
                    continue;
                }
                let (id, n) = (front.id.clone(), front.attempts);
                tracing::warn!(sink = %config.sink, event = %id, attempt = n, error = %why, queued = queue.len(), retry_in = ?backoff, "webhook delivery failed; the queue keeps the event");
                if !open {
                    return;
                }
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        e = rx.recv() => match e {
                            Some(e) => store(&mut queue, e, &config),
                            None => { open = false; break; }
                        },
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn store(queue: &mut DiskQueue, e: Envelope, config: &WebhookConfig) {
    let id = e.id.clone();
    if let Err(err) = queue.push(e.id, e.body) {
        config.count(match err {
            PushError::Full(_) => "queue_full",
            _ => "dropped",
        });
        tracing::error!(sink = %config.sink, event = %id, error = %err, "cannot queue a webhook event; event dropped");
    }
}

/// One POST of `body` as event `id`, signed when there is a secret.
async fn attempt(
    endpoint: &RemoteEndpoint,
    config: &WebhookConfig,
    id: &str,
    body: &[u8],
) -> Result<(), Failure> {
    let body = Bytes::copy_from_slice(body);
    let mut req = endpoint
        .request(Method::POST, "")
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id);
    if let Some(secret) = &config.secret {
        let ts = (UnixMillis::now().0 / 1000) as i64;
        req = req
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature(secret.key(), id, ts, &body));
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| Failure::Retry(format!("cannot build the request: {e}")))?;
    match endpoint.send(req, config.timeout, 64 * 1024).await {
        Ok((status, _)) if status.is_success() => Ok(()),
        Ok((status, _))
            if status.is_client_error()
                && status != StatusCode::REQUEST_TIMEOUT
                && status != StatusCode::TOO_MANY_REQUESTS =>
        {
            Err(Failure::Rejected(status))
        }
        Ok((status, _)) => Err(Failure::Retry(format!("status {status}"))),
        Err(e) => Err(Failure::Retry(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
