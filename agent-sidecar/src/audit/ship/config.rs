//! What to ship where: one [`DestinationConfig`] per collector, checked
//! before anything is sent (a bad URL, header or secret is an error that
//! says what to fix).

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use hyper::{
    Uri,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use zeroize::Zeroizing;

use super::{error::ShipError, retry::Backoff};

/// Default records per request.
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// Default longest wait before a batch that is not full is sent.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Default timeout of one request (connect, send, answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest batch accepted (records).
pub const MAX_BATCH_SIZE: usize = 10_000;

/// The wire format of a destination.
#[derive(Clone)]
pub enum Protocol {
    /// OpenTelemetry logs over OTLP/HTTP (protobuf), one log record per
    /// audit record.
    OtlpLogs,
    /// OpenTelemetry traces over OTLP/HTTP (protobuf), one `execute_tool`
    /// span per finished tool call.
    OtlpTraces,
    /// A generic HTTPS webhook: JSON lines, signed in the Standard
    /// Webhooks style with this secret.
    Webhook(WebhookSecret),
}

impl Protocol {
    /// Short name, for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::OtlpLogs => "otlp_logs",
            Protocol::OtlpTraces => "otlp_traces",
            Protocol::Webhook(_) => "webhook",
        }
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::webhook::WebhookSecret;

impl From<crate::webhook::SecretError> for ShipError {
    fn from(e: crate::webhook::SecretError) -> Self {
        ShipError::Config {
            what: e.what,
            reason: e.reason,
            fix: e.fix,
        }
    }
}

/// One collector the audit records are shipped to, with its own durable
/// cursor (`DIR/ship/<name>.cursor`).
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    /// Name of the destination: its cursor file and its metrics label
    /// (`[a-z0-9_-]`, 1 to 64 characters). Changing it starts over from
    /// the first record.
    pub name: String,
    /// Wire format.
    pub protocol: Protocol,
    /// The full URL POSTed to (`http://` or `https://`).
    pub endpoint: String,
    /// Extra request headers (an API key, a tenant).
    pub headers: Vec<(String, String)>,
    /// Records per request, at most.
    pub batch_size: usize,
    /// A batch that is not full is sent once its first record waited this
    /// long.
    pub flush_interval: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Waits between retries.
    pub backoff: Backoff,
}

impl DestinationConfig {
    fn new(name: &str, protocol: Protocol, endpoint: String) -> DestinationConfig {
        DestinationConfig {
            name: name.to_string(),
            protocol,
            endpoint,
            headers: Vec::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            backoff: Backoff::default(),
        }
    }

    /// OTLP logs to `base` (a collector's OTLP/HTTP address, e.g.
    /// `http://localhost:4318`; `/v1/logs` is appended as the OTLP
    /// exporters do), named `otlp-logs`.
    pub fn otlp_logs(base: &str) -> DestinationConfig {
        Self::new("otlp-logs", Protocol::OtlpLogs, otlp_url(base, "logs"))
    }

    /// OTLP traces to `base` (`/v1/traces` appended), named `otlp-traces`.
    pub fn otlp_traces(base: &str) -> DestinationConfig {
        Self::new(
            "otlp-traces",
            Protocol::OtlpTraces,
            otlp_url(base, "traces"),
        )
    }

    /// A signed JSON-lines webhook to `url` (as given), named `webhook`.
    pub fn webhook(url: &str, secret: WebhookSecret) -> DestinationConfig {
        Self::new("webhook", Protocol::Webhook(secret), url.to_string())
    }

