//! [`WebhookNotifier`]: POSTs approval events as JSON to a URL.
//!
//! Events go through a bounded queue to one background task, so the hold
//! path never waits for the webhook. Each event is retried with exponential
//! backoff; when the queue is full the event is dropped and logged (the
//! journal and the audit log stay the record of truth). Deliveries go
//! through the sidecar's pooled HTTP client ([`crate::http_client`]): one
//! kept connection per webhook, `https://` URLs verified against the trust
//! anchors the configuration gives (a certificate that does not verify
//! fails the attempt; nothing is sent in the clear), through the
//! operator's HTTP proxy when the configuration names one.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, header};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{
    http::{HttpError, RemoteEndpoint},
    model::PendingApproval,
    notify::Notifier,
};

/// Where and how hard to deliver webhook events.
#[derive(Clone, Debug)]
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
    /// Attempts per event, at least 1.
    pub attempts: u32,
    /// Wait after the first failed attempt; doubles after each failure,
    /// up to 30 s.
    pub initial_backoff: Duration,
    /// Events that may wait for delivery before new ones are dropped.
    pub queue: usize,
    /// Where delivery results are counted (`None`: nowhere).
    pub counters: Option<super::metrics::WebhookCounters>,
}

impl WebhookConfig {
    /// Defaults for `url`: 5 s timeout, 5 attempts, 500 ms first backoff,
    /// 1024 queued events, no TLS configuration (`http://` only), no proxy.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            tls: None,
            proxy: None,
            timeout: Duration::from_secs(5),
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            queue: 1024,
            counters: None,
        }
    }
}

/// The JSON body of a webhook POST.
#[derive(Serialize)]
struct Event<'a> {
    /// `approval.pending` or `approval.decided`.
    event: &'static str,
    approval: &'a PendingApproval,
}

/// A [`Notifier`] that POSTs `{"event": ..., "approval": {...}}` to a URL.
#[derive(Debug)]
pub struct WebhookNotifier {
    tx: mpsc::Sender<Bytes>,
    counters: Option<super::metrics::WebhookCounters>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl WebhookNotifier {
    fn count(&self, result: &str) {
        if let Some(c) = &self.counters {
            c.count(result);
        }
    }
}

impl WebhookNotifier {
    /// Validates the URL and starts the delivery task (needs a tokio
    /// runtime). The task ends when the notifier is dropped and its queue
    /// is drained.
    pub fn spawn(config: WebhookConfig) -> Result<Self, HttpError> {
        let endpoint =
            RemoteEndpoint::parse_proxied(&config.url, config.tls.clone(), config.proxy.clone())?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(config.queue.max(1));
        let counters = config.counters.clone();
        tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                deliver(&endpoint, &config, body).await;
            }
        });
        Ok(WebhookNotifier { tx, counters })
    }

    fn enqueue(&self, event: &'static str, approval: &PendingApproval) {
        let body = match serde_json::to_vec(&Event { event, approval }) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(approval = %approval.id, error = %e, "cannot encode webhook event");
                return;
            }
        };
        if let Err(e) = self.tx.try_send(body) {
            tracing::warn!(approval = %approval.id, event, error = %e, "webhook queue full or closed; event dropped");
            self.count("queue_full");
        }
    }
}

impl WebhookNotifier {
    /// Queues any JSON event (the gateway's supervised-action notices and
    /// SOC alerts use the same delivery path). Never waits: when the queue
    /// is full the event is dropped and logged.
    pub fn post(&self, event: &serde_json::Value) {
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode webhook event");
                return;
            }
        };
        if let Err(e) = self.tx.try_send(body) {
            tracing::warn!(error = %e, "webhook queue full or closed; event dropped");
            self.count("queue_full");
        }
    }
}

impl Notifier for WebhookNotifier {
    fn pending(&self, approval: &PendingApproval) {
        self.enqueue("approval.pending", approval);
    }

    fn decided(&self, approval: &PendingApproval) {
        self.enqueue("approval.decided", approval);
    }
}

/// Tries to deliver one event; gives up (and logs) after the last attempt.
async fn deliver(endpoint: &RemoteEndpoint, config: &WebhookConfig, body: Bytes) {
    let mut backoff = config.initial_backoff;
    let attempts = config.attempts.max(1);
    for attempt in 1..=attempts {
        let req = endpoint
            .request(Method::POST, "")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()));
        let result = match req {
            Ok(req) => endpoint.send(req, config.timeout, 64 * 1024).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot build webhook request");
                return;
            }
        };
        let count = |result: &str| {
            if let Some(c) = &config.counters {
                c.count(result);
            }
        };
        let failure = match result {
            Ok((status, _)) if status.is_success() => {
                count("delivered");
                return;
            }
            Ok((status, _)) => format!("status {status}"),
            Err(e) => e.to_string(),
        };
        if attempt == attempts {
            tracing::error!(attempts, error = %failure, "webhook delivery failed; event dropped");
            count("dropped");
            return;
        }
        tracing::warn!(attempt, error = %failure, "webhook delivery failed; retrying");
        count("retried");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests;
