//! Absolute-form `http://` requests through the explicit proxy: checked by
//! name, sent in origin form over a connection to the address the sidecar
//! resolved, hop-by-hop headers stripped, `Host` set from the URI.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{
    HeaderMap, Request, Response, Uri, Version,
    body::{Body, Frame, Incoming, SizeHint},
    header::{CONNECTION, HOST, HeaderName, HeaderValue},
};
use hyper_util::rt::TokioIo;

use super::{
    context::ProxyContext,
    dial::{connect, resolve},
    events::ListenerKind,
    record::Record,
    refusal::Denial,
    reply::{ProxyBody, clear_target, refusal_response},
};

/// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1),
/// plus the proxy-specific ones clients send.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Default port of `http://`.
const HTTP_PORT: u16 = 80;

/// Forwards one absolute-form request; the event is emitted when the
/// response body has been sent (or dropped).
pub(crate) async fn forward(
    ctx: ProxyContext,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let authority = req.uri().authority().cloned();
    let port = authority
        .as_ref()
        .and_then(|a| a.port_u16())
        .unwrap_or(HTTP_PORT);
    let record = Record::start(
        ctx.emitter.clone(),
        &ctx.config.agent_id,
        ListenerKind::Explicit,
        peer,
        port,
    );
    let Some(authority) = authority else {
        let denial = Denial::malformed("not_a_proxy_request", "absolute-form URI without a host");
        record.denied(&denial);
        return refusal_response(&denial, None, port);
    };
    let (cleared, mut record) = match clear_target(&ctx, record, authority.host(), port) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let host = cleared.host;
    let denied = |record: Record, denial: Denial| {
        record.denied(&denial);
        refusal_response(&denial, Some(&host), port)
    };
    let addrs = match resolve(&ctx, &host).await {
        Ok(addrs) => addrs,
        Err(denial) => return denied(record, denial),
    };
    let (stream, addr) = match connect(&ctx, &addrs, port).await {
        Ok(ok) => ok,
        Err(denial) => return denied(record, denial),
    };
    record.upstream(addr);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(ok) => ok,
        Err(e) => return denied(record, Denial::upstream("upstream_error", e.to_string())),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: "agent_sidecar::proxy", error = %e, "upstream connection ended");
        }
    });

    let up = Arc::new(AtomicU64::new(0));
    let request = match origin_form(req, &host, port, up.clone()) {
        Ok(request) => request,
        Err(denial) => return denied(record, denial),
    };
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => return denied(record, Denial::upstream("upstream_error", e.to_string())),
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let metered = Metered {
        inner: body.boxed(),
        down: 0,
        done: Some(Done {
            record,
            rule: cleared.allowed.rule,
            up,
        }),
    };
    Response::from_parts(parts, metered.boxed())
}

/// The upstream request: origin-form target, HTTP/1.1, hop-by-hop headers
/// removed, `Host` equal to the URI's host (and port when not 80), request
/// body bytes counted into `up`.
fn origin_form(
    req: Request<Incoming>,
    host: &str,
    port: u16,
    up: Arc<AtomicU64>,
) -> Result<Request<ProxyBody>, Denial> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path
        .parse::<Uri>()
        .map_err(|e| Denial::malformed("malformed_request", e.to_string()))?;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let host_value = if port == HTTP_PORT {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let host_value = HeaderValue::from_str(&host_value)
        .map_err(|e| Denial::malformed("host_invalid", e.to_string()))?;
    parts.headers.insert(HOST, host_value);
    let body = body
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                up.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .boxed();
    Ok(Request::from_parts(parts, body))
}

/// Removes the hop-by-hop headers, including those the `Connection` header
/// names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The response body, counting bytes down; records the event once the body
/// ends or is dropped.
struct Metered {
    inner: ProxyBody,
    down: u64,
    done: Option<Done>,
}

struct Done {
    record: Record,
    rule: String,
    up: Arc<AtomicU64>,
}

impl Metered {
    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            let up = done.up.load(Ordering::Relaxed);
            done.record.allowed(&done.rule, up, self.down);
        }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.down += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finish(),
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests;
