use std::sync::Arc;

use super::*;
use crate::{
    events::{EventBus, PolicyEvent},
    metrics::Metrics,
    policy::PolicyVersion,
    proxy::{ConnectionOutcome, ListenerKind, ProxyEvent},
};

fn connection(agent: &str, host: &str, at: u64) -> ProxyEvent {
    ProxyEvent {
        time_unix_ms: at,
        agent_id: agent.into(),
        listener: ListenerKind::Explicit,
        client: "127.0.0.1:40000".parse().unwrap(),
        host: Some(host.into()),
        port: 443,
        sni: None,
        ech: false,
        decision: ConnectionOutcome::Allowed,
        reason: None,
        rule: None,
        upstream: None,
        bytes_up: 0,
        bytes_down: 0,
        duration_us: 0,
    }
}

fn identity() -> InventoryIdentity {
    InventoryIdentity {
        agent_id: "support-agent".into(),
        instance_id: Some("agents.support-0".into()),
        owner: Some("alice@example.com".into()),
        team: Some("support".into()),
        purpose: Some("answers tickets".into()),
        environment: "prod".into(),
    }
}

#[test]
fn records_identity_policy_and_last_action_and_publishes_them() {
    let metrics = Metrics::for_agent("support-agent");
    let inv = Inventory::new(identity(), Some(metrics.inventory()));
    let bus = EventBus::new(vec![Arc::new(inv.clone())]);
    let version = PolicyVersion {
        hash: "abcdef0123456789".repeat(4).into(),
        label: "2026.12.04-1".into(),
    };
    bus.emit(ActionEvent::Policy(PolicyEvent {
        agent_id: "support-agent",
        result: "success",
        version: Some(&version),
        reason: None,
    }));
    let before = inv.snapshot();
    assert_eq!(before.last_action, None, "no action yet");
    assert_eq!(before.policy_version.as_deref(), Some("abcdef012345"));
    bus.emit(ActionEvent::Connection(&connection(
        "support-agent",
        "api.example.com",
        1_700_000_000_000,
    )));
    bus.emit(ActionEvent::Connection(&connection(
        "another-agent",
        "evil.example",
        1_800_000_000_000,
    )));
    let snap = inv.snapshot();
    let last = snap
        .last_action
        .clone()
        .expect("the connection is the last action");
    assert_eq!(last.kind, "connection");
    assert_eq!(last.subject.as_deref(), Some("api.example.com"));
    assert_eq!(
        snap.actions.get("connection"),
        Some(&1),
        "another agent's event is not counted"
    );
    assert_eq!(snap.identity, identity());
    let text = metrics.render();
    assert!(
        text.contains(r#"agent_sidecar_agent_info{environment="prod",owner="alice@example.com",policy_version="abcdef012345",purpose="answers tickets",team="support",agent_id="support-agent"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("agent_sidecar_agent_last_action_timestamp_seconds{agent_id=\"support-agent\"} 1700000000"),
        "{text}"
    );
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(
        json["owner"], "alice@example.com",
        "identity is flattened: {json}"
    );
    assert!(
        json["idle_seconds"].as_u64().unwrap() > 1_000,
        "idle since 2023: {json}"
    );
}
