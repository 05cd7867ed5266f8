//! Audit shipping under a real `agent-sidecar run`: the agent's tool calls
//! (curl through the gateway to a TLS tool API) become audit records that
//! reach an OTLP/HTTP collector (built on PyPI `opentelemetry-proto`) that
//! is down while the calls are made, then busy, then back, and an HTTPS
//! webhook receiver that verifies every Standard Webhooks signature with
//! the official library. Every stored record arrives, by record id; the
//! queue depth and lag are scraped from the sidecar's metrics while the
//! collector is down; the agent cannot reach the collector itself; a
//! second run over the same log resumes at the cursors and sends nothing
//! twice.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar::audit::{AuditRecord, Phase, RecordKind, query};
use agent_sidecar_test_support::{
    ca::TestCa,
    dns::{Authority, Zone},
    mcp::{python_script, test_python},
    web::WebServer,
};
use agent_sidecar_tests::{NetNs, command_in, privileged, sidecar_bin, unique};
use serde_json::Value;

const DNS: &str = "198.51.100.1";
const BILLING: &str = "198.51.100.6";
const COLLECTOR: &str = "198.51.100.30:4318";
const HOOK: &str = "198.51.100.31:8443";
const METRICS: &str = "127.0.0.1:9911";
const BILLING_SECRET: &str = "billing-secret-token-9876543210";
const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The trace the agent's own tracing started (W3C trace context).
const AGENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const AGENT_SPAN: &str = "00f067aa0ba902b7";

fn policy(dir: &Path, agent: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("base.yaml"),
        r#"kind: base
name: ship-e2e
label: audit-shipping-e2e
defaults: { unknown: 3, missing_attribute: 3, action: 1 }
tools:
  - name: billing
    http: { host: billing.tools.test }
    credential: { secret: billing-token }
    actions:
      - name: list_invoices
        method: GET
        path: /v1/invoices
      - name: account_secrets
        method: GET
        path: /v1/secrets
rules:
  - id: never-read-secrets
    when: { tool: billing, action: account_secrets }
    tier: deny
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("agent.yaml"),
        format!("kind: agent\nid: {agent}\nowner: ops-lead@example.test\npurpose: pays invoices\n"),
    )
    .unwrap();
}

fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A Python receiver of `tests/python/` in the namespace, started with the
/// venv's interpreter; killed when dropped.
struct Receiver {
    child: Child,
    out: PathBuf,
}

