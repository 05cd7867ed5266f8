//! The limits on real sockets: a hyper server built by [`server_builder`]
//! whose service applies [`check_framing`] and [`collect_limited`], fed raw
//! bytes over TCP on 127.0.0.1.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{CONNECTION, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use super::{
    FirstByteTimeout, GatewayLimits, check_framing, collect_limited, serve_until_idle,
    server_builder,
};

/// How long a test waits for the server to answer and close.
const WAIT: Duration = Duration::from_secs(3);

fn test_limits() -> GatewayLimits {
    GatewayLimits {
        max_body_bytes: 1024,
        max_headers: 20,
        max_header_bytes: 8192,
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_millis(300),
    }
}

struct Server {
    addr: SocketAddr,
    /// Paths of the requests the service handled.
    served: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(limits: GatewayLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(Mutex::new(Vec::new()));
    let builder = Arc::new(server_builder(&limits));
    let log = served.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let builder = builder.clone();
            let limits = limits.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let io = FirstByteTimeout::new(stream, limits.header_read_timeout);
                let idle = limits.idle_timeout;
                let _ = serve_until_idle(&builder, io, idle, move |req| {
                    let (limits, log) = (limits.clone(), log.clone());
                    async move {
                        match handle(req, limits, log).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        }
                    }
                })
                .await;
            });
        }
    });
    Server { addr, served, task }
}

async fn handle(
    req: Request<Incoming>,
    limits: GatewayLimits,
    served: Arc<Mutex<Vec<String>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    served.lock().unwrap().push(parts.uri.path().to_owned());
    if let Err(err) = check_framing(&parts) {
        return Ok(refusal(err.status(), &err.to_string()));
    }
    match collect_limited(body, limits.max_body_bytes, limits.body_read_timeout).await {
        Ok(body) => Ok(Response::new(Full::new(Bytes::from(format!(
            "{} {}",
            parts.uri.path(),
            body.len()
        ))))),
        Err(err) => Ok(refusal(err.status(), &err.to_string())),
    }
}

