//! The tool gateway end to end under `agent-sidecar run --policy-dir`: the
//! official MCP Python SDK as the agent's client (as uid 65534, inside the
//! governed cgroup) and as the tool server, over Streamable HTTP with TLS
//! terminated by the sidecar; the approvers' CLI against the admin API;
//! webhooks to a local receiver; quarantine enforced by the kernel.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar_test_support::{
    ca::TestCa,
    dns::{Authority, Zone},
    fixtures,
    mcp::{McpServer, mcp_client_args, parse_client_output, python_script, test_python},
    web::WebServer,
};
use agent_sidecar_tests::{NetNs, TcpServer, command_in, privileged, sidecar_bin, unique};
use serde_json::{Value, json};

const DNS: &str = "198.51.100.1";
const TOOLS: &str = "198.51.100.5";
const BILLING: &str = "198.51.100.6";
const BILLING_SECRET: &str = "billing-secret-token-9876543210";
const CONTROL: &str = "198.51.100.9:7000";
const ADMIN: &str = "127.0.0.1:9901";
const SECRET: &str = "crm-secret-token-0123456789";
const TOKEN: &str = "approvals-admin-token-0123456789";

fn policy(dir: &Path, agent: &str) {
    fixtures::write_set("crm-e2e", dir, &[("CONTROL", CONTROL), ("AGENT", agent)]);
}

fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

struct World {
    ns: NetNs,
    agent: String,
    _ca: TestCa,
    _dns: Authority,
    mcp: McpServer,
    billing: WebServer,
    control: TcpServer,
    dir: PathBuf,
    upstream_ca: PathBuf,
    hooks: Child,
    hook_log: PathBuf,
}

