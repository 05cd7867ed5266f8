//! The sidecar's webhook events (approvals, the owner's and SOC's notices,
//! alerts) as received by a real HTTP server that verifies their Standard
//! Webhooks signatures with the official library (PyPI `standardwebhooks`,
//! `tests/python/signed_webhook_receiver.py`): each event is one signed
//! envelope whose `webhook-id` is its event id, failed deliveries are
//! retried and counted, a receiver that refuses the signature gets the
//! event once, and events queued on disk while the webhook is down are
//! sent, in order and with their ids, by the next run.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agent_sidecar::{
    approvals::{WebhookConfig, WebhookNotifier},
    webhook::{DeliveryMetrics, WebhookSecret},
};
use agent_sidecar_test_support::mcp::{python_script, test_python};
use serde_json::{Value, json};

/// Counts outcomes by name.
#[derive(Default)]
struct Counts(Mutex<BTreeMap<String, u64>>);

impl DeliveryMetrics for Counts {
    fn delivery(&self, sink: &str, outcome: &str) {
        *self
            .0
            .lock()
            .unwrap()
            .entry(format!("{sink}/{outcome}"))
            .or_default() += 1;
    }
}

impl Counts {
    fn get(&self, k: &str) -> u64 {
        self.0.lock().unwrap().get(k).copied().unwrap_or(0)
    }
}

/// The verifying receiver; killed when dropped.
struct Receiver {
    child: Child,
    out: PathBuf,
}

