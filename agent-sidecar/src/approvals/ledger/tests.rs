use std::time::Duration;

use super::*;
use crate::approvals::model::tests::sample_request;

const T0: UnixMillis = UnixMillis(1_000_000);

fn open(dir: &Path, config: StoreConfig) -> Ledger {
    Ledger::open(dir, config, T0).expect("opens").0
}

#[test]
fn same_key_attaches_to_the_same_approval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = open(dir.path(), StoreConfig::default());
    let (a, created) = l
        .request("k".into(), sample_request(), T0)
        .expect("request");
    let (b, again) = l.request("k".into(), sample_request(), T0).expect("retry");
    assert!(created && !again);
    assert_eq!(a.id, b.id);
    let (c, _) = l
        .request("other".into(), sample_request(), T0)
        .expect("request");
    assert_ne!(a.id, c.id);
    assert_eq!(l.pending_count(), 2);
}

#[test]
fn a_key_cannot_cover_another_action_or_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = open(dir.path(), StoreConfig::default());
    let (a, _) = l
        .request("k".into(), sample_request(), T0)
        .expect("request");
    let mut other_bytes = sample_request();
    other_bytes.action.input = serde_json::json!({"amount": 1_000_000});
    other_bytes.binding = "sha256:01".into();
    let mut other_agent = sample_request();
    other_agent.agent_id = "agent-8".into();
    let mut other_action = sample_request();
    other_action.action.action = "close_account".into();
    for req in [other_bytes, other_agent, other_action] {
        let err = l.request("k".into(), req, T0).expect_err("refused");
        assert!(
            matches!(&err, ApprovalError::KeyReused(id) if *id == a.id),
            "{err}"
        );
    }
    assert_eq!(l.pending_count(), 1);
}

#[test]
fn decisions_are_final() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = open(dir.path(), StoreConfig::default());
    let (a, _) = l
        .request("k".into(), sample_request(), T0)
        .expect("request");
    let d = l
        .decide(&a.id, Verdict::Deny, &named("bob"), "no".into(), T0)
        .expect("deny")
        .record();
    assert_eq!(d.state.name(), "denied");
    let again = l.decide(&a.id, Verdict::Approve, &named("eve"), "yes".into(), T0);
    assert!(matches!(
        again,
        Err(ApprovalError::AlreadyDecided {
            state: "denied",
            ..
        })
    ));
    assert!(matches!(
        l.claim_forward(&a.id, T0),
        Err(ApprovalError::NotApproved { .. })
    ));
}

#[test]
fn late_decisions_expire_instead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = open(dir.path(), StoreConfig::default());
    let (a, _) = l
        .request("k".into(), sample_request(), T0)
        .expect("request");
    let late = a.sla_deadline;
    assert_eq!(
        l.expire(&a.id, UnixMillis(late.0 - 1)).expect("not due"),
        None
    );
    let r = l
        .decide(&a.id, Verdict::Approve, &named("al"), "ok".into(), late)
        .expect("recorded")
        .record();
    assert_eq!(r.state, ApprovalState::Expired { at: late });
}

#[test]
fn forward_is_claimed_once_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = open(dir.path(), StoreConfig::default());
    let (a, _) = l
        .request("k".into(), sample_request(), T0)
        .expect("request");
    l.decide(&a.id, Verdict::Approve, &named("al"), "ok".into(), T0)
        .expect("approve");
    l.claim_forward(&a.id, T0).expect("first claim");
    assert!(matches!(
        l.claim_forward(&a.id, T0),
        Err(ApprovalError::AlreadyForwarded(_))
    ));
    l.record_upstream(&a.id, 201, T0).expect("status");
    drop(l);
    let mut l = open(dir.path(), StoreConfig::default());
    assert!(matches!(
        l.claim_forward(&a.id, T0),
        Err(ApprovalError::AlreadyForwarded(_))
    ));
    let ApprovalState::Forwarded {
        upstream_status,
        approved,
        ..
    } = &l.get(&a.id).expect("kept").state
    else {
        panic!("not forwarded");
    };
    assert_eq!((*upstream_status, approved.by.as_str()), (Some(201), "al"));
}

#[test]
fn overdue_approvals_expire_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = open(dir.path(), StoreConfig::default());
    let (a, _) = l
        .request("k".into(), sample_request(), T0)
        .expect("request");
    let (b, _) = l
        .request("k2".into(), sample_request(), T0)
        .expect("request");
    drop(l);
    let later = T0.plus(Duration::from_secs(3600));
    let (l, report, expired) =
        Ledger::open(dir.path(), StoreConfig::default(), later).expect("reopens");
    assert_eq!(report.records, 2);
    assert_eq!(report.pending, 0);
    let mut ids = report.expired_on_open.clone();
    ids.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(expired.len(), 2);
    assert_eq!(
        l.get(&a.id).expect("kept").state,
        ApprovalState::Expired { at: later }
    );
}

#[test]
fn compaction_keeps_live_and_recent_records_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        compact_above_bytes: 4096,
        retain_decided: Duration::from_secs(60),
        ..StoreConfig::default()
    };
    let mut l = open(dir.path(), config.clone());
    let (old, _) = l
        .request("old".into(), sample_request(), T0)
        .expect("request");
    l.decide(&old.id, Verdict::Deny, &named("b"), "no".into(), T0)
        .expect("deny")
        .record();
    let (live, _) = l
        .request("live".into(), sample_request(), T0)
        .expect("request");
    let later = T0.plus(Duration::from_secs(120));
    for i in 0..20 {
        let (r, _) = l
            .request(format!("k{i}"), sample_request(), later)
            .expect("request");
        l.decide(&r.id, Verdict::Deny, &named("b"), "no".into(), later)
            .expect("deny")
            .record();
    }
    let lines = std::fs::read_to_string(l.journal.path())
        .expect("read")
        .lines()
        .count();
    assert!(lines < 43, "43 appends, {lines} lines: compaction ran");
    assert!(matches!(l.get(&old.id), Err(ApprovalError::NotFound(_))));
    let (again, created) = l
        .request("old".into(), sample_request(), later)
        .expect("request");
    assert!(created && again.id != old.id, "dropped key is free again");
    drop(l);
    let l = open(dir.path(), config);
    assert_eq!(
        l.get(&live.id).expect("live kept").state,
        ApprovalState::Pending
    );
    assert!(matches!(l.get(&old.id), Err(ApprovalError::NotFound(_))));
    assert_eq!(l.list(Some("denied")).len(), 20);
}

fn named(name: &str) -> Decider {
    Decider::Named(name.into())
}
