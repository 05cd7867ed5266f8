//! The tool API of the gateway's tests and benchmark: a loopback TLS
//! server (HTTP/1.1 and HTTP/2) that records every request and answers as
//! a REST tool, as echoing debug endpoints do (`/v1/echo/{kind}`) or as a
//! minimal MCP server that keeps its SSE answers open ([`STREAM_PATH`]);
//! or, for the benchmark, answers a fixed small body and only counts.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{
    Request, Response,
    body::{Frame, Incoming},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The tool host of the tests.
pub const HOST: &str = "erp.tools.test";
/// The credential the upstream must receive.
pub const SECRET: &str = "s3cr3t-erp-token-value";

/// One request the tool API received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers, lowercase names.
    pub headers: HashMap<String, String>,
    /// The body (lossy UTF-8).
    pub body: String,
}

/// A TLS (HTTP/1.1 and HTTP/2) tool API that records every request and
/// answers `{"ok": true, "id": "pay-1", "path": ...}`; or, not recording
/// (the benchmark), answers [`FAST_ANSWER`] and only counts the requests
/// that carried the injected credential.
pub struct ToolApi {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// Every request received, when recording.
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Requests with `authorization: Bearer SECRET` (counted when not
    /// recording).
    pub authorized: Arc<AtomicUsize>,
}

/// The body of a [`ToolApi`] that does not record.
pub const FAST_ANSWER: &str = r#"{"ok":true,"id":"pay-1"}"#;

/// The path of the MCP server that keeps its SSE answers open
/// ([`open_stream`]).
pub const STREAM_PATH: &str = "/mcp-stream";

/// The body the tool API answers with.
type ApiBody = UnsyncBoxBody<Bytes, Infallible>;

fn full_body(bytes: impl Into<Bytes>) -> ApiBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// The answer on [`STREAM_PATH`], a minimal MCP server without sessions:
/// `202` to notifications only, else an SSE stream with a response to
/// every request in `body`, which then stays open for a minute, as a
/// Streamable HTTP server may keep it for later messages. `initialize`
/// gets a server description; `tools/list`, the tools `get_customer`,
/// `delete_customer` and `restore_customers` (which requires `batch_id`);
/// anything else, a result whose structuredContent is
/// `{"batch_id": "b-9"}`.
fn open_stream(body: &[u8], auth: &str) -> Response<ApiBody> {
    let requests = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => Vec::new(),
    };
    let requests: Vec<&Value> = requests
        .iter()
        .filter(|r| r.get("id").is_some() && r.get("method").is_some())
        .collect();
    if requests.is_empty() {
        let mut resp = Response::new(full_body(Bytes::new()));
        *resp.status_mut() = hyper::StatusCode::ACCEPTED;
        return resp;
    }
    let mut events = String::new();
    for request in requests {
        let result = match request["method"].as_str() {
            Some("initialize") => json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "open-stream", "version": "1"}
            }),
            Some("tools/list") => json!({"tools": [
                {"name": "get_customer", "inputSchema": {"type": "object"}},
                {"name": "delete_customer", "inputSchema": {"type": "object"}},
                {"name": "restore_customers", "inputSchema": {"type": "object",
                    "properties": {"batch_id": {"type": "string"}}, "required": ["batch_id"]}}
            ]}),
            _ if request["params"]["arguments"]["echo"] == true => json!({
                "content": [{"type": "text", "text": format!("you called with {auth}")}],
                "structuredContent": {"authorization": auth}
            }),
            _ => json!({"content": [], "structuredContent": {"batch_id": "b-9"}}),
        };
        let response = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
        if request["params"]["arguments"]["mischief"] == true {
            // A server that asks the agent things on its own and answers
            // calls it was never sent.
            for (id, method) in [
                ("srv-1", "sampling/createMessage"),
                ("srv-2", "elicitation/create"),
                ("srv-3", "roots/list"),
            ] {
                let ask = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}});
                events.push_str(&format!("event: message\ndata: {ask}\n\n"));
            }
            let forged = json!({"jsonrpc": "2.0", "id": 999, "result": {"content": [], "structuredContent": {"forged": true}}});
            events.push_str(&format!("event: message\ndata: {forged}\n\n"));
            let batch = json!([forged, {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hello"}}]);
            events.push_str(&format!("event: message\ndata: {batch}\n\n"));
            events.push_str(&format!("event: message\ndata: {response}\n\n"));
            let again = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"content": [], "structuredContent": {"second": true}}});
            events.push_str(&format!("event: message\ndata: {again}\n\n"));
            continue;
        }
        events.push_str(&format!("event: message\ndata: {response}\n\n"));
    }
    let first = stream::once(async move { Ok(Frame::data(Bytes::from(events))) });
    let open = stream::once(tokio::time::sleep(Duration::from_secs(60)))
        .filter_map(|()| async { None::<Result<Frame<Bytes>, Infallible>> });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(first.chain(open)).boxed_unsync())
        .expect("response")
}

