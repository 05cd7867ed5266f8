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
    process::Command,
    time::Duration,
};

use agent_sidecar_tests::{
    pay::{BASE, PayWorld, Running, SECRET, records, text, wait_for, wait_or},
    privileged, sidecar_bin, unique,
};
use serde_json::Value;

/// Tier-3 payments the agent asks for, each under its own idempotency key.
const PAYMENTS: usize = 6;

/// The curl call of payment `i` (tier 3): the same bytes in both runs, so
/// that a retry matches its approval's binding.
fn payment(i: usize) -> String {
    format!(
        "curl -sS -o /dev/null -w 'pay-{i} %{{http_code}}\\n' --max-time 120 -X POST \
         -H 'Idempotency-Key: pay-{i}' -H 'Content-Type: application/json' \
         --data '{{\"amount\":5000,\"vendor\":\"v-{i}\"}}' {BASE}/v1/payments"
    )
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
    let world = PayWorld::new();
    let (d, tool) = (&world.d, &world.tool);

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
