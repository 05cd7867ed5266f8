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
    assert!(matches!(&a, ApprovalOutcome::Approved(d) if d.by == "alice"));
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
    let options = ApprovalStoreOptions {
        notifier: Some(recorder.clone()),
        metrics: Some(ApprovalMetrics::register(&registry).expect("metrics")),
        ..ApprovalStoreOptions::default()
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
    assert!(matches!(outcome, ApprovalOutcome::Expired { .. }));
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

#[tokio::test]
async fn a_retry_with_other_bytes_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("opens");
    let first = store.request("k", sample_request()).await.expect("request");
    let changed = NewApproval {
        binding: "sha256:ff".into(),
        ..sample_request()
    };
    assert!(matches!(
        store.request("k", changed).await,
        Err(ApprovalError::KeyReused(id)) if id == *first.id()
    ));
}

#[tokio::test]
async fn cancellation_wakes_waiters_tells_approvers_and_is_final() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Arc::new(Recorder::default());
    let registry = prometheus::Registry::new();
    let options = ApprovalStoreOptions {
        notifier: Some(recorder.clone()),
        metrics: Some(ApprovalMetrics::register(&registry).expect("metrics")),
        ..ApprovalStoreOptions::default()
    };
    let (store, _) = ApprovalStore::open_with(dir.path(), options)
        .await
        .expect("opens");
    let pending = store.request("a", sample_request()).await.expect("a");
    let approved = store.request("b", sample_request()).await.expect("b");
    store
        .approve(approved.id(), "alice", "ok")
        .await
        .expect("approve");
    let other_agent = NewApproval {
        agent_id: "agent-8".into(),
        ..sample_request()
    };
    let other = store.request("c", other_agent).await.expect("c");
    let waiter = tokio::spawn({
        let h = pending.clone();
        async move { h.wait().await }
    });
    let cancelled = store
        .cancel_agent("agent-7", "the agent was quarantined")
        .await
        .expect("cancel");
    assert_eq!(cancelled.len(), 2, "pending and approved-not-forwarded");
    let outcome = waiter.await.expect("join").expect("outcome");
    assert!(
        matches!(&outcome, ApprovalOutcome::Cancelled { reason, .. } if reason.contains("quarantined")),
        "{outcome:?}"
    );
    assert!(matches!(
        store.approve(pending.id(), "bob", "late").await,
        Err(ApprovalError::AlreadyDecided {
            state: "cancelled",
            ..
        })
    ));
    assert!(approved.claim_forward().await.is_err());
    assert_eq!(
        store.get(other.id()).await.expect("get").state,
        ApprovalState::Pending,
        "another agent's approval is untouched"
    );
    let events = recorder.0.lock().expect("lock").clone();
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == &("decided", "cancelled".to_string()))
            .count(),
        2,
        "{events:?}"
    );
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encodes");
    assert!(
        text.contains("agent_sidecar_approvals_total{outcome=\"cancelled\"} 2"),
        "{text}"
    );
    // Survives a restart.
    drop(store);
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("reopens");
    assert_eq!(
        store.get(pending.id()).await.expect("get").state.name(),
        "cancelled"
    );
}

#[tokio::test]
async fn the_claim_runs_the_check_and_cancels_on_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = ApprovalStore::open(dir.path()).await.expect("opens");
    let h = store.request("k", sample_request()).await.expect("request");
    store.approve(h.id(), "alice", "ok").await.expect("approve");
    let refused = store
        .claim_forward_checked(h.id(), |_| Err("policy v2 denies it".into()))
        .await;
    assert!(
        matches!(&refused, Err(ApprovalError::Cancelled { reason, .. }) if reason == "policy v2 denies it"),
        "{refused:?}"
    );
    assert!(matches!(
        store.claim_forward_checked(h.id(), |_| Ok(())).await,
        Err(ApprovalError::Cancelled { .. })
    ));
    let h2 = store
        .request("k2", sample_request())
        .await
        .expect("request");
    store
        .approve(h2.id(), "alice", "ok")
        .await
        .expect("approve");
    let _token = store
        .claim_forward_checked(h2.id(), |_| Ok(()))
        .await
        .expect("claimed");
    assert!(matches!(
        store.claim_forward_checked(h2.id(), |_| Ok(())).await,
        Err(ApprovalError::AlreadyForwarded(_))
    ));
}

#[tokio::test]
async fn pending_approvals_are_capped_per_agent_and_refusals_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = prometheus::Registry::new();
    let options = ApprovalStoreOptions {
        config: StoreConfig {
            max_pending_per_agent: 2,
            ..StoreConfig::default()
        },
        metrics: Some(ApprovalMetrics::register(&registry).expect("metrics")),
        ..ApprovalStoreOptions::default()
    };
    let (store, _) = ApprovalStore::open_with(dir.path(), options)
        .await
        .expect("opens");
    let a = store.request("a", sample_request()).await.expect("a");
    store.request("b", sample_request()).await.expect("b");
    assert!(matches!(
        store.request("c", sample_request()).await,
        Err(ApprovalError::TooManyPending { limit: 2, .. })
    ));
    store
        .request("a", sample_request())
        .await
        .expect("a retry attaches");
    let other = NewApproval {
        agent_id: "agent-8".into(),
        ..sample_request()
    };
    store.request("d", other).await.expect("another agent");
    store.deny(a.id(), "bob", "no").await.expect("deny");
    store
        .request("c", sample_request())
        .await
        .expect("room again");
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encodes");
    assert!(
        text.contains("agent_sidecar_approvals_refused_total{reason=\"too_many_pending\"} 1"),
        "{text}"
    );
}
