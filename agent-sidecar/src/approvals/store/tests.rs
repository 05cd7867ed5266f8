use std::{sync::Mutex as StdMutex, time::Duration};

use super::*;
use crate::approvals::model::tests::sample_request;

fn with_sla(sla: Duration) -> NewApproval {
    NewApproval {
        sla,
        ..sample_request()
    }
}

#[derive(Default)]
struct Recorder(StdMutex<Vec<(&'static str, String)>>);

impl Notifier for Recorder {
    fn pending(&self, a: &PendingApproval) {
        self.0
            .lock()
            .expect("lock")
            .push(("pending", a.state.name().into()));
    }
    fn decided(&self, a: &PendingApproval) {
        self.0
            .lock()
            .expect("lock")
            .push(("decided", a.state.name().into()));
    }
}

#[tokio::test]
async fn waiters_see_the_approval_and_only_one_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("opens");
    let first = store
        .request("key", sample_request())
        .await
        .expect("request");
    let retry = store.request("key", sample_request()).await.expect("retry");
    assert!(first.created() && !retry.created());
    assert_eq!(first.id(), retry.id());
    let waits = tokio::spawn({
        let (a, b) = (first.clone(), retry.clone());
        async move { tokio::join!(a.wait(), b.wait()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .approve(first.id(), "alice", "looks right")
        .await
        .expect("approve");
    let (a, b) = waits.await.expect("join");
    let (a, b) = (a.expect("outcome"), b.expect("outcome"));
    assert_eq!(a, b);
    assert!(matches!(&a, Outcome::Approved(d) if d.by == "alice"));
    let (c1, c2) = tokio::join!(first.claim_forward(), retry.claim_forward());
    assert_eq!(c1.is_ok() as u8 + c2.is_ok() as u8, 1, "{c1:?} {c2:?}");
    let token = c1.or(c2).expect("one claim");
    store
        .record_upstream_status(token, 200)
        .await
        .expect("status");
    let state = store.get(first.id()).await.expect("get").state;
    assert!(matches!(
        state,
        ApprovalState::Forwarded {
            upstream_status: Some(200),
            ..
        }
    ));
    assert_eq!(
        first.wait().await.expect("still approved").label(),
        "approved"
    );
}

#[tokio::test]
async fn deny_resolves_waiters_and_is_final() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("opens");
    let h = store.request("k", sample_request()).await.expect("request");
    let waiter = tokio::spawn({
        let h = h.clone();
        async move { h.wait().await }
    });
    store.deny(h.id(), "bob", "too much").await.expect("deny");
    let outcome = waiter.await.expect("join").expect("outcome");
    assert!(!outcome.is_approved());
    assert!(matches!(
        store.approve(h.id(), "eve", "override").await,
        Err(ApprovalError::AlreadyDecided {
            state: "denied",
            ..
        })
    ));
    assert!(matches!(
        h.claim_forward().await,
        Err(ApprovalError::NotApproved { .. })
    ));
}

#[tokio::test]
async fn sla_expiry_denies_and_notifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Arc::new(Recorder::default());
    let registry = prometheus::Registry::new();
    let options = StoreOptions {
        notifier: Some(recorder.clone()),
        metrics: Some(ApprovalMetrics::register(&registry).expect("metrics")),
        ..StoreOptions::default()
    };
    let (store, _) = ApprovalStore::open_with(dir.path(), options)
        .await
        .expect("opens");
    let h = store
        .request("k", with_sla(Duration::from_millis(100)))
        .await
        .expect("request");
    let outcome = tokio::time::timeout(Duration::from_secs(5), h.wait())
        .await
        .expect("expires in time")
        .expect("outcome");
    assert!(matches!(outcome, Outcome::Expired { .. }));
    assert!(matches!(
        store.approve(h.id(), "late", "sorry").await,
        Err(ApprovalError::AlreadyDecided {
            state: "expired",
            ..
        })
    ));
    let events = recorder.0.lock().expect("lock").clone();
    assert_eq!(
        events,
        vec![("pending", "pending".into()), ("decided", "expired".into())]
    );
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode");
    assert!(
        text.contains("agent_sidecar_approvals_total{outcome=\"expired\"} 1"),
        "{text}"
    );
    assert!(text.contains("agent_sidecar_approvals_pending 0"), "{text}");
}

#[tokio::test]
async fn pending_approvals_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("opens");
    let id = store
        .request("k", sample_request())
        .await
        .expect("request")
        .id()
        .clone();
    drop(store);

    let (store, report) = ApprovalStore::open(dir.path()).await.expect("reopens");
    assert_eq!((report.records, report.pending), (1, 1));
    let h = store.request("k", sample_request()).await.expect("retry");
    assert!(!h.created());
    assert_eq!(h.id(), &id);
    store.approve(&id, "carol", "fine").await.expect("approve");
    assert!(h.wait().await.expect("outcome").is_approved());
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("opens");
    let id = ApprovalId::random();
    assert!(matches!(
        store.wait(&id).await,
        Err(ApprovalError::NotFound(_))
    ));
    assert!(matches!(
        store.deny(&id, "a", "b").await,
        Err(ApprovalError::NotFound(_))
    ));
    assert!(store.list(None).await.expect("list").is_empty());
}
