//! The audit trail across a `kill -9` of `agent-sidecar run`: an agent
//! (curl, as its own uid in the governed cgroup) keeps calling a REST tool
//! at every tier through the gateway; the sidecar is killed mid-load, then
//! started again on the same state and audit directories. Every call the
//! tool server received has its record, `audit verify` passes (with the
//! operator's own verifier key and a witness file), no record is written
//! twice, and the approvals held at the crash are still there to decide:
//! an approved one is forwarded once when the agent retries, never an
//! approval that was forwarded before the crash.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Output, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar_test_support::{
    ca::TestCa,
    dns::{Authority, Zone},
    fixtures,
};
use agent_sidecar_tests::{NetNs, command_in, privileged, sidecar_bin, unique};
use serde_json::Value;

const DNS: &str = "198.51.100.1";
const TOOL: &str = "198.51.100.7";
const ADMIN: &str = "127.0.0.1:9901";
const SECRET: &str = "pay-secret-token-0123456789";
const TOKEN: &str = "approvals-admin-token-0123456789";
const BASE: &str = "https://pay.tools.test";
/// Tier-3 payments the agent asks for, each under its own idempotency key.
const PAYMENTS: usize = 6;

/// The tool server: HTTPS (Python's `http.server` and `ssl`), HTTP/1.1
/// keep-alive, one JSON line per request it received (method, path,
/// traceparent, idempotency key, the agent's call label, credential),
/// written before it answers.
const TOOL_SERVER: &str = r#"
import http.server, json, ssl, sys, threading
addr, port, log, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def serve(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = {"method": self.command, "path": self.path,
               "traceparent": self.headers.get("traceparent"),
               "idempotency_key": self.headers.get("Idempotency-Key"),
               "call": self.headers.get("X-Call"),
               "authorization": self.headers.get("Authorization"),
               "body": body.decode("utf-8", "replace")}
        with lock:
            with open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")
        out = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PATCH = do_DELETE = serve
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((addr, port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;

struct ToolServer {
    child: Child,
    _stdout: ChildStdout,
    log: PathBuf,
}

impl ToolServer {
    fn start(ns: &NetNs, ca: &TestCa, dir: &Path) -> Self {
        let (cert, key) = ca.issue("pay", &["pay.tools.test"]);
        let log = dir.join("tool-requests.jsonl");
        std::fs::write(&log, "").unwrap();
        let mut child = command_in(
            ns,
            None,
            Path::new("/usr/bin/python3"),
            &[
                "-c",
                TOOL_SERVER,
                TOOL,
                "443",
                log.to_str().unwrap(),
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("tool server");
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = String::new();
        BufReader::new(&mut stdout).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
        ToolServer {
            child,
            _stdout: stdout,
            log,
        }
    }

    /// Every request received so far.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("tool log line"))
            .collect()
    }

    fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| {
                r["method"] == method
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(path_prefix))
            })
            .count()
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One agent's state: its policy, secrets, state directory (kept across
/// the two runs) and the operator's audit signing key.
struct Deployment {
    ns: NetNs,
    agent: String,
    dir: PathBuf,
    state: PathBuf,
    upstream_ca: PathBuf,
    key: PathBuf,
    vkey: PathBuf,
    witness: PathBuf,
}

fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Deployment {
    fn new(ns: NetNs, ca: &TestCa) -> Self {
        let dir = std::env::temp_dir().join(unique("audit-crash"));
        std::fs::create_dir_all(&dir).unwrap();
        let agent = unique("payer");
        fixtures::write_set("pay-e2e", &dir.join("policy"), &[("AGENT", &agent)]);
        private_file(&dir.join("pay-token"), SECRET);
        private_file(&dir.join("admin-token"), TOKEN);
        // The operator's signing key, made with the CLI; its verifier key
        // stays with the test (the auditor), the witness file outside the
        // log directory.
        let prefix = dir.join("operator");
        let out = Command::new(sidecar_bin())
            .args([
                "audit",
                "keygen",
                "--name",
                &format!("agent-sidecar/audit/{agent}"),
                "--out",
                prefix.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        Deployment {
            ns,
            state: dir.join("state"),
            upstream_ca: ca.ca_file(),
            key: prefix.with_extension("key"),
            vkey: prefix.with_extension("vkey"),
            witness: dir.join("witness.checkpoints"),
            agent,
            dir,
        }
    }

    fn audit_dir(&self) -> PathBuf {
        self.state.join("audit").join(&self.agent)
    }

    /// `agent-sidecar run` of the bash `script` as the agent; its stdout
    /// and stderr go to `<name>.out` and `<name>.err` in the test's
    /// directory (a pipe nobody reads would stall the sidecar's logging).
    fn command(&self, name: &str, script: &str) -> Command {
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
            &format!("pay-token=file:{}", self.dir.join("pay-token").display()),
            "--upstream-ca",
            self.upstream_ca.to_str().unwrap(),
            "--admin-listen",
            ADMIN,
            "--admin-token-file",
            self.dir.join("admin-token").to_str().unwrap(),
            "--audit-key",
            self.key.to_str().unwrap(),
            "--audit-witness-file",
            self.witness.to_str().unwrap(),
            "--",
            "/bin/bash",
            "-c",
            script,
        ]
        .map(String::from)
        .to_vec();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = command_in(&self.ns, None, &sidecar_bin(), &args);
        let file =
            |ext: &str| std::fs::File::create(self.dir.join(format!("{name}.{ext}"))).unwrap();
        cmd.stdout(file("out")).stderr(file("err"));
        cmd
    }

    /// What run `name` wrote to `ext` (`out`, `err`).
    fn output_of(&self, name: &str, ext: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.{ext}"))).unwrap_or_default()
    }

    fn approvals(&self, args: &[&str]) -> Output {
        let url = format!("http://{ADMIN}");
        let token = self.dir.join("admin-token");
        let mut all = vec!["approvals"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &url, "--token-file", token.to_str().unwrap()]);
        command_in(&self.ns, None, &sidecar_bin(), &all)
            .output()
            .expect("approvals CLI")
    }

    /// The approvals in `state`, through the CLI (empty while the admin
    /// API does not answer).
    fn listed(&self, state: &str) -> Vec<Value> {
        let out = self.approvals(&["list", "--state", state, "--json"]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    fn decide(&self, verb: &str, id: &str, reason: &str) -> Output {
        self.approvals(&[
            verb,
            id,
            "--approver",
            "ap-lead@example.test",
            "--reason",
            reason,
        ])
    }

    /// Kills what the agent left running in its cgroup (the sidecar that
    /// would have done it is dead), as an orchestrator restarting the pod.
    fn kill_agent(&self) {
        let cgroup = agent_sidecar::kernel::preflight::cgroup2_mount()
            .unwrap()
            .join("agent-sidecar")
            .join(&self.agent);
        if cgroup.exists() {
            std::fs::write(cgroup.join("cgroup.kill"), "1").unwrap();
            wait_for(
                "the agent's processes to die",
                Duration::from_secs(10),
                || {
                    std::fs::read_to_string(cgroup.join("cgroup.procs"))
                        .map(|p| p.trim().is_empty())
                        .unwrap_or(true)
                },
            );
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = Command::new(sidecar_bin())
            .args([
                "teardown",
                "--agent-id",
                &self.agent,
                "--state-dir",
                self.state.to_str().unwrap(),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `agent-sidecar run`, killed if the test fails first.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    wait_or(what, limit, &mut cond, String::new);
}

/// Waits for `cond`; on timeout fails with `state()`.
fn wait_or(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            state()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The curl call of payment `i` (tier 3): the same bytes in both runs, so
/// that a retry matches its approval's binding.
fn payment(i: usize) -> String {
    format!(
        "curl -sS -o /dev/null -w 'pay-{i} %{{http_code}}\\n' --max-time 120 -X POST \
         -H 'Idempotency-Key: pay-{i}' -H 'Content-Type: application/json' \
         --data '{{\"amount\":5000,\"vendor\":\"v-{i}\"}}' {BASE}/v1/payments"
    )
}

/// Every record of the log, in order (the segment files' lines).
fn records(dir: &Path) -> Vec<Value> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|s| {
            std::fs::read_to_string(s)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("record"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `(trace id, span id)` of a W3C traceparent.
fn trace_of(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {traceparent}");
    (parts[1].to_string(), parts[2].to_string())
}

#[test]
fn kill_9_under_load_loses_no_record_of_a_forwarded_call_and_held_approvals_resume() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    for a in [DNS, TOOL] {
        ns.add_address(&format!("{a}/32"));
    }
    let ca = TestCa::new();
    let _dns = Authority::start_in(
        &ns,
        &format!("{DNS}:53"),
        Zone::from_addrs(&[("pay.tools.test", TOOL)], 60),
    );
    let d = Deployment::new(ns, &ca);
    let tool = ToolServer::start(&d.ns, &ca, &d.dir);

    // Run 1: loops at tiers 1, 2, 4 and deny, and six payments held for
    // approval, all at once.
    let call = "curl -sS -o /dev/null --max-time 30";
    let payments: Vec<String> = (1..=PAYMENTS)
        .map(|i| format!("{} &", payment(i)))
        .collect();
    let load = format!(
        "for l in 1 2 3; do ( i=0; while :; do i=$((i+1)); {call} -H \"X-Call: t1-$l-$i\" {BASE}/v1/invoices; done ) & done\n\
         ( i=0; while :; do i=$((i+1)); {call} -X PATCH -H \"X-Call: t2-$i\" -H 'Content-Type: application/json' --data '{{\"status\":\"preferred\"}}' {BASE}/v1/vendors/v-$i; done ) &\n\
         ( i=0; while :; do i=$((i+1)); {call} -X POST -H \"X-Call: t4-$i\" {BASE}/v1/exports; {call} -X DELETE -H \"X-Call: deny-$i\" {BASE}/v1/vendors/v-$i; done ) &\n\
         {}\n\
         wait\n",
        payments.join("\n")
    );
    let mut sidecar = Running(d.command("run1", &load).spawn().expect("run"));
    wait_or(
        "all payments held and the load going",
        Duration::from_secs(60),
        || {
            d.listed("pending").len() == PAYMENTS
                && tool.count("GET", "/v1/invoices") >= 60
                && tool.count("PATCH", "/v1/vendors/") >= 15
        },
        || {
            format!(
                "{} pending, {} GET, {} PATCH; run 1:\n{}",
                d.listed("pending").len(),
                tool.count("GET", "/v1/invoices"),
                tool.count("PATCH", "/v1/vendors/"),
                d.output_of("run1", "err")
            )
        },
    );
    // Two payments approved and forwarded before the crash; a third
    // approved just before it (forwarded or not: at most once).
    let pending = d.listed("pending");
    let key_of = |a: &Value| {
        a["idempotency_key"]
            .as_str()
            .and_then(|k| k.rsplit(':').next())
            .unwrap()
            .to_string()
    };
    let mut before: Vec<(String, String)> = pending
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_string(), key_of(a)))
        .collect();
    before.sort_by(|a, b| a.1.cmp(&b.1));
    for (id, _) in &before[..2] {
        let out = d.decide("approve", id, "invoice checked");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    wait_for(
        "the approved payments forwarded",
        Duration::from_secs(30),
        || tool.count("POST", "/v1/payments") == 2,
    );
    let out = d.decide("approve", &before[2].0, "invoice checked");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // kill -9 in the middle of the load.
    let upstream_before = tool.received().len();
    sidecar.0.kill().unwrap();
    let _ = sidecar.0.wait();
    let stderr1 = d.output_of("run1", "err");
    d.kill_agent();
    let received_run1 = tool.received();
    assert!(
        received_run1.len() >= upstream_before,
        "the tool server lost requests"
    );

    // Run 2 on the same directories: the held approvals are still there
    // and decidable; the agent retries every payment after they are.
    let go = std::env::temp_dir().join(unique("go"));
    let retry: Vec<String> = (1..=PAYMENTS).map(payment).collect();
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.1; done\n{}\n",
        retry.join("\n"),
        go = go.display()
    );
    let mut second = Running(d.command("run2", &script).spawn().expect("run 2"));
    let still_pending = {
        let mut p = Vec::new();
        wait_for(
            "the admin API after the restart",
            Duration::from_secs(30),
            || {
                p = d.listed("pending");
                !p.is_empty()
            },
        );
        p
    };
    let mut resumed: Vec<(String, String)> = still_pending
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_string(), key_of(a)))
        .collect();
    resumed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        resumed,
        before[3..].to_vec(),
        "the approvals pending at the crash are pending after the restart"
    );
    // Decided after the restart: two approved, one denied.
    let run2 = || d.output_of("run2", "err");
    for (id, _) in &resumed[..2] {
        let out = d.decide("approve", id, "approved after the restart");
        assert!(
            out.status.success(),
            "{}\nrun 2:\n{}",
            text(&out.stderr),
            run2()
        );
    }
    let out = d.decide("deny", &resumed[2].0, "vendor unknown");
    assert!(
        out.status.success(),
        "{}\nrun 2:\n{}",
        text(&out.stderr),
        run2()
    );
    std::fs::write(&go, "").unwrap();
    let status = second.0.wait().unwrap();
    let _ = std::fs::remove_file(&go);
    let (stdout2, stderr2) = (d.output_of("run2", "out"), d.output_of("run2", "err"));
    assert_eq!(status.code(), Some(0), "{stdout2}\n{stderr2}");
    let answers: HashMap<&str, &str> = stdout2.lines().filter_map(|l| l.split_once(' ')).collect();

    // The tool server: every payment at most once; those approved before
    // the crash and forwarded are not forwarded again; those approved
    // after it are forwarded now; the denied one never.
    let received = tool.received();
    let mut paid: BTreeMap<String, usize> = BTreeMap::new();
    for r in &received {
        assert_eq!(
            r["authorization"],
            format!("Bearer {SECRET}"),
            "the tool sees the sidecar's credential: {r}"
        );
        if r["path"] == "/v1/payments" {
            *paid
                .entry(r["idempotency_key"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert!(paid.values().all(|n| *n == 1), "a payment twice: {paid:?}");
    for (_, key) in &before[..2] {
        assert_eq!(paid.get(key), Some(&1), "{key}: {paid:?}");
        assert_ne!(
            answers.get(key.as_str()),
            Some(&"200"),
            "{key} forwarded again: {stdout2}"
        );
    }
    for (_, key) in &resumed[..2] {
        assert_eq!(paid.get(key), Some(&1), "{key} resumed: {paid:?}");
        assert_eq!(
            answers.get(key.as_str()),
            Some(&"200"),
            "{stdout2}\n{stderr2}"
        );
    }
    let denied = &resumed[2].1;
    assert_eq!(paid.get(denied), None, "{paid:?}");
    assert_eq!(answers.get(denied.as_str()), Some(&"403"), "{stdout2}");

    // The log verifies with the operator's key and the witness copies.
    let audit = d.audit_dir();
    let out = Command::new(sidecar_bin())
        .args([
            "audit",
            "verify",
            audit.to_str().unwrap(),
            "--key",
            d.vkey.to_str().unwrap(),
            "--witness",
            d.witness.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit verify after the crash:\n{}{}\nrun 1:\n{stderr1}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Every call the tool received has its attempt record (same trace
    // and span as the traceparent it received); no record twice.
    let records = records(&audit);
    let ids: BTreeSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), records.len(), "a record id twice");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64, "sequence numbers run without gap");
    }
    let mut calls: HashMap<(String, String, String), usize> = HashMap::new();
    for r in records.iter().filter(|r| r["kind"] == "tool_call") {
        let key = (
            r["trace"]["trace_id"].as_str().unwrap().to_string(),
            r["trace"]["span_id"].as_str().unwrap().to_string(),
            r["phase"].as_str().unwrap().to_string(),
        );
        *calls.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "tool_call records written twice: {twice:?}"
    );
    let mut missing = Vec::new();
    for r in &received {
        let (trace, span) = trace_of(r["traceparent"].as_str().expect("traceparent"));
        if !calls.contains_key(&(trace, span, "attempt".to_string())) {
            missing.push(r.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} calls that reached the tool have no record: {missing:?}",
        missing.len(),
        received.len()
    );
    // Every tier is in the log, the halts and denials included.
    let tiers: BTreeSet<u64> = records
        .iter()
        .filter(|r| r["kind"] == "tool_call")
        .filter_map(|r| r["policy"]["tier"].as_u64())
        .collect();
    assert_eq!(tiers, BTreeSet::from([1, 2, 3, 4]), "tiers recorded");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "tool_call" && r["policy"]["deny"] == true),
        "denied calls recorded"
    );
    // Two starts, one stop (the killed run never stopped).
    let count = |kind: &str| records.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!(count("sidecar_started"), 2);
    assert_eq!(count("sidecar_stopped"), 1);
    // The decisions made after the restart are recorded with who and why.
    for (id, _) in &resumed {
        assert!(
            records.iter().any(|r| r["kind"] == "approval_decided"
                && r["oversight"]["approval_id"] == id.as_str()
                && r["oversight"]["approver"] == "ap-lead@example.test"),
            "no approval_decided record for {id}"
        );
    }
    eprintln!(
        "kill -9 test: {} calls reached the tool ({} before the kill), {} records, {} payments",
        received.len(),
        received_run1.len(),
        records.len(),
        paid.len()
    );
}