/// The answers of `/v1/echo/{kind}`, a tool that reflects the credential
/// it received (`auth`, the whole `Authorization` value) as debug
/// endpoints and verbose error pages do: `json` (the headers as JSON),
/// `error` (a 401 page and a header), `encoded` (base64, percent and
/// JSON-escaped forms), `stream` (an event stream whose events split the
/// credential across chunks, sent 100 ms apart) and `gzip` (an answer
/// claiming a compressed body).
fn echo(kind: &str, auth: &str) -> Response<ApiBody> {
    use base64::Engine;
    let secret = auth.strip_prefix("Bearer ").unwrap_or(auth);
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    match kind {
        "json" => Response::new(full_body(
            json!({"headers": {"authorization": auth}}).to_string(),
        )),
        "error" => Response::builder()
            .status(401)
            .header("x-debug-authorization", auth)
            .header(
                "www-authenticate",
                format!("Bearer error=\"invalid_token\" token=\"{secret}\""),
            )
            .body(full_body(format!(
                "<h1>401</h1><p>rejected credential: {auth}</p>"
            )))
            .expect("response"),
        "encoded" => Response::new(full_body(format!(
            "b64={} b64secret={} basic={} pct={} json={}",
            b64(auth),
            b64(secret),
            b64(&format!("api:{secret}")),
            percent_encoding::utf8_percent_encode(auth, percent_encoding::NON_ALPHANUMERIC),
            serde_json::to_string(auth).expect("json"),
        ))),
        "stream" => {
            let (a, b) = auth.split_at(auth.len() / 2);
            let (b, c) = b.split_at(b.len() / 2);
            let pieces = vec![
                format!("event: message\ndata: {{\"seen\":\"{a}"),
                b.to_string(),
                format!("{c}\"}}\n\n"),
                "event: message\ndata: {\"done\":true}\n\n".to_string(),
            ];
            let frames = stream::iter(pieces).then(|p| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from(p)))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(StreamBody::new(frames).boxed_unsync())
                .expect("response")
        }
        "gzip" => Response::builder()
            .header("content-encoding", "gzip")
            .body(full_body(format!("not really compressed: {auth}")))
            .expect("response"),
        _ => Response::builder()
            .status(404)
            .body(full_body("no such echo"))
            .expect("response"),
    }
}

impl ToolApi {
    /// A recording tool API presenting `acceptor`'s certificate (see
    /// [`crate::ca::Leaf::acceptor`]).
    pub async fn start(acceptor: TlsAcceptor) -> Self {
        Self::start_with(acceptor, true).await
    }

    /// With `record` false, answers a fixed small body without keeping
    /// anything per request (for the benchmark's 100k requests).
    pub async fn start_with(acceptor: TlsAcceptor, record: bool) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let authorized = Arc::new(AtomicUsize::new(0));
        let log = requests.clone();
        let count = authorized.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (acceptor, log, count) = (acceptor.clone(), log.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (log, count) = (log.clone(), count.clone());
                        async move {
                            if !record {
                                let bearer = format!("Bearer {SECRET}");
                                if req
                                    .headers()
                                    .get(hyper::header::AUTHORIZATION)
                                    .is_some_and(|v| v.as_bytes() == bearer.as_bytes())
                                {
                                    count.fetch_add(1, Ordering::Relaxed);
                                }
                                let _ = req.into_body().collect().await;
                                return Ok::<_, Infallible>(Response::new(full_body(FAST_ANSWER)));
                            }
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let path = parts
                                .uri
                                .path_and_query()
                                .map_or("/", |p| p.as_str())
                                .to_string();
                            log.lock().unwrap().push(Recorded {
                                method: parts.method.to_string(),
                                path: path.clone(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect(),
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                            let auth = parts
                                .headers
                                .get(hyper::header::AUTHORIZATION)
                                .map(|v| v.to_str().unwrap_or("").to_string())
                                .unwrap_or_default();
                            if path == STREAM_PATH {
                                return Ok(open_stream(&body, &auth));
                            }
                            if let Some(kind) = path.strip_prefix("/v1/echo/") {
                                return Ok(echo(kind, &auth));
                            }
                            let answer = json!({"ok": true, "id": "pay-1", "path": path});
                            Ok::<_, Infallible>(Response::new(full_body(answer.to_string())))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        ToolApi {
            addr,
            requests,
            authorized,
        }
    }

    /// The requests recorded so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}
