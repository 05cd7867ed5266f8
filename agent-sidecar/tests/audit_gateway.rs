//! The audit trail behind the tool gateway, with curl as the agent and a
//! real HTTPS tool API: every call at every tier leaves an attempt record
//! (written before the call goes further: fsynced for tier >= 2) and an
//! outcome record; approvals and compensations leave theirs; the log
//! verifies with `agent-sidecar audit verify` and `audit query` finds the
//! calls; the raw body never reaches the log; a log that cannot take a
//! record refuses the call before it reaches the tool (or, with fail-open,
//! lets it through, counted).

use std::{path::Path, process::Command, time::Duration};

use agent_sidecar::{
    audit::{AuditRecord, Phase, RecordKind, query},
    events::AuditOptions,
};
use agent_sidecar_test_support::{
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
};
use serde_json::json;

fn with_audit(fail_open: bool) -> Options {
    Options {
        audit: Some(AuditOptions {
            fail_open,
            ..AuditOptions::default()
        }),
        ..Options::default()
    }
}

fn records(dir: &Path) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    query::query(dir, &query::QueryFilter::default(), |r, _| {
        out.push(r.clone());
        std::ops::ControlFlow::Continue(())
    })
    .expect("query");
    out
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
}

/// curl arguments for `method path` with a JSON `body`.
fn call(h: &Harness, method: &str, path: &str, body: Option<serde_json::Value>) -> Vec<String> {
    let mut args = h.explicit_args();
    args.extend(["-X".to_string(), method.to_string()]);
    if let Some(b) = body {
        args.extend([
            "-H".into(),
            "content-type: application/json".into(),
            "-d".into(),
            b.to_string(),
        ]);
    }
    args.push(h.url(path));
    args
}

