//! The hyper server builder for the agent-facing listener.

use std::time::Duration;

use hyper_util::{
    rt::{TokioExecutor, TokioTimer},
    server::conn::auto::Builder,
};

use super::GatewayLimits;

/// hyper's smallest HTTP/1 read buffer; it panics below this.
const MIN_BUF_SIZE: usize = 8192;
/// Most concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Time an HTTP/2 peer has to answer a keep-alive ping.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// A server builder (HTTP/1.1 and HTTP/2, by preface or ALPN) bounded by
/// `limits`.
///
/// HTTP/1.1: at most `max_headers` header lines and a head of at most
/// `max_header_bytes` (raised to hyper's minimum of 8 KiB), else 431; the
/// whole head within `header_read_timeout`, else 408 and close (the same
/// bound applies to an idle keep-alive connection waiting for its next
/// request); keep-alive on. HTTP/2: a header list of at most
/// `max_header_bytes`, at most 100 concurrent streams, and keep-alive pings
/// every `idle_timeout`.
pub fn server_builder(limits: &GatewayLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF_SIZE))
        .keep_alive(true)
        .half_close(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(PING_TIMEOUT);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_limits_do_not_panic() {
        let limits = GatewayLimits {
            max_header_bytes: 10,
            max_headers: 1,
            ..GatewayLimits::default()
        };
        let builder = server_builder(&limits);
        assert!(builder.is_http1_available());
        assert!(builder.is_http2_available());
        let huge = GatewayLimits {
            max_header_bytes: usize::MAX,
            ..GatewayLimits::default()
        };
        let _ = server_builder(&huge);
    }
}
