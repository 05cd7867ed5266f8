//! Redaction by policy under `agent-sidecar run`: the agent (curl, in the
//! governed cgroup) sends an IBAN and a card number in tool bodies at every
//! tier. The tool receives them as sent; the audit records, the approvals
//! journal, the owner's, SOC's and approvers' webhooks and every log line
//! (at debug level) hold neither: the IBAN only as its keyed hash, which is
//! the same in every place and every call that carries the same IBAN, and
//! differs for another IBAN; the card number nowhere. The records list what
//! was redacted under which policy version.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar_test_support::mcp::python_script;
use agent_sidecar_tests::{
    command_in,
    pay::{BASE, DNS, PayWorld, Running, records, text},
    privileged,
};
use serde_json::{Value, json};

const IBAN: &str = "DE89370400440532013000";
const OTHER_IBAN: &str = "GB29NWBK60161331926819";
const CARD: &str = "4111111111111111";

/// A webhook receiver (`tests/python/webhook_receiver.py`) on `DNS:8080`
/// in the namespace, logging every body it receives to `log`.
struct Hooks(Child);

impl Hooks {
    fn start(world: &PayWorld, log: &Path) -> Self {
        let mut child = command_in(
            &world.d.ns,
            None,
            Path::new("/usr/bin/python3"),
            &[
                python_script("webhook_receiver.py").to_str().unwrap(),
                &format!("{DNS}:8080"),
                log.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("webhook receiver");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        Hooks(child)
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json_call(label: &str, method: &str, path: &str, key: Option<&str>, body: &Value) -> String {
    let key = key
        .map(|k| format!("-H 'Idempotency-Key: {k}' "))
        .unwrap_or_default();
    format!(
        "curl -sS -o /dev/null -w '{label} %{{http_code}}\\n' --max-time 60 -X {method} {key}\
         -H 'Content-Type: application/json' --data '{body}' {BASE}{path}"
    )
}

#[test]
fn a_secret_in_a_tool_body_reaches_the_tool_and_no_record_journal_webhook_or_log_line() {
    if !privileged() {
        return;
    }
    let world = PayWorld::new();
    let d = &world.d;
    let hook_log = d.dir.join("hooks.jsonl");
    let _hooks = Hooks::start(&world, &hook_log);
    let payment = |n: u32, iban: &str| json!({"amount": 5000, "iban": iban, "card": CARD, "reference": format!("inv-{n}")});
    let script = [
        json_call(
            "verify",
            "POST",
            "/v1/accounts/verify",
            None,
            &json!({"iban": IBAN, "card": CARD, "reference": "check-1"}),
        ),
        json_call(
            "update",
            "PATCH",
            "/v1/vendors/v-1",
            None,
            &json!({"iban": IBAN, "card": CARD, "status": "preferred"}),
        ),
        json_call(
            "pay-1",
            "POST",
            "/v1/payments",
            Some("pay-1"),
            &payment(1, IBAN),
        ),
        json_call(
            "pay-2",
            "POST",
            "/v1/payments",
            Some("pay-2"),
            &payment(2, IBAN),
        ),
        json_call(
            "pay-3",
            "POST",
            "/v1/payments",
            Some("pay-3"),
            &payment(3, OTHER_IBAN),
        ),
        json_call(
            "export",
            "POST",
            "/v1/exports",
            None,
            &json!({"iban": IBAN, "card": CARD}),
        ),
    ]
    .join("\n");
    let hook = |path: &str| format!("http://{DNS}:8080/{path}");
    let extra = [
        "--owner-webhook",
        &hook("owner"),
        "--soc-webhook",
        &hook("soc"),
        "--approver-webhook",
        &hook("approver"),
        "--log",
        "debug",
    ];
    let mut run = Running(d.command_with("run", &extra, &script).spawn().expect("run"));
    // Approvers: pay-3 (another IBAN) denied, the others approved.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not finish: {}",
            d.output_of("run", "err")
        );
        for a in d.listed("pending") {
            let id = a["id"].as_str().unwrap();
            let verb = if a["idempotency_key"].as_str().unwrap().ends_with(":pay-3") {
                "deny"
            } else {
                "approve"
            };
            let out = d.decide(verb, id, "checked");
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (d.output_of("run", "out"), d.output_of("run", "err"));
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        answers,
        [
            "verify 200",
            "update 200",
            "pay-1 200",
            "pay-2 200",
            "pay-3 403",
            "export 403"
        ],
        "{stderr}"
    );
    // The tool received the secrets as sent: redaction never touches the
    // forwarded call.
    let received = world.tool.received();
    assert_eq!(received.len(), 4, "{received:?}");
    for r in &received {
        let body = r["body"].as_str().unwrap();
        assert!(body.contains(IBAN) && body.contains(CARD), "{r}");
    }

    // Wait for the webhooks (delivered from their own queues).
    let hooks = || std::fs::read_to_string(&hook_log).unwrap_or_default();
    let events = |path: &str| -> Vec<Value> {
        hooks()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["_path"] == path)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while events("/approver").len() < 6 || events("/owner").is_empty() || events("/soc").is_empty()
    {
        assert!(Instant::now() < deadline, "webhooks: {}", hooks());
        std::thread::sleep(Duration::from_millis(100));
    }

    // The four places hold neither secret.
    let audit = d.audit_dir();
    let mut audit_text = String::new();
    for e in std::fs::read_dir(audit.join("segments")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            audit_text.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    let journal = std::fs::read_to_string(
        d.state
            .join("agents")
            .join(&d.agent)
            .join("approvals/approvals.jsonl"),
    )
    .unwrap();
    let logs = format!("{stdout}{stderr}");
    assert!(
        logs.lines().count() > 50 && logs.contains("tool call"),
        "debug logs captured: {logs}"
    );
    for (place, content) in [
        ("audit record", &audit_text),
        ("approvals journal", &journal),
        ("webhook", &hooks()),
        ("log line", &logs),
    ] {
        assert!(!content.is_empty(), "{place}: nothing captured");
        for secret in [IBAN, OTHER_IBAN, CARD] {
            if let Some(line) = content.lines().find(|l| l.contains(secret)) {
                panic!("{secret} in a {place}: {line}");
            }
        }
    }

    // The IBAN's keyed hash: the same in every record of a call that
    // carried it, in the journal and in the webhooks; another IBAN's differs.
    let records = records(&audit);
    let attempts: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "tool_call" && r["phase"] == "attempt")
        .collect();
    let input_of = |action: &str, reference: Option<&str>| -> &Value {
        let r = attempts
            .iter()
            .find(|r| {
                r["action"]["name"] == action
                    && reference.is_none_or(|x| r["input"]["value"]["reference"] == x)
            })
            .unwrap_or_else(|| panic!("no attempt record of {action} {reference:?}"));
        &r["input"]
    };
    let hashed = input_of("verify_account", None)["value"]["iban"]
        .as_str()
        .expect("hashed IBAN")
        .to_string();
    assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
    for (action, reference) in [
        ("update_vendor", None),
        ("create_payment", Some("inv-1")),
        ("create_payment", Some("inv-2")),
        ("export", None),
    ] {
        assert_eq!(
            input_of(action, reference)["value"]["iban"],
            hashed.as_str(),
            "{action} {reference:?}"
        );
    }
    let other = input_of("create_payment", Some("inv-3"))["value"]["iban"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(other.starts_with("hmac-sha256:") && other != hashed);
    // What was kept, and what the record says was redacted, under which
    // policy version.
    let pay1 = attempts
        .iter()
        .find(|r| r["input"]["value"]["reference"] == "inv-1")
        .unwrap();
    assert_eq!(
        pay1["input"]["value"],
        json!({"amount": 5000, "iban": hashed, "reference": "inv-1"})
    );
    let version = pay1["policy"]["version"].as_str().unwrap();
    let redactions = pay1["input"]["redactions"].as_array().unwrap();
    for want in [
        json!({"path": "/iban", "method": "hash", "policy_version": version}),
        json!({"path": "/card", "method": "drop", "policy_version": version}),
    ] {
        assert!(redactions.contains(&want), "{want} in {redactions:?}");
    }
    // The approvals journal and the approvers see the same hash.
    let approvals: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for a in &approvals {
        let want = if a["idempotency_key"].as_str().unwrap().ends_with(":pay-3") {
            &other
        } else {
            &hashed
        };
        assert_eq!(a["action"]["input"]["iban"], want.as_str(), "{a}");
        assert_eq!(a["action"]["request"]["body"]["iban"], want.as_str(), "{a}");
    }
    let pending = events("/approver");
    assert!(
        pending.iter().any(|e| e["event"] == "approval.pending"
            && e["approval"]["action"]["request"]["body"]["iban"] == hashed.as_str()),
        "{pending:?}"
    );
    // The owner (tier 2) sees the kept fields and the hash, not the card.
    let supervised = events("/owner");
    let notice = supervised
        .iter()
        .find(|e| e["event"] == "action.supervised")
        .expect("owner notice");
    assert_eq!(
        notice["request"]["body"],
        json!({"iban": hashed, "status": "preferred"}),
        "{notice}"
    );
    assert!(events("/soc").iter().any(|e| e["event"] == "action.halted"));
}
