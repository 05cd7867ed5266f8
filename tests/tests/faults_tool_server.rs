//! Faults of the tool server behind the gateway: the server dies in the
//! middle of a REST call (the request read, no answer) and in the middle of
//! an MCP event stream (the stream's head sent, the answer never). Each
//! ends with nothing lost (the agent gets a clear 502, the audit log holds
//! the attempt and its outcome, the next call goes through), a log line
//! naming the failure and a metric counting it.
//!
//! Runs without root: the gateway is wired as `run` wires it, minus the
//! kernel (see `agent_sidecar_test_support::sidecar::gateway`).

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use agent_sidecar::{
    audit::{AuditRecord, Phase, RecordKind, query},
    events::AuditOptions,
};
use agent_sidecar_test_support::{
    ca::TestCa,
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
    tool_api::{HOST, STREAM_PATH, ToolApi},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// How the tool server dies.
#[derive(Clone, Copy)]
enum Death {
    /// Reads the request, then closes the connection without a byte.
    BeforeAnswer,
    /// Sends the head of an event stream and one comment, then closes the
    /// connection without the answer's event.
    MidStream,
}

/// A tool server for [`HOST`] whose first `dying` connections die as
/// `death` says; later ones answer a small JSON body (REST) or a JSON-RPC
/// result (MCP). Counts the connections it accepted.
async fn dying_tool_server(ca: &TestCa, death: Death, dying: usize) -> (ToolApi, Arc<AtomicUsize>) {
    let acceptor = ca.leaf(&[HOST]).acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let request = read_request(&mut tls).await;
                if n < dying {
                    if let Death::MidStream = death {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                                    transfer-encoding: chunked\r\n\r\n";
                        let comment = ": working\n\n";
                        let chunk = format!("{:x}\r\n{comment}\r\n", comment.len());
                        let _ = tls.write_all(head.as_bytes()).await;
                        let _ = tls.write_all(chunk.as_bytes()).await;
                        let _ = tls.flush().await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    // The process is gone: no close_notify, no answer.
                    drop(tls);
                    return;
                }
                let body = if request.contains("\"jsonrpc\"") {
                    let id = request
                        .split("\r\n\r\n")
                        .nth(1)
                        .and_then(|b| serde_json::from_str::<Value>(b).ok())
                        .map_or(Value::Null, |v| v["id"].clone());
                    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [
                        {"type": "text", "text": "back again"}]}})
                    .to_string()
                } else {
                    json!({"ok": true, "back": "again"}).to_string()
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let api = ToolApi {
        addr,
        requests: Arc::default(),
        authorized: Arc::default(),
    };
    (api, seen)
}

/// Reads one request's head and its `content-length` body.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The log lines written while the test runs (every test of this file
/// shares them; each looks for its own).
fn log_lines() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(move || SharedWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(log: &Mutex<Vec<u8>>, needles: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    text.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
}

fn with_audit() -> Options {
    Options {
        audit: Some(AuditOptions::default()),
        ..Options::default()
    }
}

/// The tool-call records of the harness's log, read after closing it:
/// (phase, outcome status).
async fn tool_call_records(h: &mut Harness) -> Vec<(Phase, Option<String>)> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let trail = h.audit.take().expect("audit on");
    let dir = trail.dir().to_path_buf();
    trail.close(json!({"reason": "test end"})).expect("close");
    let mut out: Vec<AuditRecord> = Vec::new();
    query::query(&dir, &query::QueryFilter::default(), |r, _| {
        out.push(r.clone());
        std::ops::ControlFlow::Continue(())
    })
    .expect("query");
    out.into_iter()
        .filter(|r| r.kind == RecordKind::ToolCall)
        .map(|r| (r.phase, r.outcome.map(|o| o.status.as_str().to_string())))
        .collect()
}

