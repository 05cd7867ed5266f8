//! Fuzzes the gateway's agent-facing HTTP server as it reads requests: the
//! bytes an agent sends on one connection go through hyper with the
//! gateway's own builder and limits (`server_builder`: header count and
//! size, HTTP/1.1 or HTTP/2 by preface), the first-byte and idle timeouts
//! (`FirstByteTimeout`, `serve_until_idle`), the smuggling check
//! (`check_framing`), the bounded body read (`collect_limited`) and the MCP
//! body parser, on a paused clock so that every timeout fires at once.
//!
//! Properties: a request that passes the framing check has at most one
//! Content-Length and never one with Transfer-Encoding; a body read is
//! never larger than the limit, and is exactly the declared length; the
//! connection always ends (the timeouts hold) without a panic.
//!
//! Input: one byte giving the size of each read the agent's socket
//! returns (1 to 256 bytes), then the bytes. Seeds: `fuzz/corpus/http_request/`.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run http_request corpus/http_request
//! ```
#![no_main]

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use agent_sidecar::gateway::{
    limits::{
        FirstByteTimeout, GatewayLimits, check_framing, collect_limited, serve_until_idle,
        server_builder,
    },
    mcp::parse_body,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_LENGTH, TRANSFER_ENCODING},
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The agent's side of the connection: `input` in reads of `step` bytes,
/// then silence (never EOF: only the gateway's timeouts end it).
struct AgentSocket {
    input: Vec<u8>,
    at: usize,
    step: usize,
}

impl AsyncRead for AgentSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at >= self.input.len() {
            return Poll::Pending;
        }
        let n = self
            .step
            .min(buf.remaining())
            .min(self.input.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for AgentSocket {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Small limits so that the fuzzer reaches them.
fn limits() -> GatewayLimits {
    GatewayLimits {
        max_body_bytes: 2048,
        max_headers: 16,
        max_header_bytes: 8192,
        ..GatewayLimits::default()
    }
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = s;
    r
}

/// What the gateway does with a request before it decides on it.
async fn read_request(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let limits = limits();
    let (parts, body) = req.into_parts();
    if let Err(e) = check_framing(&parts) {
        return status(e.status());
    }
    let lengths: Vec<_> = parts.headers.get_all(CONTENT_LENGTH).iter().collect();
    assert!(
        lengths.len() <= 1,
        "several Content-Length passed: {parts:?}"
    );
    assert!(
        lengths.is_empty() || !parts.headers.contains_key(TRANSFER_ENCODING),
        "Content-Length with Transfer-Encoding passed: {parts:?}"
    );
    let declared = lengths
        .first()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match collect_limited(body, limits.max_body_bytes, limits.body_read_timeout).await {
        Ok(bytes) => {
            assert!(bytes.len() <= limits.max_body_bytes);
            if let Some(n) = declared {
                assert_eq!(
                    bytes.len() as u64,
                    n,
                    "body length differs from Content-Length"
                );
            }
            let _ = parse_body(&bytes);
            status(StatusCode::OK)
        }
        Err(e) => status(e.status()),
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
}

fuzz_target!(|data: &[u8]| {
    let [step, input @ ..] = data else {
        return;
    };
    let socket = AgentSocket {
        input: input.to_vec(),
        at: 0,
        step: usize::from(*step) + 1,
    };
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let limits = limits();
            let builder = server_builder(&limits);
            let io = FirstByteTimeout::new(socket, limits.header_read_timeout);
            let served = serve_until_idle(&builder, io, limits.idle_timeout, read_request);
            // Virtual time: an hour is an instant, and far past every
            // timeout of the connection.
            // An error (a malformed request, a timeout) ends the
            // connection as it should; only hanging is a failure.
            let _ended = tokio::time::timeout(Duration::from_secs(3600), served)
                .await
                .expect("the gateway's timeouts end every connection");
        });
    });
});
