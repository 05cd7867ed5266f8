use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use http_body_util::BodyExt;
use hyper::{Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;
use crate::approvals::model::{ApprovalState, UnixMillis, tests::sample_request};

type Seen = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver that fails the first `failures` requests with 500 and
/// records the bodies of the rest.
async fn receiver(failures: usize) -> (String, Seen, Arc<AtomicUsize>) {
    receiver_with(failures, None).await
}

/// [`receiver`], over TLS when `tls` is given (`https://` URL).
async fn receiver_with(
    failures: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, Seen, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/hook", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (seen2, hits2) = (seen.clone(), hits.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, hits, tls) = (seen2.clone(), hits2.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let (seen, hits) = (seen.clone(), hits.clone());
                    async move {
                        assert_eq!(req.uri().path(), "/hook");
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        let status = if hits.fetch_add(1, Ordering::SeqCst) < failures {
                            StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            let v = serde_json::from_slice(&body).expect("JSON");
                            seen.lock().expect("lock").push(v);
                            StatusCode::NO_CONTENT
                        };
                        let mut resp = Response::new(http_body_util::Full::new(Bytes::new()));
                        *resp.status_mut() = status;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                }
            });
        }
    });
    (url, seen, hits)
}

async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 2 s");
}

#[tokio::test]
async fn posts_pending_and_decided_events_in_order() {
    let (url, seen, _) = receiver(0).await;
    let n = WebhookNotifier::spawn(WebhookConfig::new(url)).expect("spawns");
    let mut a = PendingApproval::new("k".into(), sample_request(), UnixMillis(1));
    n.pending(&a);
    a.state = ApprovalState::Expired { at: UnixMillis(2) };
    n.decided(&a);
    eventually(|| seen.lock().expect("lock").len() == 2).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen[0]["event"], "approval.pending");
    assert_eq!(seen[0]["approval"]["id"], a.id.as_str());
    assert_eq!(seen[1]["event"], "approval.decided");
    assert_eq!(seen[1]["approval"]["state"]["kind"], "expired");
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let (url, seen, hits) = receiver(2).await;
    let config = WebhookConfig {
        initial_backoff: Duration::from_millis(10),
        ..WebhookConfig::new(url)
    };
    let n = WebhookNotifier::spawn(config).expect("spawns");
    n.pending(&PendingApproval::new(
        "k".into(),
        sample_request(),
        UnixMillis(1),
    ));
    eventually(|| seen.lock().expect("lock").len() == 1).await;
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_dead_webhook_never_blocks_the_caller() {
    // Nothing listens on the port of a listener that was dropped.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|l| l.local_addr())
        .expect("addr");
    let counted = Arc::new(Outcomes::default());
    let config = WebhookConfig {
        queue: 1,
        attempts: 1,
        sink: "approver".into(),
        metrics: Some(counted.clone()),
        ..WebhookConfig::new(format!("http://{addr}/"))
    };
    let n = WebhookNotifier::spawn(config).expect("spawns");
    let a = PendingApproval::new("k".into(), sample_request(), UnixMillis(1));
    let started = std::time::Instant::now();
    for _ in 0..100 {
        n.pending(&a);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Most never got into the queue: counted as such, apart from the
    // attempts that failed and the events dropped after them.
    let full = counted.count("approver", "queue_full");
    assert!(full >= 90, "{:?}", counted.0.lock().expect("lock"));
    eventually(|| counted.count("approver", "dropped") >= 1).await;
    assert_eq!(counted.count("approver", "sent"), 0);
}

/// Delivery outcomes by (sink, outcome).
#[derive(Default)]
struct Outcomes(Mutex<Vec<(String, String)>>);

impl Outcomes {
    fn count(&self, sink: &str, outcome: &str) -> usize {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|(s, o)| s == sink && o == outcome)
            .count()
    }
}

impl DeliveryMetrics for Outcomes {
    fn delivery(&self, sink: &str, outcome: &str) {
        self.0
            .lock()
            .expect("lock")
            .push((sink.to_string(), outcome.to_string()));
    }
}

/// A server certificate for 127.0.0.1 from a fresh CA: (acceptor, a client
/// configuration trusting that CA).
fn tls_pair() -> (tokio_rustls::TlsAcceptor, Arc<rustls::ClientConfig>) {
    let ca = agent_sidecar_test_support::ca::TestCa::new();
    (ca.leaf(&["127.0.0.1"]).acceptor(), ca.client_config())
}

