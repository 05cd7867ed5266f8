//! Faults of the webhooks: the approvers' webhook down, the owner's webhook
//! taking 10 s to answer. Neither holds a call up or loses a decision: the
//! held call stays in the approvals store and is forwarded once approved,
//! the tier-2 call answers at once; each failed delivery is logged and
//! counted (`agent_sidecar_webhook_deliveries_total{agent_id,sink,outcome}`).
//!
//! Runs without root: the gateway is wired as `run` wires it, minus the
//! kernel (see `agent_sidecar_test_support::sidecar::gateway`).

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use agent_sidecar_test_support::{
    curl::curl,
    sidecar::gateway::{Harness, Options},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

fn log_lines() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
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

fn deliveries(h: &Harness, sink: &str, outcome: &str) -> u64 {
    let (sink, outcome) = (format!("sink=\"{sink}\""), format!("outcome=\"{outcome}\""));
    h.metrics
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("agent_sidecar_webhook_deliveries_total{")
                && l.contains(&sink)
                && l.contains(&outcome)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A URL nothing listens on.
async fn closed_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/approvers", l.local_addr().unwrap());
    drop(l);
    url
}

/// A webhook that reads each request and answers 200 after `delay`.
async fn slow_webhook(delay: Duration) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/owner", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approver_webhook_down_loses_no_approval_and_is_logged_and_counted() {
    let log = log_lines();
    let h = Harness::start(Options {
        approver_url: Some(closed_url().await),
        ..Options::default()
    })
    .await;
    let args = {
        let mut a = h.explicit_args();
        a.extend([
            "-X".into(),
            "POST".into(),
            "-H".into(),
            "content-type: application/json".into(),
            "-d".into(),
            r#"{"amount": 5000, "iban": "DE89370400440532013000"}"#.into(),
            h.url("/v1/payments"),
        ]);
        a
    };
    let held = tokio::spawn(async move { curl(&args, &["--max-time", "30"]).await });
    // The approval is in the store although no approver heard of it.
    let mut approval = None;
    for _ in 0..200 {
        if let Some(a) = h
            .approvals
            .list(Some("pending"))
            .await
            .unwrap()
            .into_iter()
            .next()
        {
            approval = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let approval = approval.expect("the held call's approval is pending");
    // Every attempt fails (5, backoff from 50 ms): each counted as failed,
    // then the event dropped.
    until(
        "the approver's delivery dropped",
        Duration::from_secs(10),
        || deliveries(&h, "approver", "dropped") >= 1,
    )
    .await;
    assert!(deliveries(&h, "approver", "failed") >= 5);
    assert_eq!(deliveries(&h, "approver", "sent"), 0);
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        text.lines().any(|l| l.contains("ERROR")
            && l.contains("webhook delivery failed on every attempt; event dropped")),
        "{text}"
    );
    // An approver who uses the admin API or the CLI still decides it.
    h.approvals
        .approve(&approval.id, "cfo@example.test", "checked by phone")
        .await
        .unwrap();
    let (status, body) = held.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let paid: Vec<_> = h
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/payments")
        .collect();
    assert_eq!(paid.len(), 1, "forwarded once: {paid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_owner_webhook_does_not_hold_up_calls_and_is_logged_and_counted() {
    let log = log_lines();
    let h = Harness::start(Options {
        owner_url: Some(slow_webhook(Duration::from_secs(10)).await),
        ..Options::default()
    })
    .await;
    let patch = |name: &str| {
        let mut a = h.explicit_args();
        a.extend([
            "-X".into(),
            "PATCH".into(),
            "-H".into(),
            "content-type: application/json".into(),
            "-d".into(),
            format!(r#"{{"name": "{name}"}}"#),
            h.url("/v1/vendors/7"),
        ]);
        a
    };
    // Tier 2: the owner is told; the call does not wait for the telling.
    for name in ["ACME", "ACME 2", "ACME 3"] {
        let started = Instant::now();
        let (status, body) = curl(&patch(name), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the call waited for the owner's webhook: {:?}",
            started.elapsed()
        );
    }
    // Each attempt times out after 5 s: counted as failed (the queue keeps
    // the event) and logged.
    until(
        "the owner's delivery failed",
        Duration::from_secs(12),
        || deliveries(&h, "owner", "failed") >= 1,
    )
    .await;
    assert_eq!(deliveries(&h, "owner", "sent"), 0);
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        text.lines().any(|l| l.contains("WARN")
            && l.contains("webhook delivery failed; the queue keeps the event")),
        "{text}"
    );
    assert_eq!(
        h.api
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/vendors/7")
            .count(),
        3
    );
}