/// The attempt and outcome records of the calls to `tool`/`action`.
fn of_action<'a>(rs: &'a [AuditRecord], action: &str) -> Vec<&'a AuditRecord> {
    rs.iter()
        .filter(|r| {
            r.kind == RecordKind::ToolCall
                && r.action.as_ref().and_then(|a| a.name.as_deref()) == Some(action)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tier_leaves_an_attempt_and_an_outcome_that_verify_and_query_find() {
    let mut h = Harness::start(with_audit(false)).await;
    let dir = h.audit.as_ref().unwrap().dir().to_path_buf();
    // Tier 1, tier 2 (with a compensation), deny.
    let (s, _) = curl(&call(&h, "GET", "/v1/invoices", None), &[]).await;
    assert_eq!(s, 200);
    let (s, _) = curl(
        &call(&h, "PATCH", "/v1/vendors/7", Some(json!({"name": "ACME"}))),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = curl(&call(&h, "GET", "/v1/accounts/1/secrets", None), &[]).await;
    assert_eq!(s, 403);
    // Tier 3: held, approved, forwarded. The body carries a secret field
    // the policy never declared: it must appear in no record.
    let args = call(
        &h,
        "POST",
        "/v1/payments",
        Some(json!({"amount": 5000, "iban": "DE89370400440532013000"})),
    );
    let held = tokio::spawn(async move { curl(&args, &["--max-time", "20"]).await });
    let approval = loop {
        let list = h.approvals.list(Some("pending")).await.unwrap();
        if let Some(a) = list.into_iter().next() {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    h.approvals
        .approve(&approval.id, "cfo@example.test", "invoice 42 checked")
        .await
        .unwrap();
    let (s, body) = held.await.unwrap();
    assert_eq!(s, 200, "{body}");
    // Tier 4 with quarantine, last.
    let (s, _) = curl(&call(&h, "DELETE", "/v1/vendors", None), &[]).await;
    assert_eq!(s, 403);
    h.close_audit().await;

    let rs = records(&dir);
    let kinds: Vec<RecordKind> = rs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds.first(),
        Some(&RecordKind::SidecarStarted),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&RecordKind::SidecarStopped), "{kinds:?}");
    for (action, tier, outcome) in [
        ("list_invoices", 1, "success"),
        ("update_vendor", 2, "success"),
        ("account_secrets", 4, "refused"),
        ("pay", 3, "success"),
        ("delete_vendors", 4, "refused"),
    ] {
        let calls = of_action(&rs, action);
        assert_eq!(
            calls.len(),
            2,
            "{action}: one attempt, one outcome: {calls:#?}"
        );
        let (attempt, end) = (calls[0], calls[1]);
        assert_eq!(attempt.phase, Phase::Attempt, "{action}");
        assert_eq!(end.phase, Phase::Outcome, "{action}");
        assert!(attempt.seq < end.seq);
        assert_eq!(attempt.policy.as_ref().unwrap().tier, tier, "{action}");
        assert_eq!(
            end.outcome.as_ref().unwrap().status.as_str(),
            outcome,
            "{action}"
        );
        let (a, b) = (attempt.trace.as_ref().unwrap(), end.trace.as_ref().unwrap());
        assert_eq!(
            a, b,
            "{action}: attempt and outcome share the trace and span"
        );
        assert_eq!(
            end.agent.owner.as_deref().map(|o| !o.is_empty()),
            Some(true)
        );
        assert!(
            !end.policy.as_ref().unwrap().version.is_empty()
                && !end.policy.as_ref().unwrap().rules.is_empty()
        );
    }
    let pay = of_action(&rs, "pay");
    assert_eq!(
        pay[0].outcome.as_ref().unwrap().status.as_str(),
        "pending",
        "a held call's first record"
    );
    assert_eq!(
        pay[1].oversight.as_ref().unwrap().approval_id.as_deref(),
        Some(approval.id.to_string().as_str())
    );
    let decided = rs
        .iter()
        .find(|r| r.kind == RecordKind::ApprovalDecided)
        .expect("approval_decided");
    let o = decided.oversight.as_ref().unwrap();
    assert_eq!(o.approver.as_deref(), Some("cfo@example.test"));
    assert_eq!(o.reason.as_deref(), Some("invoice 42 checked"));
    assert!(kinds.contains(&RecordKind::ApprovalRequested), "{kinds:?}");
    assert!(
        kinds.contains(&RecordKind::CompensationDeclared),
        "{kinds:?}"
    );
    assert!(kinds.contains(&RecordKind::Quarantine), "{kinds:?}");
    assert!(
        of_action(&rs, "update_vendor")[1]
            .oversight
            .as_ref()
            .and_then(|o| o.compensation_id.as_ref())
            .is_some()
    );
    // The declared attribute is kept, the undeclared field is not.
    let input = &pay[0].input.as_ref().expect("declared attributes").value;
    assert!(
        input.get("amount").is_some() && input.to_string().contains("5000"),
        "{input}"
    );
    for entry in walk(&dir) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("DE89370400440532013000"),
            "the raw body reached {}",
            entry.display()
        );
    }

    let verify = bin()
        .args(["audit", "verify"])
        .arg(&dir)
        .arg("--key")
        .arg(dir.join("log.vkey"))
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let q = bin()
        .args(["audit", "query"])
        .arg(&dir)
        .args(["--agent", "buyer", "--tier", "3", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        q.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&q.stderr)
    );
    let found: Vec<serde_json::Value> = String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(json_of)
        .collect();
    assert!(
        found
            .iter()
            .filter(|r| r["kind"] == "tool_call" && r["action"]["name"] == "pay")
            .count()
            == 2,
        "{found:#?}"
    );
    assert!(found.iter().all(|r| r["policy"]["tier"] == 3), "{found:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_calls_are_journalled_before_the_tool_sees_them() {
    let mut h = Harness::start(with_audit(false)).await;
    let dir = h.audit.as_ref().unwrap().dir().to_path_buf();
    let mut args = h.explicit_args();
    let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_customer", "arguments": {"id": "c-1"}}});
    args.extend(
        [
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/json, text/event-stream",
            "-d",
            &msg.to_string(),
        ]
        .map(String::from),
    );
    args.push(h.url("/mcp"));
    let (s, body) = curl(&args, &[]).await;
    assert_eq!(s, 200, "{body}");
    h.audit.take().unwrap().close(json!({})).unwrap();
    let rs = records(&dir);
    let calls = of_action(&rs, "lookup");
    assert_eq!(calls.len(), 2, "{rs:#?}");
    assert_eq!(calls[0].phase, Phase::Attempt);
    let target = calls[0].action.as_ref().unwrap().target.as_ref().unwrap();
    assert_eq!(target.mcp_tool.as_deref(), Some("get_customer"));
    assert_eq!(
        calls[1].outcome.as_ref().unwrap().status.as_str(),
        "success"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_take_the_record_refuses_the_call_before_the_tool_sees_it() {
    let h = Harness::start(with_audit(false)).await;
    // The log stops taking records (as when its disk fills: the same
    // refusal path; the disk-full case itself is tests/tests/audit_disk_full.rs).
    h.audit.as_ref().unwrap().sink().log().close().unwrap();
    let before = h.api.requests().len();
    for (method, path, body) in [
        ("GET", "/v1/invoices", None),
        ("PATCH", "/v1/vendors/7", Some(json!({"name": "x"}))),
    ] {
        let (s, body) = curl(&call(&h, method, path, body), &[]).await;
        assert_eq!(s, 503, "{body}");
        let v = json_of(&body);
        assert_eq!(v["error"]["reason"], "audit_unavailable", "{body}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("audit record could not be written"),
            "{body}"
        );
    }
    assert_eq!(h.api.requests().len(), before, "nothing reached the tool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_lets_the_call_through_and_counts_it() {
    let h = Harness::start(with_audit(true)).await;
    h.audit.as_ref().unwrap().sink().log().close().unwrap();
    let before = h.api.requests().len();
    let (s, body) = curl(&call(&h, "GET", "/v1/invoices", None), &[]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(h.api.requests().len(), before + 1);
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