impl World {
    fn new() -> Self {
        let ns = NetNs::new();
        for a in [DNS, TOOLS, BILLING, "198.51.100.9"] {
            ns.add_address(&format!("{a}/32"));
        }
        let ca = TestCa::new();
        let (cert, key) = ca.issue("crm", &["crm.tools.test"]);
        let mcp = McpServer::start(&ns, &format!("{TOOLS}:443"), &cert, &key, false);
        let (bcert, bkey) = ca.issue("billing", &["billing.tools.test"]);
        let billing =
            WebServer::https(&ns, &format!("{BILLING}:443"), "billing-api", &bcert, &bkey);
        let dns = Authority::start_in(
            &ns,
            &format!("{DNS}:53"),
            Zone::from_addrs(
                &[("crm.tools.test", TOOLS), ("billing.tools.test", BILLING)],
                60,
            ),
        );
        // Held connections end by the agent's close or a reset, not idling.
        let control = TcpServer::with_idle_timeout(&ns, CONTROL, Duration::from_secs(20));
        let upstream_ca = ca.ca_file();
        let dir = std::env::temp_dir().join(unique("gateway-e2e"));
        std::fs::create_dir_all(&dir).unwrap();
        let agent = unique("bot");
        policy(&dir.join("policy"), &agent);
        private_file(&dir.join("crm-token"), SECRET);
        private_file(&dir.join("billing-token"), BILLING_SECRET);
        private_file(&dir.join("admin-token"), TOKEN);
        let hook_log = dir.join("hooks.jsonl");
        let mut hooks = command_in(
            &ns,
            None,
            Path::new("/usr/bin/python3"),
            &[
                python_script("webhook_receiver.py").to_str().unwrap(),
                &format!("{DNS}:8080"),
                hook_log.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("webhook receiver");
        let mut ready = String::new();
        BufReader::new(hooks.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        World {
            ns,
            agent,
            _ca: ca,
            _dns: dns,
            mcp,
            billing,
            control,
            upstream_ca,
            dir,
            hooks,
            hook_log,
        }
    }

    /// `agent-sidecar run` of `script` (bash) as the agent.
    fn command(&self, extra: &[&str], script: &str) -> Command {
        let agent_id = self.agent.as_str();
        let state = self.dir.join(unique("state"));
        let mut args: Vec<String> = [
            "run",
            "--agent-id",
            agent_id,
            "--state-dir",
            state.to_str().unwrap(),
            "--upstream-dns",
            &format!("{DNS}:53"),
            "--policy-dir",
            self.dir.join("policy").to_str().unwrap(),
            "--secret",
            &format!("crm-token=file:{}", self.dir.join("crm-token").display()),
            "--secret",
            &format!(
                "billing-token=file:{}",
                self.dir.join("billing-token").display()
            ),
            "--upstream-ca",
            self.upstream_ca.to_str().unwrap(),
            "--admin-listen",
            ADMIN,
            "--admin-token-file",
            self.dir.join("admin-token").to_str().unwrap(),
            "--owner-webhook",
            &format!("http://{DNS}:8080/owner"),
            "--soc-webhook",
            &format!("http://{DNS}:8080/soc"),
            // Each run learns anew: a baseline kept from earlier runs
            // would start alerting once it has learned a week.
            "--baseline-dir",
            self.dir.join("baselines").to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--", "/bin/bash", "-c", script].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        command_in(&self.ns, None, &sidecar_bin(), &args)
    }

    fn run(&self, extra: &[&str], script: &str) -> Output {
        let out = self
            .command(extra, script)
            .output()
            .expect("run agent-sidecar");
        torn_down(&out);
        out
    }

    /// Events the webhooks received for `path` (`/owner`, `/soc`).
    fn hooks(&self, path: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.hook_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["_path"] == path)
            .collect()
    }

    fn approvals(&self, args: &[&str]) -> Output {
        self.cli("approvals", args)
    }

    /// `agent-sidecar COMMAND ARGS... --url ADMIN --token-file TOKEN` in
    /// the agent's namespace: an admin CLI command against the sidecar.
    fn cli(&self, command: &str, args: &[&str]) -> Output {
        let url = format!("http://{ADMIN}");
        let token = self.dir.join("admin-token");
        let mut all = vec![command];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &url, "--token-file", token.to_str().unwrap()]);
        command_in(&self.ns, None, &sidecar_bin(), &all)
            .output()
            .unwrap_or_else(|e| panic!("{command} CLI: {e}"))
    }

    /// Waits for one pending approval (through the CLI) and returns its id.
    fn pending(&self) -> String {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let out = self.approvals(&["list", "--json"]);
            if out.status.success() {
                let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                if let Some(id) = list
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(|a| a["id"].as_str())
                {
                    return id.to_string();
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no pending approval appeared");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.hooks.kill();
        let _ = self.hooks.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bash line running the SDK client for `tool` with `args`.
fn client(tool: &str, args: &Value, headers: &[(&str, &str)]) -> String {
    let argv = mcp_client_args(
        "https://crm.tools.test/mcp",
        Some(tool),
        Some(args),
        headers,
    );
    let mut line = shell_quote(test_python().to_str().unwrap());
    for a in argv {
        line.push(' ');
        line.push_str(&shell_quote(&a));
    }
    line
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A bash line that connects to `addr` and prints `connected` or the errno.
fn probe(addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    format!(
        "/usr/bin/python3 -c 'import socket,sys\ns=socket.socket()\ns.settimeout(3)\ntry:\n  s.connect((\"{host}\",{port})); print(\"connected\")\nexcept OSError as e:\n  print(\"errno\", e.errno)'"
    )
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `run` removed its kernel enforcement when the agent exited: nothing of
/// the gateway kept it alive.
fn torn_down(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kernel enforcement removed") && !stderr.contains("still referenced"),
        "enforcement left pinned:\n{stderr}"
    );
}

fn first_json_line(stdout: &str) -> &str {
    stdout.lines().find(|l| l.starts_with('{')).unwrap_or("")
}

#[test]
fn allowed_and_supervised_tools_with_injected_credentials_and_a_filtered_list() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let script = format!(
        "{}\n{}\n{}",
        client(
            "get_customer",
            &json!({"customer_id": "c-42"}),
            &[("Authorization", "Bearer agent-invented")]
        ),
        client(
            "update_customers",
            &json!({"customer_ids": ["c-1", "c-2"], "status": "vip"}),
            &[]
        ),
        probe(ADMIN),
    );
    let out = w.run(&[], &script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let mut lines = stdout.lines().filter(|l| l.starts_with('{'));
    let first = parse_client_output(lines.next().expect("first client"));
    let second = parse_client_output(lines.next().expect("second client"));
    // tools/list filtered: the denied and tier-4 tools are not offered.
    let mut tools = first.tools.clone();
    tools.sort();
    assert_eq!(
        tools,
        ["get_customer", "refund", "update_customers"],
        "{stdout}"
    );
    let call = first.call.expect("call");
    assert!(call.ok && !call.is_error, "{call:?}");
    assert!(second.call.expect("call").ok, "{stdout}");
    // The tool server saw both calls, authenticated by the sidecar only.
    let calls = w.mcp.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(c["authorization"], format!("Bearer {SECRET}"), "{c}");
        assert!(
            c["traceparent"]
                .as_str()
                .is_some_and(|t| t.starts_with("00-"))
        );
    }
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the secret leaked"
    );
    // Tier 2: the owner was told.
    let notices = w.hooks("/owner");
    assert!(
        notices
            .iter()
            .any(|e| e["event"] == "action.supervised" && e["action"]["action"] == "bulk_update"),
        "{notices:?}"
    );
    // The admin API is out of the agent's reach.
    assert!(stdout.contains("errno 1"), "admin API reachable: {stdout}");
    // The behavioural baseline was written at exit, the two calls in it.
    let path =
        agent_sidecar::detect::BaselineStore::new(w.dir.join("baselines")).agent_path(&w.agent);
    let baseline = agent_sidecar::detect::read_file(&path)
        .unwrap_or_else(|e| panic!("no baseline kept at exit: {e}"));
    let f = baseline.to_file();
    assert!(!f.learned, "a first run is learning");
    assert!(
        f.actions.keys().any(|a| a.ends_with(".lookup"))
            && f.actions.keys().any(|a| a.ends_with(".bulk_update")),
        "{:?}",
        f.actions
    );
}

#[test]
fn tier_2_compensation_runs_the_compensating_mcp_tool_once() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let marker = w.dir.join("compensated");
    let script = format!(
        "{}\nfor i in $(seq 600); do [ -e {} ] && break; sleep 0.1; done",
        client(
            "update_customers",
            &json!({"customer_ids": ["c-1", "c-2"], "status": "vip"}),
            &[]
        ),
        shell_quote(marker.to_str().unwrap()),
    );
    let agent = w
        .command(&[], &script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The owner's notice names the compensation.
    let start = Instant::now();
    let id = loop {
        let notice = w
            .hooks("/owner")
            .into_iter()
            .find(|e| e["event"] == "action.supervised" && e["action"]["action"] == "bulk_update");
        if let Some(id) = notice
            .as_ref()
            .and_then(|n| n["compensation"]["id"].as_str())
        {
            break id.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no notice: {notice:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let trigger = |body: &str| -> (String, Value) {
        let url = format!("http://{ADMIN}/v1/compensations/{id}/trigger");
        let auth = format!("authorization: Bearer {TOKEN}");
        let out = command_in(
            &w.ns,
            None,
            Path::new("/usr/bin/curl"),
            &[
                "-sS",
                "--max-time",
                "20",
                "-X",
                "POST",
                "-H",
                &auth,
                "-d",
                body,
                "-w",
                "\n%{http_code}",
                &url,
            ],
        )
        .output()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", ""));
        (
            code.to_owned(),
            serde_json::from_str(json).unwrap_or(Value::Null),
        )
    };
    // An argument the compensating tool does not take: refused before
    // anything is sent, and the compensation stays available.
    let (code, answer) = trigger(r#"{"bogus": 1}"#);
    assert_eq!(code, "422", "{answer}");
    assert!(
        answer.to_string().contains("no argument `bogus`"),
        "{answer}"
    );
    assert_eq!(w.mcp.calls().len(), 1);
    // Runs the compensating tool: batch_id from the original result,
    // customer_ids from the original arguments (the policy's `carry`),
    // status from the trigger.
    let (code, answer) = trigger(r#"{"status": "active"}"#);
    assert_eq!(code, "200", "{answer}");
    assert_eq!(answer["upstream_status"], 200, "{answer}");
    assert_eq!(
        answer["answer"]["structuredContent"]["restored"], 2,
        "{answer}"
    );
    let calls = w.mcp.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1]["tool"], "restore_customers");
    assert_eq!(
        calls[1]["arguments"],
        json!({"batch_id": "b-2", "customer_ids": ["c-1", "c-2"], "status": "active"})
    );
    assert_eq!(calls[1]["authorization"], format!("Bearer {SECRET}"));
    // Once only.
    let (code, answer) = trigger("{}");
    assert_eq!(code, "409", "{answer}");
    std::fs::write(&marker, "").unwrap();
    let out = agent.wait_with_output().unwrap();
    torn_down(&out);
    let (stdout, stderr) = text(&out);
    let result = parse_client_output(first_json_line(&stdout));
    assert!(result.call.is_some_and(|c| c.ok), "{stdout}\n{stderr}");
    assert_eq!(w.mcp.calls().len(), 2, "nothing ran twice");
}

#[test]
fn tier_3_approved_denied_and_expired_over_mcp() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let refund = client(
        "refund",
        &json!({"amount": 500, "currency": "EUR", "customer_id": "c-7"}),
        &[],
    );
    // Approved through the CLI: forwarded once.
    let agent = w
        .command(&["--metrics-listen", "127.0.0.1:9902"], &refund)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = w.pending();
    assert!(w.mcp.calls().is_empty(), "held calls do not reach the tool");
    let scrape = command_in(
        &w.ns,
        None,
        Path::new("/usr/bin/curl"),
        &["-sS", "--max-time", "5", "http://127.0.0.1:9902/metrics"],
    )
    .output()
    .unwrap();
    let metrics = String::from_utf8_lossy(&scrape.stdout);
    assert!(
        metrics.contains(&format!(
            "agent_sidecar_approvals_pending{{agent_id=\"{}\"}} 1",
            w.agent
        )),
        "{metrics}"
    );
    let out = w.approvals(&[
        "approve",
        &id,
        "--approver",
        "finance@example.test",
        "--reason",
        "known customer",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = agent.wait_with_output().unwrap();
    torn_down(&out);
    let (stdout, stderr) = text(&out);
    let result = parse_client_output(first_json_line(&stdout));
    assert!(
        result.call.as_ref().is_some_and(|c| c.ok),
        "{stdout}\n{stderr}"
    );
    assert_eq!(w.mcp.calls().len(), 1);

    // Denied through the CLI: a JSON-RPC error naming the decision.
    let agent = w
        .command(&[], &refund)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = w.pending();
    let out = w.approvals(&[
        "deny",
        &id,
        "--approver",
        "finance@example.test",
        "--reason",
        "fraud pattern",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = agent.wait_with_output().unwrap();
    torn_down(&out);
    let (stdout, stderr) = text(&out);
    let call = parse_client_output(first_json_line(&stdout))
        .call
        .expect("call");
    let err = call.error.expect("refused");
    assert_eq!(err.code, Some(-32002), "{stdout}\n{stderr}");
    assert!(err.message.contains("fraud pattern"), "{err:?}");

    // Nobody answers: denied when the SLA passes.
    let out = w.run(&["--approval-sla", "2s"], &refund);
    let (stdout, stderr) = text(&out);
    let err = parse_client_output(first_json_line(&stdout))
        .call
        .expect("call")
        .error
        .expect("refused");
    assert_eq!(err.code, Some(-32003), "{stdout}\n{stderr}");
    assert_eq!(
        w.mcp.calls().len(),
        1,
        "denied and expired calls never reached the tool"
    );
}

#[test]
fn a_quarantine_cancels_the_held_refund_and_a_late_approval_is_refused() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let (go, done) = (w.dir.join("go"), w.dir.join("done"));
    let wait_for = |f: &Path| {
        format!(
            "for i in $(seq 600); do [ -e {} ] && break; sleep 0.1; done",
            shell_quote(f.to_str().unwrap())
        )
    };
    let script = format!(
        "{} &\n{}\n{}\n{}\nwait",
        client("refund", &json!({"amount": 500, "customer_id": "c-7"}), &[]),
        wait_for(&go),
        client("export_customers", &json!({"limit": 100000}), &[]),
        wait_for(&done),
    );
    let agent = w
        .command(
            &["--approver-webhook", &format!("http://{DNS}:8080/approver")],
            &script,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = w.pending();
    std::fs::write(&go, "").unwrap();
    // The tier-4 export quarantines the agent: the held refund is
    // cancelled at once and the approvers are told.
    let start = Instant::now();
    let cancelled = loop {
        let out = w.approvals(&["show", &id]);
        let record: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if record["state"]["kind"] == "cancelled" {
            break record;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{record}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        cancelled["state"]["reason"]
            .as_str()
            .unwrap()
            .contains("quarantined"),
        "{cancelled}"
    );
    // An approver who has not heard of the quarantine.
    let out = w.approvals(&[
        "approve",
        &id,
        "--approver",
        "finance@example.test",
        "--reason",
        "known customer",
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("cancelled"), "{:?}", text(&out));
    std::fs::write(&done, "").unwrap();
    let out = agent.wait_with_output().unwrap();
    torn_down(&out);
    let (stdout, stderr) = text(&out);
    let reasons: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| parse_client_output(l).call?.error?.data)
        .map(|d| d["reason"].clone())
        .collect();
    assert!(
        reasons.contains(&json!("approval_cancelled")) && reasons.contains(&json!("tier_4_halt")),
        "{stdout}\n{stderr}"
    );
    assert!(w.mcp.calls().is_empty(), "nothing reached the tool");
    let told = w.hooks("/approver");
    assert!(
        told.iter().any(|e| e["event"] == "approval.decided"
            && e["approval"]["id"] == id.as_str()
            && e["approval"]["state"]["kind"] == "cancelled"),
        "{told:?}"
    );
}

#[test]
fn tier_4_alerts_the_soc_and_quarantines_the_agent_in_the_kernel() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let script = format!(
        "{}\n{}\n{}\n{}",
        probe(CONTROL),
        client("delete_customer", &json!({"customer_id": "c-1"}), &[]),
        client("export_customers", &json!({"limit": 100000}), &[]),
        probe(CONTROL),
    );
    let out = w.run(&[], &script);
    let (stdout, stderr) = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("connected"),
        "{stdout}\n{stderr}"
    );
    let json_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with('{'))
        .collect();
    assert_eq!(json_lines.len(), 2, "{stdout}\n{stderr}");
    // `deny`: refused, no quarantine.
    let denied = parse_client_output(json_lines[0])
        .call
        .expect("call")
        .error
        .expect("refused");
    assert_eq!(denied.code, Some(-32001), "{stdout}");
    let data = denied.data.expect("data");
    assert_eq!(data["reason"], "policy_deny");
    assert_eq!(data["rules"], json!(["never-delete-customers"]));
    // Tier 4: refused, SOC alerted, agent quarantined.
    let halted = parse_client_output(json_lines[1])
        .call
        .expect("call")
        .error
        .expect("refused");
    assert_eq!(halted.code, Some(-32001), "{stdout}");
    assert_eq!(halted.data.expect("data")["reason"], "tier_4_halt");
    assert_eq!(
        lines.last().copied(),
        Some("errno 1"),
        "quarantine must refuse new connects: {stdout}\n{stderr}"
    );
    let alerts = w.hooks("/soc");
    assert!(
        alerts
            .iter()
            .any(|e| e["event"] == "action.halted" && e["quarantined"] == true),
        "{alerts:?}"
    );
    assert!(w.mcp.calls().is_empty());
    assert_eq!(
        w.control.count(),
        1,
        "only the connect before the quarantine got through"
    );
}

#[test]
fn tier_4_quarantine_resets_the_agents_open_connections() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    // The agent runs unprivileged: its own flag file lives in /tmp.
    let go = std::env::temp_dir().join(unique("go"));
    let (host, port) = CONTROL.rsplit_once(':').unwrap();
    let hold = format!(
        "/usr/bin/python3 -c 'import socket,os,time\ns=socket.create_connection((\"{host}\",{port}),timeout=3)\nprint(\"held\",flush=True)\nwhile not os.path.exists(\"{go}\"): time.sleep(0.01)\ntry:\n  s.sendall(b\"after-halt\"); time.sleep(0.3); s.sendall(b\"more\"); print(\"sent\")\nexcept OSError as e:\n  print(\"errno\", e.errno)'",
        go = go.display()
    );
    let script = format!(
        "{hold} &\nsleep 0.5\n{}\ntouch {}\nwait",
        client("export_customers", &json!({"limit": 100000}), &[]),
        go.display()
    );
    let out = w.run(&[], &script);
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("held"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("\"reason\": \"tier_4_halt\"") || stdout.contains("tier_4_halt"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("sent"),
        "a write after the quarantine must fail: {stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("quarantine: the agent's open sockets were destroyed"),
        "{stderr}"
    );
    // The agent exited and enforcement is gone: still nothing arrives.
    std::thread::sleep(Duration::from_secs(2));
    let ended = w.control.wait_ended(1, Duration::from_secs(3));
    assert_eq!(
        ended,
        vec![(Vec::new(), "reset")],
        "the peer saw a reset and no byte written after the halt"
    );
    let _ = std::fs::remove_file(go);
}

#[test]
fn the_agent_reaches_the_admin_api_through_no_rule_or_spelling() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let port = ADMIN.rsplit_once(':').unwrap().1;
    // Rules that would open the admin API are refused before the agent runs.
    for extra in [
        &[
            "--static-host",
            "admin.tools.test=127.0.0.1",
            "--allow",
            &format!("admin.tools.test:{port}"),
        ][..],
        &[
            "--static-host",
            "admin.tools.test=127.0.0.1",
            "--allow",
            "admin.tools.test",
        ][..],
        &["--allow", "127.0.0.0/8"][..],
        &["--allow", &format!("[::ffff:127.0.0.1]:{port}")][..],
    ] {
        let out = w.command(extra, "echo agent-ran").output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{extra:?}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("the sidecar's admin API") && stderr.contains("--admin-listen"),
            "{extra:?}: {stderr}"
        );
        assert!(!stdout.contains("agent-ran"));
    }
    // Every address spelling of the admin port is refused in the kernel.
    let spellings = [
        "127.0.0.1",
        "127.0.0.2",
        "0.0.0.0",
        "198.51.100.9",
        "::1",
        "::ffff:127.0.0.1",
        "::",
    ];
    let lines: Vec<String> = spellings
        .iter()
        .map(|h| {
            format!(
                "/usr/bin/python3 -c 'import socket\nfam=socket.AF_INET6 if \":\" in \"{h}\" else socket.AF_INET\ns=socket.socket(fam)\ns.settimeout(3)\ntry:\n  s.connect((\"{h}\",{port})); print(\"connected {h}\")\nexcept OSError as e:\n  print(\"errno\", e.errno, \"{h}\")'"
            )
        })
        .collect();
    let out = w.run(&[], &lines.join("\n"));
    let (stdout, stderr) = text(&out);
    for h in spellings {
        assert!(
            stdout.contains(&format!("errno 1 {h}\n")),
            "{h} must be refused with EPERM: {stdout}\n{stderr}"
        );
    }
    assert!(!stdout.contains("connected"), "{stdout}");
}

#[test]
fn curl_and_requests_through_the_kernel_redirect_and_the_proxy_variables() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let url = "https://billing.tools.test/v1/invoices";
    let script = format!(
        "curl -sS --max-time 10 -H 'Authorization: Bearer agent-invented' {url}\n\
         /usr/bin/python3 -c 'import requests; r = requests.get(\"{url}\", headers={{\"Authorization\": \"Bearer nope\"}}, timeout=10); print(r.status_code, r.text.strip())'"
    );
    // Transparent: no proxy variables, the kernel sends the connects to
    // port 443 to the sidecar; then explicit, through HTTPS_PROXY.
    for extra in [&["--no-proxy-env"][..], &[][..]] {
        let out = w.run(extra, &script);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{extra:?}: {stdout}\n{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            ["billing-api", "200 billing-api"],
            "{extra:?}: {stdout}\n{stderr}"
        );
        assert!(!stdout.contains(BILLING_SECRET) && !stderr.contains(BILLING_SECRET));
    }
    let seen = w.billing.requests();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for line in &seen {
        assert_eq!(
            line,
            &format!("billing.tools.test /v1/invoices authorization=Bearer {BILLING_SECRET}"),
            "the upstream sees the sidecar's credential only"
        );
    }
}

#[test]
fn the_agent_never_sees_a_secret_read_from_the_environment() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    const SPARE: &str = "spare-secret-from-the-environment-42";
    let w = World::new();
    let secret = ["--secret", "spare-token=env:SPARE_TOKEN"];
    // The agent's own environment, then the sidecar's (its parent).
    let script = "cat /proc/self/environ | tr '\\0' '\\n'; \
                  tr '\\0' '\\n' < /proc/$PPID/environ >/dev/null 2>&1 || echo sidecar-environ-unreadable";
    let out = w
        .command(&secret, script)
        .env("SPARE_TOKEN", SPARE)
        .env("HOME", "/root")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run agent-sidecar");
    torn_down(&out);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(SPARE) && !stdout.contains("SPARE_TOKEN"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nHOME=/nonexistent\n") || stdout.starts_with("HOME=/nonexistent\n"),
        "{stdout}"
    );
    assert!(stdout.contains("HTTPS_PROXY=http://"), "{stdout}");
    assert!(stdout.contains("sidecar-environ-unreadable"), "{stdout}");

    // Passing the secret's variable on is refused before anything starts.
    for extra in [
        &["--pass-env", "SPARE_TOKEN"][..],
        &["--env", "SPARE_TOKEN=copy"][..],
    ] {
        let mut args = secret.to_vec();
        args.extend_from_slice(extra);
        let out = w
            .command(&args, "echo started")
            .env("SPARE_TOKEN", SPARE)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run agent-sidecar");
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{extra:?}: {stdout}\n{stderr}"
        );
        assert!(!stdout.contains("started"), "{stdout}");
        assert!(
            stderr.contains("it is the source of --secret spare-token"),
            "{extra:?}: {stderr}"
        );
    }
}

#[test]
fn a_policy_rewritten_in_place_never_lets_a_denied_call_through_under_run() {
    use std::{
        io::Write,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        },
    };
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let path = w.dir.join("policy/base.yaml");
    let base = std::fs::read_to_string(&path).unwrap();
    let (head, rules) = base.split_at(base.find("rules:\n").unwrap());
    let (head, rules) = (head.to_string(), rules.to_string());
    // While the agent calls a denied tool again and again, base.yaml is
    // rewritten in place in two writes (rules last), with gaps of 0.3-2 s.
    let stop = Arc::new(AtomicBool::new(false));
    let rewrites = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, rewrites, path) = (stop.clone(), rewrites.clone(), path.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            'outer: loop {
                for gap in [300u64, 1000, 2000] {
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    let gap = Duration::from_millis(gap);
                    let mut f = std::fs::File::create(&path).unwrap();
                    f.write_all(head.as_bytes()).unwrap();
                    f.flush().unwrap();
                    std::thread::sleep(gap);
                    f.write_all(rules.as_bytes()).unwrap();
                    drop(f);
                    std::thread::sleep(Duration::from_millis(300));
                    std::fs::write(&path, &head).unwrap();
                    std::thread::sleep(gap);
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .unwrap();
                    f.write_all(rules.as_bytes()).unwrap();
                    drop(f);
                    std::thread::sleep(Duration::from_millis(300));
                    rewrites.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let call = client("delete_customer", &json!({"customer_id": "c-1"}), &[]);
    let script = format!("for i in $(seq 1 16); do {call}; sleep 0.2; done");
    let out = w.run(&[], &script);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(rewrites.load(Ordering::Relaxed) >= 2, "{stdout}\n{stderr}");
    let answers: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(answers.len(), 16, "{stdout}\n{stderr}");
    for a in answers {
        let error = parse_client_output(a).call.expect("call").error;
        let data = error
            .and_then(|e| e.data)
            .unwrap_or_else(|| panic!("not refused: {a}"));
        assert_eq!(data["reason"], "policy_deny", "{a}");
    }
    assert!(w.mcp.calls().is_empty(), "{:?}", w.mcp.calls());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), base);
}

#[test]
fn a_new_action_after_learning_reaches_the_soc_as_an_ocsf_finding() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    // The agent's document: learn for a second, from one call.
    let doc = w.dir.join("policy/agent.yaml");
    let mut yaml = std::fs::read_to_string(&doc).unwrap();
    yaml.push_str("detection:\n  learning: 1s\n  min_learning_events: 1\n");
    std::fs::write(&doc, yaml).unwrap();
    let script = format!(
        "{}\nsleep 1.5\n{}\nsleep 1",
        client("get_customer", &json!({"customer_id": "c-42"}), &[]),
        client(
            "update_customers",
            &json!({"customer_ids": ["c-1"], "status": "vip"}),
            &[]
        ),
    );
    let out = w.run(&[], &script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let events: Vec<Value> = w
        .hooks("/soc")
        .into_iter()
        .filter(|e| e["event"] == "detection.finding")
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}\n{stderr}");
    let e = &events[0];
    assert!(e["id"].as_str().unwrap().starts_with("evt_"), "{e}");
    assert_eq!(e["schema_version"], 1);
    assert_eq!(e["agent"], w.agent.as_str());
    let f = &e["finding"];
    assert_eq!(f["class_uid"], 2004);
    assert_eq!(f["finding_info"]["analytic"]["name"], "new_action");
    assert_eq!(
        f["anomaly_analyses"][0]["analysis_targets"][0]["name"],
        w.agent.as_str()
    );
    let action = f["anomaly_analyses"][0]["anomalies"][0]["observations"][0]["value"]
        .as_str()
        .unwrap();
    assert!(action.ends_with(".bulk_update"), "{f}");
    assert!(
        f["evidences"][0]["data"]["trace_id"].as_str().is_some(),
        "{f}"
    );
    assert!(stderr.contains("detector response"), "{stderr}");
}

