//! Shadow policies: the tool calls of a real gateway's audit trail (curl
//! as the agent) replayed under two policy versions with
//! `agent-sidecar policy shadow-report --replay`. The report lists
//! exactly the decisions the candidate changes, with their record ids,
//! and nothing else.

use std::{path::Path, process::Command};

use agent_sidecar::{
    audit::{AuditRecord, Phase, RecordKind, query},
    events::AuditOptions,
};
use agent_sidecar_test_support::{
    curl::curl,
    sidecar::gateway::{Harness, Options},
};
use serde_json::{Value, json};

fn outcomes(dir: &Path) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    query::query(dir, &query::QueryFilter::default(), |r, _| {
        if r.kind == RecordKind::ToolCall && r.phase == Phase::Outcome {
            out.push(r.clone());
        }
        std::ops::ControlFlow::Continue(())
    })
    .expect("query");
    out
}

fn call(h: &Harness, method: &str, path: &str, extra: &[&str]) -> Vec<String> {
    let mut args = h.explicit_args();
    args.extend(["-X".to_string(), method.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(h.url(path));
    args
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn shadow_report(trail: &Path, active: &Path, candidate: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args(["policy", "shadow-report", "--replay"])
        .arg(trail)
        .arg("--active")
        .arg(active)
        .arg("--candidate")
        .arg(candidate)
        .args(extra)
        .output()
        .expect("agent-sidecar runs");
    assert!(
        out.status.code() != Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_shows_exactly_the_decisions_the_candidate_changes() {
    let mut h = Harness::start(Options {
        audit: Some(AuditOptions::default()),
        ..Options::default()
    })
    .await;
    let trail = h.audit.as_ref().unwrap().dir().to_path_buf();
    let json_body = |amount: u32| {
        vec![
            "-H".to_string(),
            "content-type: application/json".into(),
            "-d".into(),
            json!({"amount": amount}).to_string(),
        ]
    };
    // Five tier-1 calls under the policy in force (v1).
    let calls: Vec<(String, String, Vec<String>)> = vec![
        ("GET".into(), "/v1/invoices".into(), vec![]),
        ("POST".into(), "/v1/payments".into(), json_body(20)),
        ("POST".into(), "/v1/payments".into(), json_body(700)),
        ("POST".into(), "/v1/payments".into(), json_body(800)),
        (
            "POST".into(),
            "/v1/wires".into(),
            vec![
                "-H".into(),
                "x-amount: 50".into(),
                "--data-binary".into(),
                "n=1".into(),
            ],
        ),
    ];
    for (method, path, extra) in &calls {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (status, body) = curl(&call(&h, method, path, &extra), &[]).await;
        assert_eq!(status, 200, "{method} {path}: {body}");
    }
    h.close_audit().await;
    let recorded = outcomes(&trail);
    assert_eq!(recorded.len(), 5, "one outcome record per call");
    let id_of = |action: &str, amount: Option<u64>| -> Vec<String> {
        recorded
            .iter()
            .filter(|r| {
                let a = r.action.as_ref().unwrap();
                a.name.as_deref() == Some(action)
                    && amount.is_none_or(|n| {
                        a.attributes
                            .as_ref()
                            .and_then(|v| v["amount"]["value"].as_f64())
                            == Some(n as f64)
                    })
            })
            .map(|r| r.id.clone())
            .collect()
    };

    // v2: payments need approval from 500 (the rule renamed with it), and
    // wires are refused outright; everything else is the same.
    let v1 = h.policy_dir.clone();
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2");
    copy_dir(&v1, &v2);
    let base = std::fs::read_to_string(v2.join("base.yaml")).unwrap();
    let old_rule = "  - id: payments-over-1000-need-approval\n    when: { tool: erp, action: pay, amount: { gt: 1000 } }\n";
    assert!(base.contains(old_rule), "the fixture changed");
    let base = base.replace(
        old_rule,
        "  - id: payments-over-500-need-approval\n    when: { tool: erp, action: pay, amount: { gt: 500 } }\n",
    ) + "  - id: no-wires\n    when: { tool: erp, action: wire }\n    tier: deny\n";
    std::fs::write(v2.join("base.yaml"), base).unwrap();

    let (code, text) = shadow_report(&trail, &v1, &v2, &["--json", "--exit-code"]);
    assert_eq!(code, 1, "--exit-code: differences found");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["actions"], 5);
    assert_eq!(report["skipped"], 0);
    assert_eq!(report["differing"], 3);
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{text}");
    let (pay, wire) = (&changes[0], &changes[1]);
    assert_eq!(pay["kind"], "tier");
    assert_eq!(pay["count"], 2);
    assert_eq!(pay["active"]["tier"], 1);
    assert_eq!(
        pay["candidate"],
        json!({"tier": 3, "rules": ["payments-over-500-need-approval"]})
    );
    assert_eq!(pay["agents"], json!({"buyer": 2}));
    let mut expected = id_of("pay", Some(700));
    expected.extend(id_of("pay", Some(800)));
    assert_eq!(expected.len(), 2);
    assert_eq!(pay["examples"], json!(expected));
    assert_eq!(wire["count"], 1);
    assert_eq!(
        wire["candidate"],
        json!({"tier": "deny", "rules": ["no-wires"]})
    );
    assert_eq!(wire["examples"], json!(id_of("wire", None)));

    // The same version against itself: no difference, exit 0.
    let (code, text) = shadow_report(&trail, &v1, &v1, &["--exit-code"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("5 actions decided, 0 would differ"), "{text}");
    // Text report names the change and its records.
    let (_, text) = shadow_report(&trail, &v1, &v2, &[]);
    assert!(text.contains("tier x2: tier 1 ["), "{text}");
    assert!(
        text.contains("-> tier 3 [payments-over-500-need-approval]"),
        "{text}"
    );
    assert!(text.contains(&expected[0]), "{text}");
    // Only another agent's calls: nothing to replay.
    let (_, text) = shadow_report(&trail, &v1, &v2, &["--agent", "someone-else"]);
    assert!(text.contains("0 actions decided"), "{text}");
}

/// The candidate of the live test: approval from 500, wires refused.
fn stricter(dir: &Path) {
    let base = std::fs::read_to_string(dir.join("base.yaml")).unwrap();
    let base = base.replace(
        "  - id: payments-over-1000-need-approval\n    when: { tool: erp, action: pay, amount: { gt: 1000 } }\n",
        "  - id: payments-over-500-need-approval\n    when: { tool: erp, action: pay, amount: { gt: 500 } }\n",
    ) + "  - id: no-wires\n    when: { tool: erp, action: wire }\n    tier: deny\n";
    std::fs::write(dir.join("base.yaml"), base).unwrap();
}

/// Live: the candidate decides every call beside the active set; the
/// active decision is enforced (every call forwarded), each call the
/// candidate would decide otherwise is a `shadow_difference` record on the
/// call's trace, and `shadow-report --trail` groups them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_shadow_records_every_difference_and_enforces_only_the_active_set() {
    let mut h = Harness::start(Options {
        audit: Some(AuditOptions::default()),
        shadow: Some(stricter),
        ..Options::default()
    })
    .await;
    let trail = h.audit.as_ref().unwrap().dir().to_path_buf();
    let body = |amount: u32| json!({"amount": amount}).to_string();
    for (method, path, extra) in [
        ("GET", "/v1/invoices", vec![]),
        (
            "POST",
            "/v1/payments",
            vec!["-H", "content-type: application/json", "-d", &body(20)],
        ),
        (
            "POST",
            "/v1/payments",
            vec!["-H", "content-type: application/json", "-d", &body(700)],
        ),
        (
            "POST",
            "/v1/wires",
            vec!["-H", "x-amount: 50", "--data-binary", "n=1"],
        ),
    ] {
        let (status, answer) = curl(&call(&h, method, path, &extra), &[]).await;
        assert_eq!(
            status, 200,
            "the active set decides: {method} {path}: {answer}"
        );
    }
    assert_eq!(h.api.requests().len(), 4, "every call forwarded");
    h.close_audit().await;

    let mut diffs = Vec::new();
    let mut calls = Vec::new();
    query::query(&trail, &query::QueryFilter::default(), |r, _| {
        match r.kind {
            RecordKind::ShadowDifference => diffs.push(r.clone()),
            RecordKind::ToolCall if r.phase == Phase::Outcome => calls.push(r.clone()),
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(calls.len(), 4);
    assert_eq!(diffs.len(), 2, "{diffs:#?}");
    let pay = &diffs[0];
    let detail = pay.detail.as_ref().unwrap();
    assert_eq!(
        detail["difference"]["candidate"],
        json!({"tier": 3, "rules": ["payments-over-500-need-approval"]})
    );
    assert_eq!(detail["difference"]["active"]["tier"], 1);
    let pay_call = calls
        .iter()
        .find(|c| {
            c.action
                .as_ref()
                .unwrap()
                .attributes
                .as_ref()
                .is_some_and(|a| a["amount"]["value"] == 700.0)
        })
        .unwrap();
    assert_eq!(
        pay.trace.as_ref().unwrap().trace_id,
        pay_call.trace.as_ref().unwrap().trace_id,
        "the difference is on the call's trace"
    );
    assert_eq!(
        diffs[1].detail.as_ref().unwrap()["difference"]["candidate"]["tier"],
        "deny"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args(["policy", "shadow-report", "--json", "--trail"])
        .arg(&trail)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["actions"], 4);
    assert_eq!(report["differing"], 2);
    assert_eq!(report["changes"].as_array().unwrap().len(), 2);
    assert_eq!(report["changes"][0]["examples"], json!([pay.id]));
}