    /// Checks the configuration and builds what sending needs.
    pub(crate) fn check(&self, tls: bool) -> Result<Checked, ShipError> {
        let what = format!("audit destination {:?}", self.name);
        let bad = |reason: String, fix: &str| ShipError::Config {
            what: what.clone(),
            reason,
            fix: fix.to_string(),
        };
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(bad(
                "the name must be 1 to 64 characters of a-z, 0-9, - and _".into(),
                "rename the destination",
            ));
        }
        let uri: Uri = self.endpoint.parse().map_err(|e| {
            bad(
                format!("invalid URL {:?}: {e}", self.endpoint),
                "give an http:// or https:// URL",
            )
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if tls => {}
            Some("https") => {
                return Err(bad(
                    format!(
                        "{} needs TLS, but no TLS client configuration was given",
                        self.endpoint
                    ),
                    "give the trust anchors (system roots or a CA file) to the shipper",
                ));
            }
            _ => {
                return Err(bad(
                    format!("{:?} is not an http:// or https:// URL", self.endpoint),
                    "give an http:// or https:// URL",
                ));
            }
        }
        let Some(authority) = uri.authority() else {
            return Err(bad(
                format!("{:?} has no host", self.endpoint),
                "give a URL with a host",
            ));
        };
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not supported".into(),
                "pass them as a header (Authorization) instead",
            ));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(bad(
                format!("batch size {} is out of range", self.batch_size),
                &format!("give 1 to {MAX_BATCH_SIZE} records"),
            ));
        }
        if self.flush_interval.is_zero() || self.timeout.is_zero() {
            return Err(bad(
                "the flush interval and the timeout must be longer than zero".into(),
                "give a duration such as 1s",
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| {
                bad(
                    format!("header name {name:?}: {e}"),
                    "give NAME=VALUE with a valid HTTP header name",
                )
            })?;
            if is_reserved(&n) {
                return Err(bad(
                    format!("header {n} is set by the shipper"),
                    "leave it out",
                ));
            }
            let mut v = HeaderValue::from_str(value.trim()).map_err(|e| {
                bad(
                    format!("header {n}: invalid value: {e}"),
                    "give a visible ASCII value",
                )
            })?;
            v.set_sensitive(true);
            headers.append(n, v);
        }
        Ok(Checked { uri, headers })
    }
}

/// Reads a file holding a secret: a regular file that only its owner may
/// read (no group or other permission bits), else an error saying so.
pub fn read_private(path: &std::path::Path, what: &str) -> Result<Zeroizing<String>, ShipError> {
    Ok(crate::webhook::read_private(path, what)?)
}

/// Reads request headers from a file that only its owner may read: one
/// `Name: value` per line; blank lines and lines starting with `#` are
/// skipped.
pub fn headers_from_file(path: &std::path::Path) -> Result<Vec<(String, String)>, ShipError> {
    let text = read_private(path, "the headers file")?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ShipError::Config {
                what: format!("{} line {}", path.display(), i + 1),
                reason: "not a header line".into(),
                fix: "write one `Name: value` per line".into(),
            });
        };
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// The joined OTLP/HTTP URL of a signal: `base` without trailing `/`,
/// then `/v1/<signal>`.
fn otlp_url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

fn is_reserved(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "content-type" | "content-length" | "host" | "transfer-encoding" | "connection"
    ) || n.starts_with("webhook-")
}

/// A checked destination: its URI and request headers.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// The shipper's configuration: the audit log directory and the
/// destinations.
#[derive(Clone, Debug)]
pub struct ShipConfig {
    /// The audit log directory (the one `AuditLog` writes).
    pub dir: PathBuf,
    /// Where to ship.
    pub destinations: Vec<DestinationConfig>,
    /// How `https://` collectors are verified; required for them.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How often the store is looked at for new records when idle.
    pub poll_interval: Duration,
    /// `service.instance.id` of the OTLP resource (e.g. the pod name);
    /// `service.name` is `agent-sidecar`.
    pub instance: Option<String>,
}

impl ShipConfig {
    /// No destination yet; polls every 100 ms.
    pub fn new(dir: impl Into<PathBuf>) -> ShipConfig {
        ShipConfig {
            dir: dir.into(),
            destinations: Vec::new(),
            tls: None,
            poll_interval: Duration::from_millis(100),
            instance: None,
        }
    }
}
