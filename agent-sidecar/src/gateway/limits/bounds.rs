//! [`GatewayLimits`]: the bounds of the agent-facing server and their
//! defaults.

use std::time::Duration;

/// Bounds of the agent-facing server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Largest request body read, in bytes (default 1 MiB); larger is 413.
    pub max_body_bytes: usize,
    /// Most header lines in an HTTP/1 request (default 100); more is 431.
    pub max_headers: usize,
    /// Largest request head (HTTP/1, at least 8 KiB) or header list
    /// (HTTP/2), in bytes (default 64 KiB); larger is 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a whole request head, and the longest an
    /// HTTP/1 connection may sit idle between requests (default 10 s).
    pub header_read_timeout: Duration,
    /// A connection on which no request has been running for this long is
    /// shut down gracefully (HTTP/2: GOAWAY), and the interval of HTTP/2
    /// keep-alive pings: a peer that does not answer one within 20 s is
    /// disconnected (default 60 s).
    pub idle_timeout: Duration,
    /// Time a client has to send a whole request body (default 30 s); slower
    /// is 408.
    pub body_read_timeout: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            max_body_bytes: 1024 * 1024,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let limits = GatewayLimits::default();
        assert_eq!(limits.max_body_bytes, 1_048_576);
        assert_eq!(limits.max_headers, 100);
        assert_eq!(limits.max_header_bytes, 65_536);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.body_read_timeout, Duration::from_secs(30));
    }
}