#[tokio::test]
async fn posts_over_https_to_a_verified_server() {
    let (acceptor, client) = tls_pair();
    let (url, seen, _) = receiver_with(0, Some(acceptor)).await;
    let config = WebhookConfig {
        tls: Some(client),
        ..WebhookConfig::new(url)
    };
    let n = WebhookNotifier::spawn(config).expect("spawns");
    n.post(&serde_json::json!({"event": "agent.halted", "agent_id": "a"}));
    eventually(|| seen.lock().expect("lock").len() == 1).await;
    assert_eq!(seen.lock().expect("lock")[0]["event"], "agent.halted");
}

#[tokio::test]
async fn an_untrusted_https_server_gets_nothing() {
    let (acceptor, _) = tls_pair();
    let (_, other_ca) = tls_pair();
    let (url, seen, hits) = receiver_with(0, Some(acceptor)).await;
    let config = WebhookConfig {
        tls: Some(other_ca),
        attempts: 2,
        initial_backoff: Duration::from_millis(10),
        ..WebhookConfig::new(url.clone())
    };
    let n = WebhookNotifier::spawn(config).expect("spawns");
    n.post(&serde_json::json!({"event": "agent.halted"}));
    // Both attempts fail in the handshake: nothing reaches the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert!(seen.lock().expect("lock").is_empty());
    // The error an attempt meets, from a client trusting an unrelated CA.
    let endpoint = RemoteEndpoint::parse(&url, Some(tls_pair().1)).expect("parses");
    let req = endpoint
        .request(Method::POST, "")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let err = endpoint
        .send(req, Duration::from_secs(2), 1024)
        .await
        .expect_err("untrusted");
    assert!(matches!(err, HttpError::Tls { .. }), "{err}");
}

#[test]
fn https_urls_need_a_tls_configuration() {
    let err = WebhookNotifier::spawn(WebhookConfig::new("https://hooks.example/"))
        .expect_err("no TLS configuration");
    assert!(err.to_string().contains("only http://"), "{err}");
}

#[tokio::test]
async fn posts_through_the_operators_proxy_over_verified_tls() {
    let proxy = agent_sidecar_test_support::connect_proxy::start().await;
    let (acceptor, client) = tls_pair();
    let (url, seen, hits) = receiver_with(0, Some(acceptor)).await;
    let matcher = hyper_util::client::proxy::matcher::Matcher::builder()
        .https(proxy.url())
        .build();
    // Signed and queued on disk as without a proxy.
    let dir = tempfile::tempdir().expect("tempdir");
    let queue_dir = dir.path().join("soc");
    let config = WebhookConfig {
        tls: Some(client),
        proxy: Some(Arc::new(matcher)),
        secret: Some(
            crate::webhook::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "test")
                .expect("secret"),
        ),
        queue_dir: Some(queue_dir.clone()),
        sink: "soc".into(),
        ..WebhookConfig::new(url.clone())
    };
    let n = WebhookNotifier::spawn(config).expect("spawns");
    for i in 0..3 {
        n.post(&serde_json::json!({"event": "agent.halted", "n": i}));
    }
    eventually(|| seen.lock().expect("lock").len() == 3).await;
    // One tunnel, kept for the three events.
    let authority = url.trim_start_matches("https://").trim_end_matches("/hook");
    assert_eq!(proxy.targets(), [authority.to_string()]);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Each in the envelope, in order; the queue is empty once delivered.
    for (i, v) in seen.lock().expect("lock").iter().enumerate() {
        assert_eq!(v["event"], "agent.halted");
        assert_eq!(v["n"], i);
        assert!(
            v["id"].as_str().is_some_and(|id| id.starts_with("evt_")),
            "{v}"
        );
        assert_eq!(v["schema_version"], 1);
    }
    eventually(|| {
        std::fs::read_dir(&queue_dir)
            .map(|d| d.count() == 0)
            .unwrap_or(false)
    })
    .await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_each_attempt() {
    // Accepts, reads nothing, answers nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let endpoint = RemoteEndpoint::parse(&url, None).expect("parses");
    let req = endpoint
        .request(Method::POST, "")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let started = std::time::Instant::now();
    let err = endpoint
        .send(req, Duration::from_millis(200), 1024)
        .await
        .expect_err("no answer");
    assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The notifier retries after each timed-out attempt, on a new
    // connection (the stalled one is not reused).
    let config = WebhookConfig {
        timeout: Duration::from_millis(100),
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        ..WebhookConfig::new(url)
    };
    let n = WebhookNotifier::spawn(config).expect("spawns");
    n.post(&serde_json::json!({"event": "agent.halted"}));
    eventually(|| accepted.load(Ordering::SeqCst) >= 4).await;
}
