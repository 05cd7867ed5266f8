use std::time::Duration;

use super::*;
use crate::grants::GrantKind;

fn bounds() -> GrantBounds {
    GrantBounds {
        kinds: vec![GrantKind::Egress, GrantKind::Tool],
        targets: vec!["198.51.100.9:8080".into(), "refund".into(), "wipe".into()],
        max_ttl: Duration::from_secs(3600),
        approvers: vec![],
        never: vec!["wipe".into()],
    }
}

fn req(kind: GrantKind, target: &str, ttl: u64) -> GrantRequest {
    GrantRequest {
        agent: "payer".into(),
        kind,
        target: target.into(),
        purpose: "incident 42".into(),
        ttl_secs: ttl,
        requested_by: "payer".into(),
    }
}

#[test]
fn a_grant_goes_from_request_to_approval_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = GrantStore::open(dir.path(), bounds()).unwrap();
    let g = store
        .request(req(GrantKind::Egress, "198.51.100.9:8080", 60))
        .unwrap();
    assert_eq!(g.state, GrantState::Pending);
    assert!(store.in_force().is_empty());
    let g = store.approve(&g.id, "lead@example.test", "ok").unwrap();
    assert_eq!(g.state, GrantState::Approved);
    assert_eq!(store.in_force().len(), 1);
    let (again, expired) = GrantStore::open(dir.path(), bounds()).unwrap();
    assert!(expired.is_empty());
    assert_eq!(again.in_force(), vec![g]);
}

#[test]
fn requests_outside_the_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = GrantStore::open(dir.path(), bounds()).unwrap();
    for (r, what) in [
        (req(GrantKind::Tool, "wipe", 60), "never"),
        (req(GrantKind::Egress, "198.51.100.9:8080", 3601), "ttl"),
        (req(GrantKind::Egress, "198.51.100.9:8080", 0), "ttl 0"),
        (
            req(GrantKind::Egress, "198.51.100.9:8081", 60),
            "other port",
        ),
        (req(GrantKind::Egress, "198.51.100.9", 60), "no port"),
        (req(GrantKind::Action, "refund", 60), "kind"),
    ] {
        assert!(store.request(r).is_err(), "{what} was accepted");
    }
    assert!(store.list(None).is_empty());
}

#[test]
fn the_agent_cannot_approve_its_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = GrantStore::open(dir.path(), bounds()).unwrap();
    let g = store.request(req(GrantKind::Tool, "refund", 60)).unwrap();
    for me in ["payer", "PAYER", " payer "] {
        assert!(matches!(
            store.approve(&g.id, me, "mine"),
            Err(GrantError::SelfApproval { .. })
        ));
    }
    assert_eq!(store.list(Some(GrantState::Pending)).len(), 1);
}

#[test]
fn listed_approvers_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = bounds();
    b.approvers = vec!["sec@example.test".into()];
    let (store, _) = GrantStore::open(dir.path(), b).unwrap();
    let g = store.request(req(GrantKind::Tool, "refund", 60)).unwrap();
    assert!(store.approve(&g.id, "other@example.test", "").is_err());
    assert!(store.approve(&g.id, "sec@example.test", "").is_ok());
}

#[test]
fn expiry_and_revocation_end_a_grant_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = GrantStore::open(dir.path(), bounds()).unwrap();
    let a = store.request(req(GrantKind::Tool, "refund", 60)).unwrap();
    let a = store.approve(&a.id, "lead", "").unwrap();
    let b = store.request(req(GrantKind::Tool, "refund", 60)).unwrap();
    let b = store.approve(&b.id, "lead", "").unwrap();
    let gone = store.expire_due(a.expires_at.unwrap() + 5).unwrap();
    assert_eq!(gone.len(), 2);
    assert!(store.in_force().is_empty());
    assert!(
        store.revoke(&a.id, "lead", "").is_err(),
        "expired stays expired"
    );
    assert!(store.approve(&b.id, "lead", "").is_err());
    let (again, _) = GrantStore::open(dir.path(), bounds()).unwrap();
    assert!(again.in_force().is_empty());
    assert_eq!(again.list(Some(GrantState::Expired)).len(), 2);

    let c = store.request(req(GrantKind::Tool, "refund", 60)).unwrap();
    store.approve(&c.id, "lead", "").unwrap();
    store.revoke(&c.id, "lead", "done").unwrap();
    assert!(store.in_force().is_empty());
    assert!(store.revoke(&c.id, "lead", "").is_err());
}

#[test]
fn bounds_narrowed_after_the_request_refuse_the_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = GrantStore::open(dir.path(), bounds()).unwrap();
    let g = store.request(req(GrantKind::Tool, "refund", 60)).unwrap();
    let mut narrowed = bounds();
    narrowed.never.push("refund".into());
    let (store, _) = GrantStore::open(dir.path(), narrowed).unwrap();
    assert!(matches!(
        store.approve(&g.id, "lead", ""),
        Err(GrantError::NeverGrantable { .. })
    ));
}

#[tokio::test]
async fn the_timer_expires_grants_without_their_use() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = GrantStore::open(dir.path(), bounds()).unwrap();
    let g = store.request(req(GrantKind::Tool, "refund", 1)).unwrap();
    store.approve(&g.id, "lead", "").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(run_expiry(
        store.clone(),
        Duration::from_millis(200),
        move |g| {
            let _ = tx.send(g.id.clone());
        },
    ));
    let id = tokio::time::timeout(Duration::from_secs(4), rx.recv())
        .await
        .expect("expired within 4 s")
        .unwrap();
    assert_eq!(id, g.id);
    assert_eq!(store.list(Some(GrantState::Expired)).len(), 1);
    task.abort();
}
