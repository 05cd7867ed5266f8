use std::sync::Arc;

use super::*;
use crate::audit::{AuditConfig, query};

fn open(dir: &std::path::Path) -> AuditLog {
    let mut c = AuditConfig::new(dir, "test/audit", AgentIdentity::id("a"));
    c.fsync = crate::audit::FsyncPolicy::Always;
    AuditLog::open(c).expect("log")
}

#[test]
fn sidecar_lifecycle_becomes_records_with_the_agents_identity() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let identity = AgentIdentity {
        id: "buyer".into(),
        owner: Some("owner@example.test".into()),
        ..AgentIdentity::default()
    };
    let sink = Arc::new(AuditSink::new(log.clone(), identity, false, None));
    let detail = serde_json::json!({"version": "x"});
    sink.sidecar(SidecarEvent {
        agent_id: "buyer",
        step: crate::events::SidecarStep::Started,
        detail: &detail,
    });
    log.sync().unwrap();
    let mut kinds = Vec::new();
    query::query(dir.path(), &query::QueryFilter::default(), |r, _| {
        kinds.push((r.kind, r.agent.owner.clone()));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        kinds,
        vec![(
            RecordKind::SidecarStarted,
            Some("owner@example.test".into())
        )]
    );
}

#[test]
fn a_closed_log_is_counted_as_lost_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let registry = prometheus::Registry::new();
    let metrics = AuditMetrics::register(&registry).unwrap();
    let sink = AuditSink::new(log.clone(), AgentIdentity::id("a"), false, Some(metrics));
    log.close().unwrap();
    let detail = serde_json::json!({});
    sink.sidecar(SidecarEvent {
        agent_id: "a",
        step: crate::events::SidecarStep::Stopped,
        detail: &detail,
    });
    let text = {
        use prometheus::Encoder;
        let mut b = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut b)
            .unwrap();
        String::from_utf8(b).unwrap()
    };
    assert!(
        text.contains(r#"agent_sidecar_audit_records_lost_total{kind="sidecar_stopped"} 1"#),
        "{text}"
    );
    assert!(text.contains("agent_sidecar_audit_failing 1"), "{text}");
}
