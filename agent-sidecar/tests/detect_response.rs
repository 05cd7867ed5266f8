//! Detector responses on the real tool gateway, with curl as the agent:
//! after a `raise_tier` alert a call the policy lets through at tier 1
//! waits for an approver (and never reaches the tool when nobody
//! approves); after a `quarantine` alert every call is refused. Each
//! response is an action event that says it was applied.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use agent_sidecar::{
    detect::{Detection, DetectionOptions, GatewayResponder, Observation, ObservedKind},
    events::{ActionEvent, ActionSink, DetectionResponse, EventBus},
    gateway::FLOOR_RULE,
    policy::{
        Tier,
        detection::{DetectionPolicy, DetectorKind, Response},
    },
};
use agent_sidecar_test_support::{
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
};

struct Responses(Arc<Mutex<Vec<DetectionResponse>>>);

impl ActionSink for Responses {
    fn consume(&self, event: ActionEvent<'_>) {
        if let ActionEvent::Response(r) = event {
            self.0.lock().unwrap().push(r.clone());
        }
    }
}

/// Detectors acting on `h`'s gateway, `kind` answered with `response`,
/// learned from one call.
fn detection(
    h: &Harness,
    kind: DetectorKind,
    response: Response,
) -> (Detection, Arc<Mutex<Vec<DetectionResponse>>>) {
    let mut policy = DetectionPolicy {
        learning: Duration::ZERO,
        min_learning_events: 1,
        ..DetectionPolicy::default()
    };
    policy.detectors[kind as usize].response = response;
    let policy = Arc::new(policy);
    let d = Detection::new(DetectionOptions {
        policy: Arc::new(move |_| policy.clone()),
        store: None,
        sinks: Vec::new(),
        responder: Some(Arc::new(GatewayResponder(h.gateway.clone()))),
        clock: None,
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    d.set_bus(EventBus::new(vec![Arc::new(Responses(seen.clone()))]));
    d.observe(h.gateway.agent_id(), &call("erp", "list_invoices"));
    (d, seen)
}

fn call(tool: &'static str, action: &'static str) -> Observation<'static> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut o = Observation::new(ObservedKind::ToolCall, now);
    o.tool = Some(tool);
    o.action = Some(action);
    o.tier = Some(Tier::Autonomous);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_raise_tier_alert_a_tier_1_call_waits_for_an_approver() {
    let h = Harness::start(Options {
        sla: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    let (status, body) = curl(&h.explicit_args(), &[&h.url("/v1/invoices?limit=5")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.api.requests().len(), 1);

    let (d, responses) = detection(&h, DetectorKind::NewTool, Response::RaiseTier);
    d.observe(h.gateway.agent_id(), &call("shell", "exec"));
    {
        let r = responses.lock().unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].applied, "{:?}", r[0]);
        assert_eq!(r[0].min_tier, Some(Tier::Approval));
    }
    let (tier, reason, _) = h.gateway.tier_floor().current().expect("a floor");
    assert_eq!(tier, Tier::Approval);
    assert!(reason.contains("new_tool"), "{reason}");

    // The same call now needs an approver; nobody answers within the SLA.
    let (status, body) = curl(&h.explicit_args(), &[&h.url("/v1/invoices?limit=5")]).await;
    assert_eq!(status, 403, "{body}");
    let err = &json_of(&body)["error"];
    assert_eq!(err["reason"], "approval_expired", "{body}");
    assert_eq!(
        h.api.requests().len(),
        1,
        "the held call never reached the tool"
    );
    let pending = h.approver.events.lock().unwrap().clone();
    let held = pending
        .iter()
        .find(|e| e["event"] == "approval.pending")
        .expect("the approvers were asked");
    assert!(
        held.to_string().contains(FLOOR_RULE),
        "the approvers see why: {held}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_quarantine_alert_every_call_is_refused() {
    let h = Harness::start(Options::default()).await;
    let (d, responses) = detection(&h, DetectorKind::NewDestination, Response::Quarantine);
    let mut o = call("erp", "list_invoices");
    o.destination = Some("paste.evil.example");
    d.observe(h.gateway.agent_id(), &o);
    assert!(responses.lock().unwrap()[0].applied);
    assert!(h.gateway.quarantined());
    let (status, body) = curl(&h.explicit_args(), &[&h.url("/v1/invoices?limit=5")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(h.api.requests().is_empty());
}

#[test]
fn a_responder_refuses_to_act_on_another_agent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(Harness::start(Options::default()));
    let (d, responses) = detection(&h, DetectorKind::NewTool, Response::Quarantine);
    d.observe("someone-else", &call("erp", "list_invoices"));
    d.observe("someone-else", &call("shell", "exec"));
    let r = responses.lock().unwrap();
    assert_eq!(r.len(), 1);
    assert!(!r[0].applied);
    assert!(r[0].error.as_deref().unwrap().contains("someone-else"));
    assert!(!h.gateway.quarantined());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_alerts_and_marks_one_benign_through_the_admin_api() {
    use agent_sidecar::{
        admin::{Admin, serve},
        approvals::BearerToken,
    };
    let h = Harness::start(Options::default()).await;
    let (d, _) = detection(&h, DetectorKind::NewTool, Response::Notify);
    let agent = h.gateway.agent_id().to_string();
    d.observe(&agent, &call("shell", "exec"));
    let token = "t0k3n-for-the-admin-api-tests";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let admin = Admin::api(h.approvals.clone(), BearerToken::new(token).unwrap())
        .with_gateway(h.gateway.clone())
        .with_detection(d.clone());
    tokio::spawn(serve(listener, admin));
    let auth = format!("Authorization: Bearer {token}");

    let (status, body) = curl(&[], &["-H", &auth, &format!("{url}/v1/alerts")]).await;
    assert_eq!(status, 200, "{body}");
    let alerts = json_of(&body)["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["detector"], "new_tool");
    let id = alerts[0]["id"].as_str().unwrap().to_string();

    let benign = format!("{url}/v1/alerts/{id}/benign");
    let (status, _) = curl(&[], &["-H", &auth, "-X", "POST", "-d", "{}", &benign]).await;
    assert_eq!(status, 400, "operator and reason are required");
    let (status, _) = curl(&[], &["-X", "POST", "-d", "{}", &benign]).await;
    assert_eq!(status, 401, "the bearer token is required");
    let who = r#"{"operator": "soc@acme.example", "reason": "new deployment tool"}"#;
    let (status, body) = curl(&[], &["-H", &auth, "-X", "POST", "-d", who, &benign]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl(&[], &["-H", &auth, "-X", "POST", "-d", who, &benign]).await;
    assert_eq!(status, 404, "folded once");

    // Folded in: the tool is normal now.
    let mut again = call("shell", "exec");
    again.at_ms += 3_600_000;
    d.observe(&agent, &again);
    assert_eq!(d.alerts_raised(DetectorKind::NewTool), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_reports_identity_policy_and_the_last_call_through_the_admin_api() {
    use agent_sidecar::{
        admin::{Admin, serve},
        approvals::BearerToken,
        inventory::{Inventory, InventoryIdentity},
    };
    let h = Harness::start(Options::default()).await;
    let agent = h.gateway.agent_id().to_string();
    let inventory = Inventory::new(
        InventoryIdentity {
            agent_id: agent.clone(),
            instance_id: Some("agents.buyer-0".into()),
            owner: Some("ap-lead@example.test".into()),
            team: Some("finance".into()),
            purpose: Some("pays invoices".into()),
            environment: "prod".into(),
        },
        Some(h.metrics.inventory()),
    );
    let version = h.policy.current().version().clone();
    inventory.policy_in_force(&version);
    h.events.add(Arc::new(inventory.clone()));
    let token = "t0k3n-for-the-admin-api-tests";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/inventory", listener.local_addr().unwrap());
    let admin = Admin::api(h.approvals.clone(), BearerToken::new(token).unwrap())
        .with_gateway(h.gateway.clone())
        .with_inventory(inventory);
    tokio::spawn(serve(listener, admin));
    let auth = format!("Authorization: Bearer {token}");

    let (status, body) = curl(&[], &["-H", &auth, &url]).await;
    assert_eq!(status, 200, "{body}");
    let before = json_of(&body);
    assert!(before.get("last_action").is_none(), "no action yet: {body}");

    let (status, body) = curl(&h.explicit_args(), &[&h.url("/v1/invoices?limit=5")]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&[], &["-H", &auth, &url]).await;
    assert_eq!(status, 200, "{body}");
    let inv = json_of(&body);
    assert_eq!(inv["agent_id"], agent.as_str());
    assert_eq!(inv["instance_id"], "agents.buyer-0");
    assert_eq!(inv["owner"], "ap-lead@example.test");
    assert_eq!(inv["team"], "finance");
    assert_eq!(inv["environment"], "prod");
    assert_eq!(inv["policy_version"], version.short());
    assert_eq!(inv["last_action"]["kind"], "tool_call", "{body}");
    assert!(
        inv["last_action"]["subject"]
            .as_str()
            .unwrap()
            .starts_with("erp"),
        "{body}"
    );
    assert!(inv["idle_seconds"].as_u64().unwrap() < 30, "{body}");
    assert!(inv["actions"]["tool_call"].as_u64().unwrap() >= 1, "{body}");

    let (status, _) = curl(&[], &[&url]).await;
    assert_eq!(status, 401, "the bearer token is required");
    let (status, _) = curl(&[], &["-H", &auth, "-X", "POST", "-d", "{}", &url]).await;
    assert_eq!(status, 405, "read only");
    assert_eq!(
        h.metric("agent_sidecar_agent_info{"),
        1.0,
        "{}",
        h.metrics.render()
    );
    assert!(h.metric("agent_sidecar_agent_last_action_timestamp_seconds") > 1.7e9);
}