/// `agent_sidecar_gateway_calls_total` for `outcome` and `reason`.
fn calls_metric(h: &Harness, outcome: &str, reason: &str) -> u64 {
    let text = h.metrics.render();
    text.lines()
        .filter(|l| l.starts_with("agent_sidecar_gateway_calls_total{"))
        .filter(|l| {
            l.contains(&format!("outcome=\"{outcome}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_server_killed_mid_call_gives_a_502_a_record_a_line_and_a_metric() {
    let log = log_lines();
    let ca = TestCa::new();
    let (api, connections) = dying_tool_server(&ca, Death::BeforeAnswer, 1).await;
    let mut h = Harness::start_with(with_audit(), ca, api).await;

    let (status, body) = curl(&h.explicit_args(), &[&h.url("/v1/invoices?limit=5")]).await;
    assert_eq!(status, 502, "{body}");
    let refusal = json_of(&body);
    assert_eq!(refusal["error"]["reason"], "upstream_failed", "{body}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|d| d.contains(HOST)),
        "the refusal names the tool host: {body}"
    );
    assert!(connections.load(Ordering::SeqCst) >= 1);

    // The next call goes through: the gateway did not keep the dead
    // connection.
    let (status, body) = curl(&h.explicit_args(), &[&h.url("/v1/invoices?limit=6")]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("back"), "{body}");

    assert_eq!(calls_metric(&h, "upstream_failed", "upstream_failed"), 1);
    assert_eq!(calls_metric(&h, "forwarded", ""), 1);
    let line = logged(
        &log,
        &["tool call", "outcome=\"upstream_failed\"", "limit=5"],
    )
    .or_else(|| logged(&log, &["tool call", "outcome=\"upstream_failed\""]))
    .expect("a log line for the failed call");
    assert!(line.contains("WARN") || line.contains("INFO"), "{line}");

    // Nothing lost: both calls have their attempt and their outcome.
    let calls = tool_call_records(&mut h).await;
    let count = |phase: Phase, status: Option<&str>| {
        calls
            .iter()
            .filter(|(p, s)| *p == phase && s.as_deref() == status)
            .count()
    };
    assert_eq!(calls.len(), 4, "two attempts, two outcomes: {calls:?}");
    assert_eq!(count(Phase::Attempt, None), 2, "{calls:?}");
    assert_eq!(count(Phase::Outcome, Some("failure")), 1, "{calls:?}");
    assert_eq!(count(Phase::Outcome, Some("success")), 1, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_server_killed_mid_event_stream_ends_the_agents_stream_in_error_with_a_line_and_a_metric()
 {
    let log = log_lines();
    let ca = TestCa::new();
    let (api, _) = dying_tool_server(&ca, Death::MidStream, 1).await;
    let mut h = Harness::start_with(with_audit(), ca, api).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "get_customer", "arguments": {"customer_id": "c-1"}}});
    let mcp = |call: Value| {
        let args = h.explicit_args();
        let url = h.url(STREAM_PATH);
        async move {
            curl(
                &args,
                &[
                    "-H",
                    "content-type: application/json",
                    "-H",
                    "accept: application/json, text/event-stream",
                    "-d",
                    &call.to_string(),
                    &url,
                ],
            )
            .await
        }
    };
    let started = std::time::Instant::now();
    let (status, body) = mcp(call.clone()).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the agent is not left waiting for the upstream timeout"
    );
    // The stream's head had gone to the agent: the cut reaches it as a
    // stream closed in error (HTTP/2 RST_STREAM), never as a clean end.
    assert!(
        body.contains("not closed cleanly") || body.contains("upstream_failed"),
        "the agent learns the tool server failed: {status} {body}"
    );
    assert!(
        !body.contains("back again"),
        "no answer was invented: {body}"
    );

    let (status, body) = mcp(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "get_customer", "arguments": {"customer_id": "c-2"}}}))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("back again"), "{body}");

    // No upstream_failed outcome (the call reached the tool), but the lost
    // answer is logged and counted.
    assert_eq!(calls_metric(&h, "upstream_failed", "upstream_failed"), 0);
    assert_eq!(calls_metric(&h, "forwarded", ""), 2);
    let lost: u64 = h
        .metrics
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("agent_sidecar_gateway_mcp_messages_dropped_total{")
                && l.contains("direction=\"to_agent\"")
                && l.contains("reason=\"answer_lost\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(lost, 1, "{}", h.metrics.render());
    let line = logged(&log, &["MCP answer lost", "id=7"]).expect("a log line for the lost answer");
    assert!(line.contains("WARN") && line.contains(HOST), "{line}");

    let calls = tool_call_records(&mut h).await;
    let outcomes: Vec<&str> = calls
        .iter()
        .filter(|(p, _)| *p == Phase::Outcome)
        .filter_map(|(_, s)| s.as_deref())
        .collect();
    assert_eq!(outcomes, ["success", "success"], "{calls:?}");
    assert_eq!(
        calls.iter().filter(|(p, _)| *p == Phase::Attempt).count(),
        2,
        "{calls:?}"
    );
}