#[test]
fn the_inventory_names_the_last_call_and_an_idle_agent_reaches_the_soc() {
    let _ = test_python();
    if !privileged() {
        return;
    }
    let w = World::new();
    let doc = w.dir.join("policy/agent.yaml");
    let mut yaml = std::fs::read_to_string(&doc).unwrap();
    yaml.push_str("detection:\n  idle_after: 2s\n");
    std::fs::write(&doc, yaml).unwrap();
    let script = format!(
        "{}\nsleep 9",
        client("get_customer", &json!({"customer_id": "c-42"}), &[]),
    );
    let child = w
        .command(&[], &script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run agent-sidecar");
    let inventory = || {
        let out = w.cli("inventory", &["--json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_else(|_| Value::String(text(&out).1))
    };
    let start = Instant::now();
    let mut inv = Value::Null;
    while start.elapsed() < Duration::from_secs(20) {
        inv = inventory();
        if inv["actions"]["tool_call"] == 1 && inv["idle_seconds"].as_u64() >= Some(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(inv["agent_id"], w.agent.as_str(), "{inv}");
    assert_eq!(inv["owner"], "ops-lead@example.test", "{inv}");
    assert_eq!(inv["purpose"], "answers customers", "{inv}");
    assert_eq!(inv["actions"]["tool_call"], 1, "{inv}");
    // The call's name lookup and connection are actions too, and their
    // events may arrive after the call's: any of them is the last action.
    let last = inv["last_action"]["kind"].as_str().unwrap_or_default();
    assert!(["tool_call", "connection", "dns"].contains(&last), "{inv}");
    assert!(inv["idle_seconds"].as_u64() >= Some(2), "{inv}");
    assert!(
        inv["policy_version"]
            .as_str()
            .is_some_and(|v| v.len() == 12),
        "{inv}"
    );
    let out = child.wait_with_output().expect("run ends");
    torn_down(&out);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let idle: Vec<Value> = w
        .hooks("/soc")
        .into_iter()
        .filter(|e| e["event"] == "detection.finding")
        .filter(|e| e["finding"]["finding_info"]["analytic"]["name"] == "idle")
        .collect();
    assert_eq!(
        idle.len(),
        1,
        "one idle spell, one alert: {idle:#?}\n{stderr}"
    );
}

/// The agent of a kill-switch test: for `secs` seconds, every 100 ms, a
/// connect to the control server (kernel) and a REST call through the
/// gateway; one JSON line per round (`t` in Unix seconds).
fn kill_loop(stop: &Path) -> String {
    let (host, port) = CONTROL.rsplit_once(':').unwrap();
    format!(
        "/usr/bin/python3 -c '
import json, os, socket, time, requests
end = time.time() + 60
while time.time() < end and not os.path.exists(\"{stop}\"):
    t = time.time()
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((\"{host}\", {port})); k = \"ok\"
    except OSError as e:
        k = \"errno %s\" % e.errno
    finally:
        s.close()
    try:
        g = requests.get(\"https://billing.tools.test/v1/invoices\", timeout=5).status_code
    except Exception as e:
        g = type(e).__name__
    print(json.dumps({{\"t\": t, \"kernel\": k, \"gateway\": g}}), flush=True)
    time.sleep(0.1)
'",
        stop = stop.display()
    )
}

#[test]
fn a_team_kill_switch_stops_exactly_that_teams_agent_in_the_kernel_and_the_gateway() {
    if !privileged() {
        return;
    }
    let controls_dir = std::env::temp_dir().join(unique("fleet-controls"));
    std::fs::create_dir_all(&controls_dir).unwrap();
    let controls = controls_dir.join("controls.yaml");
    std::fs::write(&controls, "kill_switches: []\n").unwrap();
    let worlds: Vec<(World, &str)> = ["payments", "support"]
        .into_iter()
        .map(|team| {
            let w = World::new();
            let policy = w.dir.join("policy");
            std::fs::write(
                policy.join("team.yaml"),
                format!("kind: team\nname: {team}\n"),
            )
            .unwrap();
            let doc = policy.join("agent.yaml");
            let mut yaml = std::fs::read_to_string(&doc).unwrap();
            yaml.push_str(&format!("team: {team}\n"));
            std::fs::write(&doc, yaml).unwrap();
            (w, team)
        })
        .collect();
    // The agents loop until this file exists (the agent runs unprivileged:
    // /tmp).
    let stop = std::env::temp_dir().join(unique("ks-stop"));
    let script = kill_loop(&stop);
    let mut children: Vec<Child> = worlds
        .iter()
        .map(|(w, _)| {
            w.command(&["--fleet-controls", controls.to_str().unwrap()], &script)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run agent-sidecar")
        })
        .collect();
    let seen: Vec<std::sync::Arc<std::sync::Mutex<String>>> = children
        .iter_mut()
        .map(|c| {
            let out = c.stdout.take().unwrap();
            let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let b = buf.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut b = b.lock().unwrap();
                    b.push_str(&line);
                    b.push('\n');
                }
            });
            buf
        })
        .collect();
    // Every agent up and looping (a loaded machine starts them slowly).
    let up = Instant::now();
    while seen.iter().any(|s| s.lock().unwrap().lines().count() < 8) {
        assert!(
            up.elapsed() < Duration::from_secs(60),
            "the agents did not start looping"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let tripped = now();
    std::fs::write(
        &controls,
        "kill_switches:\n  - id: ks-payments\n    scope: {team: payments}\n    reason: refunds to unknown accounts\n    by: soc-oncall\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let released = now();
    std::fs::write(&controls, "kill_switches: []\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(&stop, "").unwrap();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&controls_dir);
    let _ = std::fs::remove_file(&stop);
    for (((w, team), out), seen) in worlds.iter().zip(&outs).zip(&seen) {
        let stdout = seen.lock().unwrap().clone();
        let stderr = text(out).1;
        assert!(out.status.success(), "{team}: {stdout}\n{stderr}");
        let rounds: Vec<Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(rounds.len() > 20, "{team}: {stdout}\n{stderr}");
        let ok = |r: &Value| r["kernel"] == "ok" && r["gateway"] == 200;
        let stopped = |r: &Value| r["kernel"] != "ok" && r["gateway"] != 200;
        let t = |r: &Value| r["t"].as_f64().unwrap();
        let before: Vec<&Value> = rounds.iter().filter(|r| t(r) < tripped).collect();
        assert!(
            before.len() > 5 && before.iter().skip(3).all(|r| ok(r)),
            "{team}: before the trip: {before:?}"
        );
        let during: Vec<&Value> = rounds
            .iter()
            .filter(|r| t(r) > tripped + 1.0 && t(r) + 0.6 < released)
            .collect();
        let after: Vec<&Value> = rounds.iter().filter(|r| t(r) > released + 1.0).collect();
        assert!(!during.is_empty() && !after.is_empty(), "{team}: {stdout}");
        if *team == "payments" {
            assert!(
                during.iter().all(|r| stopped(r)),
                "{team}: within 1 s of the trip and until the release, every connect and call is refused: {during:?}"
            );
            let first = rounds
                .iter()
                .find(|r| t(r) >= tripped && stopped(r))
                .map(t)
                .unwrap();
            assert!(
                first - tripped < 1.0,
                "{team}: stopped {:.3} s after the trip",
                first - tripped
            );
            assert!(after.iter().all(|r| ok(r)), "{team}: released: {after:?}");
            let soc: Vec<Value> = w
                .hooks("/soc")
                .into_iter()
                .filter(|e| e["event"] == "agent.kill_switch")
                .collect();
            let steps: Vec<&str> = soc
                .iter()
                .map(|e| e["kill_switch"]["step"].as_str().unwrap())
                .collect();
            assert_eq!(steps, ["engaged", "released"], "{soc:#?}");
            assert_eq!(soc[0]["kill_switch"]["switch"]["id"], "ks-payments");
            assert!(stderr.contains("kill switch"), "{stderr}");
        } else {
            assert!(
                during.iter().chain(&after).all(|r| ok(r)),
                "{team}: another team's agent is never stopped: {stdout}"
            );
            assert!(
                w.hooks("/soc")
                    .iter()
                    .all(|e| e["event"] != "agent.kill_switch")
            );
        }
    }
}

/// The agent's loop for the grant test: connect to `198.51.100.9:7001`
/// every 100 ms; once connected, keep the connection and write to it
/// until it is cut; print each change (`refused`, `connected`, `cut`).
fn grant_loop(secs: u32) -> String {
    format!(
        "/usr/bin/python3 -c 'import socket,time\nend=time.time()+{secs}; s=None; last=None\ndef say(x):\n  global last\n  if x!=last: print(x, flush=True); last=x\nwhile time.time()<end:\n  if s is None:\n    try:\n      s=socket.create_connection((\"198.51.100.9\",7001),timeout=0.5); say(\"connected\")\n    except OSError: say(\"refused\")\n  else:\n    try: s.sendall(b\"x\")\n    except OSError:\n      say(\"cut\"); s.close(); s=None\n  time.sleep(0.1)'"
    )
}

#[test]
fn a_jit_egress_grant_is_refused_requested_approved_used_and_cut_at_expiry_all_audited() {
    if !privileged() {
        return;
    }
    let w = World::new();
    // The agent writes every 100 ms while connected: 2 s of silence means
    // its packets stopped reaching the server.
    let granted = TcpServer::with_idle_timeout(&w.ns, "198.51.100.9:7001", Duration::from_secs(2));
    let base = w.dir.join("policy").join("base.yaml");
    let mut yaml = std::fs::read_to_string(&base).unwrap();
    yaml.push_str("grantable:\n  - kind: egress\n    targets: [\"198.51.100.9:7001\"]\n    max_ttl_secs: 60\n");
    std::fs::write(&base, yaml).unwrap();
    let audit = w.dir.join(unique("audit"));
    let child = w
        .command(&["--audit-dir", audit.to_str().unwrap()], &grant_loop(14))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run agent-sidecar");
    std::thread::sleep(Duration::from_secs(3));
    let grants = |args: &[&str]| {
        let out = w.cli("grants", args);
        let (stdout, stderr) = text(&out);
        (out.status.code(), stdout, stderr)
    };
    let agent = w.agent.as_str();
    let request = |target: &str, ttl: &str| {
        grants(&[
            "request",
            "--agent",
            agent,
            "--target",
            target,
            "--purpose",
            "incident 42 export",
            "--ttl",
            ttl,
            "--requested-by",
            agent,
        ])
    };
    // Outside the policy's bounds: another port, a longer time.
    let (code, _, err) = request("198.51.100.9:7002", "4");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not grantable"), "{err}");
    let (code, _, err) = request("198.51.100.9:7001", "61");
    assert_eq!(code, Some(1), "{err}");
    let (code, out, err) = request("198.51.100.9:7001", "4");
    assert_eq!(code, Some(0), "{out}{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The agent cannot approve its own grant.
    let (code, _, err) = grants(&["approve", &id, "--approver", agent, "--reason", "mine"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot approve"), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    let approved_at = Instant::now();
    let (code, out, err) = grants(&[
        "approve",
        &id,
        "--approver",
        "lead@example.test",
        "--reason",
        "incident 42",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let steps: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        steps,
        ["refused", "connected", "cut", "refused"],
        "refused, then open while granted, cut at expiry, refused again: {stderr}"
    );
    assert!(approved_at.elapsed() > Duration::from_secs(4));
    assert_eq!(
        granted.count(),
        1,
        "one connection, held until the grant ended"
    );

    // Every step is in the audit trail, in order.
    let out = command_in(
        &w.ns,
        None,
        &sidecar_bin(),
        &[
            "audit",
            "query",
            audit.to_str().unwrap(),
            "--kind",
            "grant",
            "--format",
            "json",
        ],
    )
    .output()
    .unwrap();
    let (records, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let steps: Vec<String> = records
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["detail"]["step"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        steps,
        [
            "refused",
            "refused",
            "requested",
            "refused",
            "approved",
            "expired"
        ],
        "{records}"
    );
    let denied = command_in(
        &w.ns,
        None,
        &sidecar_bin(),
        &[
            "audit",
            "query",
            audit.to_str().unwrap(),
            "--kind",
            "kernel_deny",
            "--format",
            "json",
        ],
    )
    .output()
    .unwrap();
    assert!(
        text(&denied).0.contains("198.51.100.9"),
        "the refused connects are kernel_deny records"
    );
}
