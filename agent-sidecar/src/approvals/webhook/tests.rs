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

/// A webhook receiver that fails the first `failures` requests with 500 and
/// records the bodies of the rest.
async fn receiver(
    failures: usize,
) -> (String, Arc<Mutex<Vec<serde_json::Value>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (seen2, hits2) = (seen.clone(), hits.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, hits) = (seen2.clone(), hits2.clone());
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
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
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
    let config = WebhookConfig {
        queue: 1,
        attempts: 1,
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
}

#[test]
fn https_urls_are_refused_for_now() {
    let err =
        WebhookNotifier::spawn(WebhookConfig::new("https://hooks.example/")).expect_err("no TLS");
    assert!(err.to_string().contains("no TLS"), "{err}");
}