impl Receiver {
    fn start(ns: &NetNs, script: &str, addr: &str, out: &Path, extra: &[&str]) -> Receiver {
        let mut args = vec![
            python_script(script).to_str().unwrap().to_string(),
            addr.to_string(),
            out.to_str().unwrap().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = command_in(ns, None, &test_python(), &args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "{script} did not start");
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

struct World {
    ns: NetNs,
    agent: String,
    _ca: TestCa,
    _dns: Authority,
    billing: WebServer,
    hook: Receiver,
    dir: PathBuf,
    state: PathBuf,
    audit_dir: PathBuf,
    upstream_ca: PathBuf,
}

impl World {
    fn new() -> World {
        let ns = NetNs::new();
        for a in [DNS, BILLING, "198.51.100.30", "198.51.100.31"] {
            ns.add_address(&format!("{a}/32"));
        }
        let ca = TestCa::new();
        let (bcert, bkey) = ca.issue("billing", &["billing.tools.test"]);
        let billing =
            WebServer::https(&ns, &format!("{BILLING}:443"), "billing-api", &bcert, &bkey);
        let dns = Authority::start_in(
            &ns,
            &format!("{DNS}:53"),
            Zone::from_addrs(&[("billing.tools.test", BILLING)], 60),
        );
        let dir = std::env::temp_dir().join(unique("audit-ship-e2e"));
        std::fs::create_dir_all(&dir).unwrap();
        let agent = unique("payer");
        policy(&dir.join("policy"), &agent);
        private_file(&dir.join("billing-token"), BILLING_SECRET);
        private_file(&dir.join("hook.secret"), &format!("{HOOK_SECRET}\n"));
        // The webhook receiver serves HTTPS with a certificate of the
        // test CA, which the sidecar trusts through --upstream-ca.
        let (hcert, hkey) = ca.issue("hook", &["198.51.100.31"]);
        let hook = Receiver::start(
            &ns,
            "signed_webhook_receiver.py",
            HOOK,
            &dir.join("hook.jsonl"),
            &[
                dir.join("hook.secret").to_str().unwrap(),
                hcert.to_str().unwrap(),
                hkey.to_str().unwrap(),
            ],
        );
        World {
            upstream_ca: ca.ca_file(),
            ns,
            agent,
            _ca: ca,
            _dns: dns,
            billing,
            hook,
            state: dir.join("state"),
            audit_dir: dir.join("audit"),
            dir,
        }
    }

    /// `agent-sidecar run` of `script` (bash) as the agent, shipping its
    /// audit records to the collector and the webhook; stdout and stderr
    /// go to files named by `tag`.
    fn spawn(&self, tag: &str, script: &str) -> Child {
        let args: Vec<String> = [
            "run",
            "--agent-id",
            &self.agent,
            "--state-dir",
            self.state.to_str().unwrap(),
            "--upstream-dns",
            &format!("{DNS}:53"),
            "--policy-dir",
            self.dir.join("policy").to_str().unwrap(),
            "--secret",
            &format!(
                "billing-token=file:{}",
                self.dir.join("billing-token").display()
            ),
            "--upstream-ca",
            self.upstream_ca.to_str().unwrap(),
            "--metrics-listen",
            METRICS,
            "--audit-dir",
            self.audit_dir.to_str().unwrap(),
            "--audit-otlp-endpoint",
            &format!("http://{COLLECTOR}"),
            "--audit-otlp-flush-interval",
            "200ms",
            "--audit-webhook",
            &format!("https://{HOOK}/audit"),
            "--audit-webhook-secret-file",
            self.dir.join("hook.secret").to_str().unwrap(),
            "--audit-webhook-flush-interval",
            "200ms",
            "--",
            "/bin/bash",
            "-c",
            script,
        ]
        .map(String::from)
        .to_vec();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        command_in(&self.ns, None, &sidecar_bin(), &args)
            .stdout(std::fs::File::create(self.dir.join(format!("{tag}.out"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("{tag}.err"))).unwrap())
            .spawn()
            .expect("run agent-sidecar")
    }

    fn output(&self, tag: &str) -> (String, String) {
        (
            std::fs::read_to_string(self.dir.join(format!("{tag}.out"))).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join(format!("{tag}.err"))).unwrap_or_default(),
        )
    }

    /// The sidecar's metrics, or an empty text while it does not answer.
    fn metrics(&self) -> String {
        let out = command_in(
            &self.ns,
            None,
            Path::new("/usr/bin/curl"),
            &[
                "-sS",
                "--max-time",
                "5",
                &format!("http://{METRICS}/metrics"),
            ],
        )
        .output()
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every stored record and its line, in order.
    fn stored(&self) -> Vec<(AuditRecord, String)> {
        let mut out = Vec::new();
        query::query(
            &self.audit_dir,
            &query::QueryFilter::default(),
            |r, line| {
                out.push((r.clone(), String::from_utf8(line.to_vec()).unwrap()));
                std::ops::ControlFlow::Continue(())
            },
        )
        .expect("query the audit log");
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of the sample `name{labels}` in a Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    // `name{a="x",b="y"}`: the sample of that name whose labels include
    // these (every series also carries `agent_id`).
    let split = |s: &str| -> (String, Vec<String>) {
        match s.split_once('{') {
            Some((name, labels)) => (
                name.to_string(),
                labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            None => (s.to_string(), Vec::new()),
        }
    };
    let (name, wanted) = split(series);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            let (n, labels) = split(s);
            (n == name && wanted.iter().all(|w| labels.contains(w))).then_some(v)
        })
        .and_then(|v| v.trim().parse().ok())
}

/// Waits for `done`; on a timeout, fails with `w`'s metrics and the
/// sidecar's log of run `tag`.
fn wait_until(w: &World, tag: &str, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            let metrics: Vec<String> = w
                .metrics()
                .lines()
                .filter(|l| l.starts_with("agent_sidecar_audit"))
                .map(str::to_string)
                .collect();
            let (stdout, stderr) = w.output(tag);
            panic!(
                "timed out waiting for {what}\n{}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                metrics.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("agent-sidecar run did not exit");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log records the collector acknowledged (answered 200), in order:
/// their `log.record.uid` and body.
fn delivered_logs(collector: &Receiver) -> Vec<(String, String)> {
    collector
        .entries()
        .iter()
        .filter(|e| e["path"] == "/v1/logs" && e["status"] == 200)
        .flat_map(|e| e["logs"].as_array().unwrap().clone())
        .map(|l| {
            (
                l["uid"].as_str().unwrap().to_string(),
                l["body"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn delivered_spans(collector: &Receiver) -> Vec<Value> {
    collector
        .entries()
        .iter()
        .filter(|e| e["path"] == "/v1/traces" && e["status"] == 200)
        .flat_map(|e| e["spans"].as_array().unwrap().clone())
        .collect()
}

/// The record ids the webhook receiver verified.
fn hooked_ids(hook: &Receiver) -> Vec<String> {
    let entries = hook.entries();
    assert!(
        entries.iter().all(|e| e["verified"] == true),
        "every webhook request verifies: {entries:#?}"
    );
    entries
        .iter()
        .flat_map(|e| e["ids"].as_array().unwrap().clone())
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// A bash line that connects to `addr` and prints `connected` or the errno.
fn probe(addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    format!(
        "/usr/bin/python3 -c 'import socket\ns=socket.socket()\ns.settimeout(3)\ntry:\n  s.connect((\"{host}\",{port})); print(\"connected\")\nexcept OSError as e:\n  print(\"errno\", e.errno)'"
    )
}

#[test]
fn a_collector_down_during_the_calls_receives_every_record_when_it_returns_and_a_second_run_resumes()
 {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let marker = w.dir.join("collector-caught-up");
    let url = "https://billing.tools.test/v1/invoices";
    let script = format!(
        "for i in 1 2 3 4; do curl -sS --max-time 10 {url}; echo; done\n\
         curl -sS --max-time 10 -H 'traceparent: 00-{AGENT_TRACE}-{AGENT_SPAN}-01' {url}; echo\n\
         curl -sS -o /dev/null -w 'secrets %{{http_code}}\\n' --max-time 10 https://billing.tools.test/v1/secrets\n\
         {}\n{}\n\
         for i in $(seq 900); do [ -e '{}' ] && break; sleep 0.1; done",
        probe(COLLECTOR),
        probe(HOOK),
        marker.display()
    );
    let mut run = w.spawn("first", &script);

    // The calls are made while the collector is down.
    wait_until(
        &w,
        "first",
        "the tool calls",
        Duration::from_secs(60),
        || w.billing.requests().len() >= 5,
    );
    // The queue grows and the refused connections are retried; the
    // webhook, which is up, keeps up.
    let mut text = String::new();
    wait_until(
        &w,
        "first",
        "a queue and retries in the metrics",
        Duration::from_secs(30),
        || {
            text = w.metrics();
            sample(
                &text,
                r#"agent_sidecar_audit_ship_requests_total{destination="otlp-logs",outcome="retried"}"#,
            )
            .is_some_and(|n| n >= 3.0)
                && sample(
                    &text,
                    r#"agent_sidecar_audit_ship_queue_depth{destination="otlp-logs"}"#,
                )
                .is_some_and(|n| n >= 12.0)
                && sample(
                    &text,
                    r#"agent_sidecar_audit_ship_lag_seconds{destination="otlp-logs"}"#,
                )
                .is_some_and(|n| n >= 2.0)
        },
    );
    assert_eq!(
        sample(
            &text,
            r#"agent_sidecar_audit_ship_records_total{destination="otlp-logs",result="shipped"}"#
        )
        .unwrap_or(0.0),
        0.0,
        "{text}"
    );
    wait_until(
        &w,
        "first",
        "the webhook's queue empty",
        Duration::from_secs(30),
        || {
            sample(
                &w.metrics(),
                r#"agent_sidecar_audit_ship_queue_depth{destination="webhook"}"#,
            ) == Some(0.0)
        },
    );

    // The collector comes back busy (two 503s with Retry-After: 1), then
    // takes everything.
    let collector = Receiver::start(
        &w.ns,
        "otlp_receiver.py",
        COLLECTOR,
        &w.dir.join("collector.jsonl"),
        &["503x2"],
    );
    wait_until(
        &w,
        "first",
        "the collector caught up",
        Duration::from_secs(60),
        || {
            let m = w.metrics();
            sample(
                &m,
                r#"agent_sidecar_audit_ship_queue_depth{destination="otlp-logs"}"#,
            ) == Some(0.0)
                && sample(
                    &m,
                    r#"agent_sidecar_audit_ship_queue_depth{destination="otlp-traces"}"#,
                ) == Some(0.0)
        },
    );
    std::fs::write(&marker, "").unwrap();
    let status = wait_exit(&mut run, Duration::from_secs(60));
    let (stdout, stderr) = w.output("first");
    assert!(status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| *l == "billing-api").count(),
        5,
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("secrets 403"), "{stdout}");
    // The agent cannot reach the collectors to add or replay records.
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("errno 1")).count(),
        2,
        "{stdout}"
    );
    assert!(!stdout.contains("connected"), "{stdout}");

    let stored = w.stored();
    let by_id: BTreeMap<&str, &str> = stored
        .iter()
        .map(|(r, l)| (r.id.as_str(), l.as_str()))
        .collect();
    assert_eq!(stored.first().unwrap().0.kind, RecordKind::SidecarStarted);
    assert_eq!(stored.last().unwrap().0.kind, RecordKind::SidecarStopped);
    let calls: Vec<&AuditRecord> = stored
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.kind == RecordKind::ToolCall && r.phase == Phase::Outcome)
        .collect();
    assert_eq!(calls.len(), 6, "five list_invoices and one refused");

    // OTLP logs: every stored record, by id, its body the stored line;
    // the 503s were retried, nothing was sent twice.
    let entries = collector.entries();
    assert_eq!(
        entries.iter().filter(|e| e["status"] == 503).count(),
        2,
        "{entries:#?}"
    );
    let logs = delivered_logs(&collector);
    let ids: BTreeSet<&str> = logs.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, by_id.keys().copied().collect::<BTreeSet<_>>());
    assert_eq!(logs.len(), stored.len(), "no record delivered twice");
    for (id, body) in &logs {
        assert_eq!(body, by_id[id.as_str()], "the body is the stored line");
    }
    // OTLP traces: one execute_tool span per finished call, in the trace
    // the gateway propagated.
    let spans = delivered_spans(&collector);
    assert_eq!(spans.len(), calls.len(), "{spans:#?}");
    for call in &calls {
        let trace = call.trace.as_ref().expect("a traced call");
        let span = spans
            .iter()
            .find(|s| s["attributes"]["agent_sidecar.audit.record_id"] == call.id.as_str())
            .unwrap_or_else(|| panic!("no span for {}", call.id));
        assert_eq!(span["trace_id"], trace.trace_id.as_str());
        assert_eq!(span["span_id"], trace.span_id.as_str());
        assert_eq!(span["attributes"]["gen_ai.operation.name"], "execute_tool");
    }
    // The call made inside the agent's trace is a span of that trace.
    let joined: Vec<&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == AGENT_TRACE)
        .collect();
    assert_eq!(joined.len(), 1, "{spans:#?}");
    assert_eq!(joined[0]["name"], "execute_tool billing.list_invoices");
    assert_ne!(joined[0]["span_id"], AGENT_SPAN, "the gateway's own span");
    assert_eq!(
        joined[0]["parent_span_id"], AGENT_SPAN,
        "the gateway's span is a child of the agent's"
    );
    // Spans of calls the agent made outside any trace are roots.
    for s in spans.iter().filter(|s| s["trace_id"] != AGENT_TRACE) {
        assert_eq!(s["parent_span_id"], "", "{s:#?}");
    }
    // The webhook: every record, every request verified.
    let hooked = hooked_ids(&w.hook);
    assert_eq!(
        hooked.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        by_id.keys().copied().collect::<BTreeSet<_>>()
    );
    assert_eq!(hooked.len(), stored.len(), "no record delivered twice");

    // A second run over the same log resumes at the cursors.
    let mut run = w.spawn("second", &format!("curl -sS --max-time 10 {url}"));
    let status = wait_exit(&mut run, Duration::from_secs(60));
    let (stdout, stderr) = w.output("second");
    assert!(status.success(), "{stdout}\n{stderr}");
    let stored = w.stored();
    let all: BTreeSet<String> = stored.iter().map(|(r, _)| r.id.clone()).collect();
    let logs = delivered_logs(&collector);
    assert_eq!(
        logs.iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        all
    );
    assert_eq!(
        logs.len(),
        stored.len(),
        "the second run sent nothing twice"
    );
    let hooked = hooked_ids(&w.hook);
    assert_eq!(hooked.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(
        hooked.len(),
        stored.len(),
        "the second run sent nothing twice"
    );
    eprintln!(
        "{} records over two runs at the collector and the webhook, once each; {} spans",
        stored.len(),
        delivered_spans(&collector).len()
    );
}
