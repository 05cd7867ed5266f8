//! Shipping audit records to real receivers: an OTLP/HTTP collector built
//! on the official protobuf definitions (PyPI `opentelemetry-proto`) and a
//! webhook receiver that verifies signatures with the official Standard
//! Webhooks library (PyPI `standardwebhooks`), both in Python from the
//! test venv; a collector that is down, then busy, then back; a 400 and a
//! partial success; a restart of the shipper; a tampered webhook body.

mod audit_support;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar::audit::{
    AuditLog,
    query::{QueryFilter, query},
    ship::{
        Backoff, DestinationConfig, ShipConfig, ShipMetrics, ShipSource, Shipper, WebhookSecret,
        webhook,
    },
};
use audit_support::*;
use serde_json::Value;

/// The venv's python: `$AGENT_SIDECAR_TEST_PYTHON`, else the checkout's
/// `.tools/venv` (made by `cargo xtask setup`). Missing is a failure.
fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let p = std::env::var_os("AGENT_SIDECAR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".tools/venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: the receivers need the test venv (cargo xtask setup)",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/python")
        .join(name)
}

/// A port nobody listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Python receiver; killed when dropped.
struct Receiver {
    child: Child,
    out: PathBuf,
}

impl Receiver {
    fn start(script_name: &str, port: u16, out: &Path, extra: &[&str]) -> Receiver {
        let mut child = Command::new(python())
            .arg(script(script_name))
            .arg(format!("127.0.0.1:{port}"))
            .arg(out)
            .args(extra)
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
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record id and line of the log, by id.
fn stored(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    query(dir, &QueryFilter::default(), |r, line| {
        out.insert(r.id.clone(), String::from_utf8(line.to_vec()).unwrap());
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn quick(mut d: DestinationConfig, batch: usize) -> DestinationConfig {
    d.batch_size = batch;
    d.flush_interval = Duration::from_millis(100);
    d.timeout = Duration::from_secs(5);
    d.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(800),
        max_retry_after: Duration::from_secs(5),
    };
    d
}

fn ship_config(dir: &Path, destinations: Vec<DestinationConfig>) -> ShipConfig {
    let mut c = ShipConfig::new(dir);
    c.destinations = destinations;
    c.poll_interval = Duration::from_millis(20);
    c.instance = Some("pod-test".into());
    c
}

/// Log entries with status 200 and their uids.
fn delivered_uids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["path"] == "/v1/logs" && e["status"] == 200)
        .flat_map(|e| e["logs"].as_array().unwrap().iter())
        .map(|l| l["uid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_down_then_busy_then_back_receives_every_record_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    for i in 0..200 {
        log.append(entry(i)).unwrap();
    }
    log.sync().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let metrics = ShipMetrics::default();
    let destinations = || {
        vec![
            quick(DestinationConfig::otlp_logs(&base), 50),
            quick(DestinationConfig::otlp_traces(&base), 50),
        ]
    };
    let shipper = Shipper::new(
        ship_config(dir.path(), destinations()),
        ShipSource::Log(log.clone()),
        metrics.clone(),
    )
    .unwrap()
    .spawn();

    // The collector is down: connections are refused, nothing is lost.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(metrics.requests_count("otlp-logs", "retried") >= 2);
    assert_eq!(metrics.records_count("otlp-logs", "shipped"), 0);
    assert_eq!(metrics.queue_depth("otlp-logs"), 200);

    // It comes back busy: three 503s with Retry-After: 1, then 200s.
    let out = dir.path().join("collector.jsonl");
    let collector = Receiver::start("otlp_receiver.py", port, &out, &["503x3"]);
    let want = stored(dir.path());
    wait_until(
        "every record at the collector",
        Duration::from_secs(60),
        || delivered_uids(&collector.entries()).len() >= 200,
    );
    let entries = collector.entries();
    assert_eq!(entries.iter().filter(|e| e["status"] == 503).count(), 3);
    let got = delivered_uids(&entries);
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(unique, want.keys().cloned().collect::<BTreeSet<_>>());
    assert_eq!(got.len(), 200, "no record delivered twice");
    // The body is the stored line, byte for byte.
    for e in entries
        .iter()
        .filter(|e| e["status"] == 200 && e["path"] == "/v1/logs")
    {
        assert_eq!(e["content_type"], "application/x-protobuf");
        assert_eq!(e["service"][0], "agent-sidecar");
        for l in e["logs"].as_array().unwrap() {
            assert_eq!(
                l["body"].as_str().unwrap(),
                want[l["uid"].as_str().unwrap()]
            );
            assert_eq!(l["trace_id"].as_str().unwrap().len(), 32);
        }
    }
    // The tool calls are execute_tool spans in the agent's traces.
    wait_until(
        "every span at the collector",
        Duration::from_secs(30),
        || {
            collector
                .entries()
                .iter()
                .filter(|e| e["path"] == "/v1/traces" && e["status"] == 200)
                .map(|e| e["spans"].as_array().unwrap().len())
                .sum::<usize>()
                >= 200
        },
    );
    let spans: Vec<Value> = collector
        .entries()
        .iter()
        .filter(|e| e["path"] == "/v1/traces" && e["status"] == 200)
        .flat_map(|e| e["spans"].as_array().unwrap().clone())
        .collect();
    assert_eq!(spans.len(), 200);
    let span_ids: BTreeSet<_> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(span_ids.len(), 200);
    for s in &spans {
        assert_eq!(s["name"], "execute_tool update_customer");
        assert_eq!(s["kind"], 1, "INTERNAL");
        assert_eq!(s["attributes"]["gen_ai.operation.name"], "execute_tool");
        assert_eq!(s["attributes"]["gen_ai.tool.name"], "update_customer");
        assert_eq!(s["attributes"]["gen_ai.tool.call.id"], s["span_id"]);
        assert!(
            want.contains_key(
                s["attributes"]["agent_sidecar.audit.record_id"]
                    .as_str()
                    .unwrap()
            )
        );
    }
    wait_until("an empty queue", Duration::from_secs(10), || {
        metrics.queue_depth("otlp-logs") == 0 && metrics.queue_depth("otlp-traces") == 0
    });
    assert_eq!(metrics.records_count("otlp-logs", "shipped"), 200);

    // Restart: the new shipper resumes at the cursor.
    shipper.shutdown(Duration::from_secs(5)).await;
    for i in 200..250 {
        log.append(entry(i)).unwrap();
    }
    log.sync().unwrap();
    let metrics2 = ShipMetrics::default();
    let shipper = Shipper::new(
        ship_config(dir.path(), destinations()),
        ShipSource::Log(log.clone()),
        metrics2.clone(),
    )
    .unwrap()
    .spawn();
    wait_until(
        "the records written after the restart",
        Duration::from_secs(30),
        || delivered_uids(&collector.entries()).len() >= 250,
    );
    wait_until("an empty queue", Duration::from_secs(10), || {
        metrics2.queue_depth("otlp-logs") == 0
    });
    let got = delivered_uids(&collector.entries());
    let want = stored(dir.path());
    assert_eq!(got.len(), 250, "the restart sent nothing twice");
    assert_eq!(
        got.iter().cloned().collect::<BTreeSet<_>>(),
        want.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(metrics2.records_count("otlp-logs", "shipped"), 50);
    shipper.shutdown(Duration::from_secs(5)).await;
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_a_413_and_a_partial_success_are_not_retried_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    for i in 0..40 {
        log.append(entry(i)).unwrap();
    }
    log.sync().unwrap();
    let port = free_port();
    let out = dir.path().join("collector.jsonl");
    let collector = Receiver::start("otlp_receiver.py", port, &out, &["400x1,413x1,partial2x1"]);
    let metrics = ShipMetrics::default();
    let shipper = Shipper::new(
        ship_config(
            dir.path(),
            vec![quick(
                DestinationConfig::otlp_logs(&format!("http://127.0.0.1:{port}")),
                10,
            )],
        ),
        ShipSource::Log(log.clone()),
        metrics.clone(),
    )
    .unwrap()
    .spawn();
    wait_until("an empty queue", Duration::from_secs(30), || {
        metrics.queue_depth("otlp-logs") == 0 && metrics.records_count("otlp-logs", "shipped") > 0
    });
    // Let a wrong retry show up, if there were one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let entries = collector.entries();
    assert_eq!(
        entries.len(),
        4,
        "one request per batch, none retried: {entries:#?}"
    );
    assert_eq!(entries[0]["status"], 400);
    assert_eq!(entries[1]["status"], 413);
    assert_eq!(entries[2]["status"], 200);
    let rejected_batch: BTreeSet<_> = entries[..2]
        .iter()
        .flat_map(|e| e["logs"].as_array().unwrap())
        .map(|l| l["uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rejected_batch.len(), 20);
    assert!(
        delivered_uids(&entries)
            .iter()
            .all(|u| !rejected_batch.contains(u))
    );
    assert_eq!(metrics.records_count("otlp-logs", "rejected"), 22);
    assert_eq!(metrics.records_count("otlp-logs", "shipped"), 18);
    assert_eq!(metrics.requests_count("otlp-logs", "rejected"), 2);
    assert_eq!(metrics.requests_count("otlp-logs", "retried"), 0);
    shipper.shutdown(Duration::from_secs(5)).await;
    // The rejected records are still in the log.
    assert_eq!(stored(dir.path()).len(), 40);
    log.close().unwrap();
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_batches_verify_with_the_standard_webhooks_library_and_a_tampered_body_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    for i in 0..45 {
        log.append(entry(i)).unwrap();
    }
    log.sync().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    write_private(&secret_file, &format!("{SECRET}\n"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/audit");
    let out = dir.path().join("webhook.jsonl");
    let receiver = Receiver::start(
        "signed_webhook_receiver.py",
        port,
        &out,
        &[secret_file.to_str().unwrap()],
    );
    let metrics = ShipMetrics::default();
    let secret = WebhookSecret::from_file(&secret_file).unwrap();
    let shipper = Shipper::new(
        ship_config(
            dir.path(),
            vec![quick(DestinationConfig::webhook(&url, secret.clone()), 20)],
        ),
        ShipSource::Files,
        metrics.clone(),
    )
    .unwrap()
    .spawn();
    wait_until(
        "every record at the webhook",
        Duration::from_secs(30),
        || metrics.records_count("webhook", "shipped") == 45,
    );
    let entries = receiver.entries();
    assert_eq!(entries.len(), 3, "{entries:#?}");
    assert!(
        entries.iter().all(|e| e["verified"] == true),
        "{entries:#?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["content_type"] == "application/x-ndjson")
    );
    let ids: BTreeSet<String> = entries
        .iter()
        .flat_map(|e| e["ids"].as_array().unwrap().iter())
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, stored(dir.path()).keys().cloned().collect());
    shipper.shutdown(Duration::from_secs(5)).await;

    // The same signature over a changed body is refused by the receiver;
    // the untouched body passes (so the check can tell them apart).
    let body = b"{\"id\":\"a\",\"amount\":10}\n".to_vec();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sig = webhook::signature(
        &base64_decode(SECRET.trim_start_matches("whsec_")),
        "msg_tamper",
        ts,
        &body,
    );
    let post = |body: &[u8]| {
        let o = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(["-H", "webhook-id: msg_tamper"])
            .args(["-H", &format!("webhook-timestamp: {ts}")])
            .args(["-H", &format!("webhook-signature: {sig}")])
            .args(["-H", "Content-Type: application/x-ndjson"])
            .arg("--data-binary")
            .arg(String::from_utf8(body.to_vec()).unwrap())
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(post(&body), "204");
    let tampered = String::from_utf8(body.clone()).unwrap().replace("10", "99");
    assert_eq!(post(tampered.as_bytes()), "401");
    let last = receiver.entries().pop().unwrap();
    assert_eq!(last["verified"], false);
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("No matching signature"),
        "{last}"
    );
    log.close().unwrap();
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A CA and a certificate for 127.0.0.1 signed by it: (client config
/// trusting the CA, chain PEM file, key PEM file).
fn tls_files(dir: &Path) -> (std::sync::Arc<rustls::ClientConfig>, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "audit shipping test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let chain = dir.join("chain.pem");
    let key = dir.join("key.pem");
    std::fs::write(&chain, leaf.pem() + &ca_cert.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    (std::sync::Arc::new(config), chain, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_is_verified_and_an_untrusted_certificate_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    for i in 0..10 {
        log.append(entry(i)).unwrap();
    }
    log.sync().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    write_private(&secret_file, SECRET);
    let (trusting, chain, key) = tls_files(dir.path());
    // Another CA: the collector's certificate does not verify with it.
    let other = tempfile::tempdir().unwrap();
    let (untrusting, _, _) = tls_files(other.path());
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}/audit");
    let out = dir.path().join("webhook.jsonl");
    let receiver = Receiver::start(
        "signed_webhook_receiver.py",
        port,
        &out,
        &[
            secret_file.to_str().unwrap(),
            chain.to_str().unwrap(),
            key.to_str().unwrap(),
        ],
    );
    let secret = WebhookSecret::from_file(&secret_file).unwrap();
    let run = |tls: std::sync::Arc<rustls::ClientConfig>, metrics: ShipMetrics| {
        let mut c = ship_config(
            dir.path(),
            vec![quick(DestinationConfig::webhook(&url, secret.clone()), 20)],
        );
        c.tls = Some(tls);
        Shipper::new(c, ShipSource::Log(log.clone()), metrics)
            .unwrap()
            .spawn()
    };
    // Not trusted: nothing is sent, nothing is lost.
    let metrics = ShipMetrics::default();
    let shipper = run(untrusting, metrics.clone());
    wait_until("failed TLS attempts", Duration::from_secs(10), || {
        metrics.requests_count("webhook", "retried") >= 2
    });
    shipper.shutdown(Duration::from_secs(2)).await;
    assert_eq!(metrics.records_count("webhook", "shipped"), 0);
    assert!(receiver.entries().is_empty());
    // Trusted: every record arrives, signed.
    let metrics = ShipMetrics::default();
    let shipper = run(trusting, metrics.clone());
    wait_until(
        "every record at the webhook",
        Duration::from_secs(30),
        || metrics.records_count("webhook", "shipped") == 10,
    );
    shipper.shutdown(Duration::from_secs(2)).await;
    let entries = receiver.entries();
    assert!(
        entries.iter().all(|e| e["verified"] == true),
        "{entries:#?}"
    );
    let ids: BTreeSet<String> = entries
        .iter()
        .flat_map(|e| e["ids"].as_array().unwrap().iter())
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, stored(dir.path()).keys().cloned().collect());
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ships_the_records_stored_until_then_in_as_many_batches_as_they_take() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    log.append(entry(0)).unwrap();
    log.sync().unwrap();
    let port = free_port();
    let out = dir.path().join("collector.jsonl");
    let collector = Receiver::start("otlp_receiver.py", port, &out, &[]);
    let metrics = ShipMetrics::default();
    let mut c = ship_config(
        dir.path(),
        vec![quick(
            DestinationConfig::otlp_logs(&format!("http://127.0.0.1:{port}")),
            40,
        )],
    );
    // Idle for long: only the shutdown wakes the destination.
    c.poll_interval = Duration::from_secs(60);
    let shipper = Shipper::new(c, ShipSource::Log(log.clone()), metrics.clone())
        .unwrap()
        .spawn();
    wait_until("the first record", Duration::from_secs(10), || {
        metrics.records_count("otlp-logs", "shipped") == 1
    });
    // The last records, as a closing log writes them.
    for i in 1..150 {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
    let started = Instant::now();
    let cut = shipper.shutdown(Duration::from_secs(10)).await;
    assert_eq!(cut, 0, "every destination finished");
    assert!(started.elapsed() < Duration::from_secs(5));
    let got = delivered_uids(&collector.entries());
    assert_eq!(got.len(), 150, "four batches at shutdown, none twice");
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        stored(dir.path()).keys().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(metrics.queue_depth("otlp-logs"), 0);
}
