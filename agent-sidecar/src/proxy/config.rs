//! Limits and timeouts of the proxy listeners.

use std::time::Duration;

/// Limits and timeouts shared by the explicit and transparent listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Agent the listeners serve; a label on every event and metric.
    pub agent_id: String,
    /// Longest wait for the first bytes that name the destination (TLS
    /// ClientHello or HTTP request head). A client slower than this is closed.
    pub sniff_timeout: Duration,
    /// Most bytes buffered while looking for the ClientHello or request head.
    pub sniff_max_bytes: usize,
    /// Longest wait for the sidecar's resolver.
    pub resolve_timeout: Duration,
    /// Longest wait for one TCP connect to an upstream address.
    pub connect_timeout: Duration,
    /// Most client connections served at once per listener; further clients
    /// wait in the kernel's accept queue.
    pub max_connections: usize,
    /// On shutdown: how long the connections already accepted may take to
    /// finish once the listener stops accepting (`serve --drain-grace`);
    /// zero leaves them to the runtime.
    pub drain: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            agent_id: "unknown".to_owned(),
            sniff_timeout: Duration::from_secs(5),
            sniff_max_bytes: 16 * 1024,
            resolve_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain: Duration::ZERO,
        }
    }
}