impl Receiver {
    fn start(port: u16, out: &Path, secret_file: &Path, fail_first: usize) -> Receiver {
        let mut child = Command::new(test_python())
            .arg(python_script("signed_webhook_receiver.py"))
            .arg(format!("127.0.0.1:{port}"))
            .arg(out)
            .arg(secret_file)
            .env("FAIL_FIRST", fail_first.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the receiver did not start");
        Receiver {
            child,
            out: out.to_path_buf(),
        }
    }

    fn entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn wait(&self, what: &str, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let t = Instant::now();
        loop {
            let e = self.entries();
            if cond(&e) {
                return e;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{what}: got {e:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn secret_file(dir: &Path, name: &str) -> (PathBuf, WebhookSecret) {
    let path = dir.join(name);
    let (secret, made) = WebhookSecret::open_or_create(&path).unwrap();
    assert!(made);
    (path, secret)
}

fn config(port: u16, secret: &WebhookSecret, counts: &Arc<Counts>) -> WebhookConfig {
    WebhookConfig {
        secret: Some(secret.clone()),
        sink: "soc".into(),
        metrics: Some(counts.clone() as Arc<dyn DeliveryMetrics>),
        initial_backoff: Duration::from_millis(20),
        ..WebhookConfig::new(format!("http://127.0.0.1:{port}/hook"))
    }
}

fn verified(e: &[Value]) -> Vec<&Value> {
    e.iter().filter(|e| e["verified"] == true).collect()
}

#[tokio::test]
async fn events_are_signed_envelopes_the_standard_webhooks_library_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_path, secret) = secret_file(dir.path(), "webhook.secret");
    let port = free_port();
    // The first two attempts meet a 503: retried, counted.
    let rx = Receiver::start(port, &dir.path().join("out.jsonl"), &secret_path, 2);
    let counts = Arc::new(Counts::default());
    let n = WebhookNotifier::spawn(config(port, &secret, &counts)).unwrap();
    n.post(&json!({"event": "action.halted", "agent": "billing", "quarantined": true}));
    n.post(
        &json!({"event": "detection.finding", "alert_id": "alr_1", "finding": {"class_uid": 2004}}),
    );
    let e = rx
        .wait("two verified events", |e| verified(e).len() == 2)
        .await;
    let ok = verified(&e);
    assert_eq!(e.len(), 4, "two 503s then two deliveries: {e:#?}");
    for (entry, kind) in ok.iter().zip(["action.halted", "detection.finding"]) {
        let body = &entry["bodies"][0];
        assert_eq!(body["event"], kind);
        assert_eq!(
            entry["webhook_id"], body["id"],
            "webhook-id is the event id"
        );
        assert!(body["id"].as_str().unwrap().starts_with("evt_"), "{body}");
        assert_eq!(body["schema_version"], 1);
        let ts = body["timestamp"].as_str().unwrap();
        assert!(
            ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "RFC 3339 UTC: {ts}"
        );
        assert_eq!(entry["content_type"], "application/json");
    }
    assert_eq!(ok[0]["bodies"][0]["quarantined"], true);
    assert_eq!(ok[1]["bodies"][0]["finding"]["class_uid"], 2004);
    // The retries of the first event carried the same id.
    assert_eq!(e[0]["webhook_id"], ok[0]["webhook_id"]);
    assert_eq!(e[1]["webhook_id"], ok[0]["webhook_id"]);
    assert_ne!(ok[0]["webhook_id"], ok[1]["webhook_id"]);
    assert_eq!(counts.get("soc/failed"), 2);
    assert_eq!(counts.get("soc/sent"), 2);

    // A sender with another secret: the library refuses the signature
    // (401), which is not retried, and is counted.
    let (_, other) = secret_file(dir.path(), "other.secret");
    let counts2 = Arc::new(Counts::default());
    let forged = WebhookNotifier::spawn(config(port, &other, &counts2)).unwrap();
    forged.post(&json!({"event": "agent.released", "agent": "billing"}));
    let e = rx.wait("a refused event", |e| e.len() == 5).await;
    assert_eq!(e[4]["verified"], false, "{:#?}", e[4]);
    assert!(
        e[4]["error"].as_str().unwrap().contains("signature"),
        "{:#?}",
        e[4]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.entries().len(), 5, "a refused event is not sent again");
    assert_eq!(counts2.get("soc/rejected"), 1);
    assert_eq!(counts2.get("soc/sent"), 0);
}

#[tokio::test]
async fn events_queued_on_disk_while_the_webhook_is_down_reach_it_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_path, secret) = secret_file(dir.path(), "webhook.secret");
    let queue = dir.path().join("queue");
    let port = free_port();
    let counts = Arc::new(Counts::default());
    // Nothing listens: every attempt fails, the events stay on disk.
    let down = WebhookNotifier::spawn(WebhookConfig {
        queue_dir: Some(queue.clone()),
        ..config(port, &secret, &counts)
    })
    .unwrap();
    for i in 0..3 {
        down.post(&json!({"event": "approval.pending", "approval": {"id": format!("apr_{i}")}}));
    }
    let t = Instant::now();
    while counts.get("soc/failed") < 2 {
        assert!(t.elapsed() < Duration::from_secs(5), "no failed attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(down);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&queue)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "evt"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let queued_ids: Vec<String> = files
        .iter()
        .map(|f| {
            let raw = std::fs::read_to_string(f).unwrap();
            raw.lines().next().unwrap().to_string()
        })
        .collect();
    assert_eq!(counts.get("soc/sent"), 0);

    // The next run, with the webhook back, sends them first, in order.
    let rx = Receiver::start(port, &dir.path().join("out.jsonl"), &secret_path, 0);
    let counts = Arc::new(Counts::default());
    let up = WebhookNotifier::spawn(WebhookConfig {
        queue_dir: Some(queue.clone()),
        ..config(port, &secret, &counts)
    })
    .unwrap();
    up.post(&json!({"event": "approval.decided", "approval": {"id": "apr_0"}}));
    let e = rx
        .wait("four verified events", |e| verified(e).len() == 4)
        .await;
    let ids: Vec<&str> = e
        .iter()
        .map(|e| e["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids[..3],
        queued_ids.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    let approvals: Vec<&Value> = e
        .iter()
        .map(|e| &e["bodies"][0]["approval"]["id"])
        .collect();
    assert_eq!(
        approvals,
        [
            &json!("apr_0"),
            &json!("apr_1"),
            &json!("apr_2"),
            &json!("apr_0")
        ]
    );
    assert_eq!(e[3]["bodies"][0]["event"], "approval.decided");
    assert_eq!(counts.get("soc/sent"), 4);
    let t = Instant::now();
    while std::fs::read_dir(&queue).unwrap().count() != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the queue keeps sent events"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
