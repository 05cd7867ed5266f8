//! One [`ProxyEvent`] per proxied connection (or forwarded request), and
//! the [`ProxyEventSink`] that receives it. The connection's record
//! (`record.rs`) fills it in and emits it.

use std::net::SocketAddr;

use serde::Serialize;

/// Which listener accepted the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// The `HTTP_PROXY` / `HTTPS_PROXY` listener (CONNECT and absolute-form).
    Explicit,
    /// A listener the kernel redirects intercepted connects to.
    Transparent,
}

impl ListenerKind {
    /// Label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::Transparent => "transparent",
        }
    }
}

/// Outcome of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionOutcome {
    /// Allowed and spliced (or forwarded) to the upstream.
    Allowed,
    /// Refused by the name policy or the proxy's own rules, or because the
    /// client sent malformed, oversized or too slow input. Nothing was dialled.
    Refused,
    /// Allowed, but the name did not resolve or the upstream could not be
    /// reached (or the connection was aborted before a verdict).
    Failed,
}

impl ConnectionOutcome {
    /// Label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// The evidence one proxied connection leaves.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxyEvent {
    /// Wall-clock time at which the connection was accepted, Unix ms.
    pub time_unix_ms: u64,
    /// Agent the listener serves.
    pub agent_id: String,
    /// Listener that accepted the connection.
    pub listener: ListenerKind,
    /// The agent's address.
    pub client: SocketAddr,
    /// Destination name (CONNECT authority, absolute URI, SNI or `Host`).
    pub host: Option<String>,
    /// Destination port (CONNECT/URI port, or the listener's original port).
    pub port: u16,
    /// SNI of the ClientHello, when TLS was seen.
    pub sni: Option<String>,
    /// The ClientHello carried an encrypted_client_hello extension.
    pub ech: bool,
    /// Outcome.
    pub decision: ConnectionOutcome,
    /// HostRefusal or failure code (`None` when allowed).
    pub reason: Option<String>,
    /// Rule that allowed or refused, or an explanation.
    pub rule: Option<String>,
    /// Address the proxy dialled (always one its resolver returned).
    pub upstream: Option<SocketAddr>,
    /// Bytes from the agent to the upstream (including the sniffed bytes).
    pub bytes_up: u64,
    /// Bytes from the upstream to the agent.
    pub bytes_down: u64,
    /// Time from accept to close, microseconds.
    pub duration_us: u64,
}

/// Receives every [`ProxyEvent`] (e.g. to feed the audit log).
pub trait ProxyEventSink: Send + Sync {
    /// Called once per connection or forwarded request, after it ends.
    fn emit(&self, event: &ProxyEvent);
}

impl<F: Fn(&ProxyEvent) + Send + Sync> ProxyEventSink for F {
    fn emit(&self, event: &ProxyEvent) {
        self(event)
    }
}