fn refusal(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What the client saw: everything the server sent until it closed (or
/// [`WAIT`] passed), whether it closed, and when.
struct Seen {
    text: String,
    closed: bool,
    elapsed: Duration,
}

impl Seen {
    /// The status codes of the responses, in order.
    fn statuses(&self) -> Vec<u16> {
        self.text
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|rest| rest.get(..3)?.parse().ok())
            .collect()
    }
}

async fn read_all(stream: &mut TcpStream, start: Instant) -> Seen {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(WAIT.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    Seen {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed,
        elapsed: start.elapsed(),
    }
}

/// Sends `raw` in one write and reads the answer.
async fn exchange(server: &Server, raw: &[u8]) -> Seen {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    // The server may close before reading everything; what it answered
    // still counts.
    let _ = stream.write_all(raw).await;
    read_all(&mut stream, start).await
}

fn served(server: &Server) -> Vec<String> {
    server.served.lock().unwrap().clone()
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn plain_and_pipelined_requests_are_served() {
    let server = start(test_limits()).await;
    let seen = exchange(
        &server,
        b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(seen.statuses(), [200, 200], "{}", seen.text);
    assert!(seen.text.contains("/one 5") && seen.text.contains("/two 3"));
    assert!(seen.closed);
    assert_eq!(served(&server), ["/one", "/two"]);
}

#[tokio::test]
async fn cl_te_smuggling_is_not_served() {
    // CL.TE: a front end trusting Content-Length forwards the smuggled
    // request as body; a back end trusting chunked sees it as a second
    // request.
    let server = start(test_limits()).await;
    let body = format!("0\r\n\r\n{SMUGGLED}");
    let raw = format!(
        "POST /clte HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    // hyper lets chunked win, drops the Content-Length (so check_framing
    // never sees both) and closes the connection after one response, so
    // the rest is never parsed.
    assert_eq!(seen.statuses(), [200], "{}", seen.text);
    assert!(
        seen.text.contains("/clte 0"),
        "empty chunked body: {}",
        seen.text
    );
    assert!(seen.closed, "connection closed after the ambiguous request");
    assert_eq!(served(&server), ["/clte"]);
}

#[tokio::test]
async fn te_cl_smuggling_is_not_served() {
    // TE.CL: the smuggled request sits inside a chunk; a back end trusting
    // Content-Length would read it as the next request.
    let server = start(test_limits()).await;
    let raw = format!(
        "POST /tecl HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
        SMUGGLED.len()
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    // read as chunked: the smuggled request is the body of this one
    assert_eq!(seen.statuses(), [200], "{}", seen.text);
    assert!(
        seen.text.contains(&format!("/tecl {}", SMUGGLED.len())),
        "{}",
        seen.text
    );
    assert!(seen.closed);
    assert_eq!(served(&server), ["/tecl"]);
    // and Content-Length before Transfer-Encoding or after: the same
    let raw = format!(
        "POST /tecl2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
        SMUGGLED.len()
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses().len(), 1, "{}", seen.text);
    assert!(!served(&server).contains(&"/smuggled".to_owned()));
}

#[tokio::test]
async fn duplicate_content_length() {
    let server = start(test_limits()).await;
    let raw = format!(
        "POST /dup HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [400], "{}", seen.text);
    assert!(seen.closed);
    assert!(served(&server).is_empty(), "refused by the parser");
    // a list in one header line
    let seen = exchange(
        &server,
        b"POST /list HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
    )
    .await;
    assert_eq!(seen.statuses(), [400], "{}", seen.text);
    assert!(served(&server).is_empty());
}

#[tokio::test]
async fn transfer_encodings_other_than_chunked() {
    let server = start(test_limits()).await;
    for te in ["chunked, identity", "identity, chunked", "gzip"] {
        let raw = format!(
            "POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n{SMUGGLED}"
        );
        let seen = exchange(&server, raw.as_bytes()).await;
        assert_eq!(seen.statuses(), [400], "{te}: {}", seen.text);
        assert!(seen.closed, "{te}");
    }
    // two header lines
    let raw = format!(
        "POST /te2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [400], "{}", seen.text);
    assert!(seen.closed);
    assert!(!served(&server).contains(&"/smuggled".to_owned()));
}

#[tokio::test]
async fn http10_with_transfer_encoding() {
    let server = start(test_limits()).await;
    let raw = format!(
        "POST /old HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [400], "{}", seen.text);
    assert!(seen.closed);
    assert!(served(&server).is_empty());
}

#[tokio::test]
async fn obs_fold_is_refused() {
    let server = start(test_limits()).await;
    let raw = b"POST /fold HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n";
    let seen = exchange(&server, raw).await;
    assert_eq!(seen.statuses(), [400], "{}", seen.text);
    assert!(seen.closed);
    assert!(served(&server).is_empty());
}

#[tokio::test]
async fn too_many_or_too_large_headers() {
    let server = start(test_limits()).await;
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET /many HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [431], "{}", seen.text);
    assert!(seen.closed);
    let big = "a".repeat(10 * 1024);
    let raw = format!("GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [431], "{}", seen.text);
    assert!(served(&server).is_empty());
    // just under both limits is fine
    let some: String = (0..15).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET /some HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{some}\r\n");
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [200], "{}", seen.text);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = start(test_limits()).await;
    // declared: refused before the body is sent
    let raw = format!("POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{SMUGGLED}");
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [413], "{}", seen.text);
    assert!(seen.closed);
    // streamed: refused once past the limit
    let chunk = "a".repeat(600);
    let raw = format!(
        "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n{SMUGGLED}"
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [413], "{}", seen.text);
    assert!(seen.closed);
    // exactly at the limit is fine
    let body = "b".repeat(1024);
    let raw = format!(
        "POST /max HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n{body}"
    );
    let seen = exchange(&server, raw.as_bytes()).await;
    assert_eq!(seen.statuses(), [200], "{}", seen.text);
    assert_eq!(served(&server), ["/cl", "/chunked", "/max"]);
}

#[tokio::test]
async fn slow_loris_headers_are_cut_off() {
    let limits = test_limits();
    let server = start(limits.clone()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    stream.write_all(b"GET /slow HTTP/1.1\r\n").await.unwrap();
    // One header line every 50 ms: never a complete head within 200 ms.
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if stream
            .write_all(format!("X-Drip-{i}: v\r\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let seen = read_all(&mut stream, start).await;
    assert!(seen.closed, "connection closed");
    assert!(
        seen.statuses().iter().all(|s| *s == 408),
        "at most a 408: {}",
        seen.text
    );
    assert!(
        seen.elapsed < limits.header_read_timeout + Duration::from_millis(2000),
        "closed after {:?}",
        seen.elapsed
    );
    assert!(served(&server).is_empty());
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = start(test_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let seen = read_all(&mut stream, Instant::now()).await;
    assert!(seen.closed, "a connection that sends nothing is closed");
    assert!(
        seen.elapsed < Duration::from_secs(2),
        "after {:?}",
        seen.elapsed
    );
    // and between keep-alive requests
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let seen = read_all(&mut stream, start).await;
    assert_eq!(seen.statuses(), [200], "{}", seen.text);
    assert!(
        seen.closed && seen.elapsed < Duration::from_secs(2),
        "{:?}",
        seen.elapsed
    );
}

#[tokio::test]
async fn slow_body_gets_408() {
    let server = start(test_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    stream
        .write_all(b"POST /slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let seen = read_all(&mut stream, start).await;
    assert_eq!(seen.statuses(), [408], "{}", seen.text);
    assert!(seen.closed);
    assert!(
        seen.elapsed >= Duration::from_millis(300),
        "{:?}",
        seen.elapsed
    );
}

#[tokio::test]
async fn http2_requests_are_served() {
    let server = start(test_limits()).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = Request::post("http://x/h2")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(served(&server), ["/h2"]);
}

/// An HTTP/2 connection to the test server: the request sender, and the
/// connection task, which ends when the server closes the connection.
async fn h2_connect(
    server: &Server,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    JoinHandle<()>,
) {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
) -> StatusCode {
    let request = Request::post(format!("http://x{path}"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    sender.send_request(request).await.unwrap().status()
}

#[tokio::test]
async fn idle_http2_connections_are_closed_although_they_answer_pings() {
    let limits = test_limits();
    let server = start(limits.clone()).await;
    let (mut sender, conn) = h2_connect(&server).await;
    assert_eq!(h2_get(&mut sender, "/once").await, StatusCode::OK);
    let start = Instant::now();
    // hyper's client answers the server's keep-alive pings on its own; the
    // server still closes the connection once nothing ran for the idle timeout.
    tokio::time::timeout(limits.idle_timeout + WAIT, conn)
        .await
        .expect("the server closed the idle HTTP/2 connection")
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= limits.idle_timeout - Duration::from_millis(100),
        "closed after {elapsed:?}, before the idle timeout"
    );
}

#[tokio::test]
async fn busy_http2_connections_stay_open() {
    let limits = test_limits();
    let server = start(limits.clone()).await;
    let (mut sender, conn) = h2_connect(&server).await;
    // A request every 40 % of the idle timeout, for twice the idle timeout.
    let step = limits.idle_timeout * 2 / 5;
    for i in 0..5 {
        assert_eq!(
            h2_get(&mut sender, &format!("/busy{i}")).await,
            StatusCode::OK
        );
        tokio::time::sleep(step).await;
        assert!(
            !conn.is_finished(),
            "closed while in use, after request {i}"
        );
    }
    assert_eq!(served(&server).len(), 5);
}
