//! A REST tool world for `agent-sidecar run` end to end (fixture
//! `pay-e2e`): a namespace with a DNS authority for `pay.tools.test`, a
//! recording HTTPS tool server, and a [`Deployment`]: the agent's policy,
//! secrets, admin token, audit signing key and witness file, and a state
//! directory kept across runs.

use std::{
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
use serde_json::Value;

use crate::{NetNs, command_in, sidecar_bin, unique};

pub const DNS: &str = "198.51.100.1";
pub const TOOL: &str = "198.51.100.7";
pub const ADMIN: &str = "127.0.0.1:9901";
pub const SECRET: &str = "pay-secret-token-0123456789";
pub const TOKEN: &str = "approvals-admin-token-0123456789";
pub const BASE: &str = "https://pay.tools.test";
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

pub struct ToolServer {
    child: Child,
    _stdout: ChildStdout,
    log: PathBuf,
}

impl ToolServer {
    /// Starts it on `TOOL:443` with a certificate of `ca`; its log in `dir`.
    pub fn start(ns: &NetNs, ca: &TestCa, dir: &Path) -> Self {
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
    pub fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("tool log line"))
            .collect()
    }

    /// Requests received with `method` and a path starting `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
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
pub struct Deployment {
    pub ns: NetNs,
    pub agent: String,
    pub dir: PathBuf,
    pub state: PathBuf,
    pub upstream_ca: PathBuf,
    pub key: PathBuf,
    pub vkey: PathBuf,
    pub witness: PathBuf,
}

fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Deployment {
    pub fn new(ns: NetNs, ca: &TestCa) -> Self {
        let dir = std::env::temp_dir().join(unique("pay-e2e"));
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

    /// The agent's audit log directory (`run`'s default).
    pub fn audit_dir(&self) -> PathBuf {
        self.state.join("audit").join(&self.agent)
    }

    /// `agent-sidecar run` of the bash `script` as the agent; its stdout
    /// and stderr go to `<name>.out` and `<name>.err` in the test's
    /// directory (a pipe nobody reads would stall the sidecar's logging).
    pub fn command(&self, name: &str, script: &str) -> Command {
        self.command_with(name, &[], script)
    }

    /// [`Deployment::command`] with `extra` flags of `run`.
    pub fn command_with(&self, name: &str, extra: &[&str], script: &str) -> Command {
        let mut args: Vec<String> = [
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
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--", "/bin/bash", "-c", script].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = command_in(&self.ns, None, &sidecar_bin(), &args);
        let file =
            |ext: &str| std::fs::File::create(self.dir.join(format!("{name}.{ext}"))).unwrap();
        cmd.stdout(file("out")).stderr(file("err"));
        cmd
    }

    /// What run `name` wrote to `ext` (`out`, `err`).
    pub fn output_of(&self, name: &str, ext: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.{ext}"))).unwrap_or_default()
    }

    /// `agent-sidecar approvals ARGS` against the admin API.
    pub fn approvals(&self, args: &[&str]) -> Output {
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
    pub fn listed(&self, state: &str) -> Vec<Value> {
        let out = self.approvals(&["list", "--state", state, "--json"]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// `approvals approve|deny ID` as `ap-lead@example.test`.
    pub fn decide(&self, verb: &str, id: &str, reason: &str) -> Output {
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
    pub fn kill_agent(&self) {
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
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lossy UTF-8.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Waits up to `limit` for `cond`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    wait_or(what, limit, &mut cond, String::new);
}

/// Waits for `cond`; on timeout fails with `state()`.
pub fn wait_or(
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

/// Every record of the log, in order (the segment files' lines).
pub fn records(dir: &Path) -> Vec<Value> {
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

/// Everything of one test: the namespace's servers and the deployment.
pub struct PayWorld {
    // Dropped in this order: the server, then the deployment (teardown,
    // files), then the DNS authority.
    pub tool: ToolServer,
    pub d: Deployment,
    pub ca: TestCa,
    _dns: Authority,
}

impl PayWorld {
    /// A fresh namespace with the DNS authority, the tool server and a
    /// deployment of a fresh agent.
    pub fn new() -> Self {
        let ns = NetNs::new();
        for a in [DNS, TOOL] {
            ns.add_address(&format!("{a}/32"));
        }
        let ca = TestCa::new();
        let dns = Authority::start_in(
            &ns,
            &format!("{DNS}:53"),
            Zone::from_addrs(&[("pay.tools.test", TOOL)], 60),
        );
        let d = Deployment::new(ns, &ca);
        let tool = ToolServer::start(&d.ns, &ca, &d.dir);
        PayWorld {
            d,
            tool,
            ca,
            _dns: dns,
        }
    }
}

impl Default for PayWorld {
    fn default() -> Self {
        Self::new()
    }
}
