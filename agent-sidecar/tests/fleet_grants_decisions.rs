//! Just-in-time tool, action and tier-ceiling grants at the gateway: a
//! payment above the approval threshold is held (tier 3) until an approver
//! grants the action; while the grant is in force the same payment goes
//! through supervised (tier 2, the owner notified) with the grant named in
//! its record; a grant never lifts a deny or a tier-4 rule; at expiry the
//! next payment is held again. The real `curl` is the agent.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use agent_sidecar::{
    events::{ActionEvent, ActionSink},
    grants::{GrantBounds, GrantKind, GrantRequest, GrantStore, GrantsInForce},
};
use agent_sidecar_test_support::{
    curl::{curl, json_of},
    sidecar::gateway::{Harness, Options},
};

/// (tool.action, tier, first deciding rule, reason) of one call.
type Call = (String, u8, String, Option<String>);

/// Every call the gateway ended.
#[derive(Default)]
struct Decided(Mutex<Vec<Call>>);

impl ActionSink for Decided {
    fn consume(&self, event: ActionEvent<'_>) {
        if let ActionEvent::ToolCall(e) = event {
            self.0.lock().unwrap().push((
                format!(
                    "{}.{}",
                    e.action.tool.as_deref().unwrap_or("-"),
                    e.action.action.as_deref().unwrap_or("-")
                ),
                e.decision.tier as u8,
                e.decision.rules[0].id.to_string(),
                e.reason.clone(),
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_grant_lowers_the_approval_tier_until_it_expires_and_never_lifts_a_deny() {
    let in_force = GrantsInForce::default();
    let h = Harness::start(Options {
        sla: Duration::from_millis(700),
        grants: Some(in_force.clone()),
        ..Options::default()
    })
    .await;
    let decided = Arc::new(Decided::default());
    h.events.add(decided.clone());
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = GrantStore::open(
        dir.path(),
        GrantBounds {
            kinds: vec![GrantKind::Action, GrantKind::TierCeiling],
            targets: vec!["erp.pay".into(), "1".into()],
            max_ttl: Duration::from_secs(3600),
            approvers: vec!["lead".into()],
            never: Vec::new(),
        },
    )
    .unwrap();
    in_force.attach(&store);
    let big = r#"{"amount": 5000}"#;

    // Without a grant: held for approval, nobody approves, refused; the
    // refusal says how to ask for a grant.
    let (status, body) = h.post_json("/v1/payments", big).await;
    assert_ne!(status, 200, "{body}");
    assert!(h.api.requests().is_empty());
    let hint = &json_of(&body)["error"]["request_access"];
    assert_eq!(hint["kind"], "action", "{body}");
    assert_eq!(hint["target"], "erp.pay", "{body}");
    // A deny carries no such hint: nothing can lift it.
    let (_, body) = curl(&h.explicit_args(), &[&h.url("/v1/accounts/7/secrets")]).await;
    assert!(
        json_of(&body)["error"].get("request_access").is_none(),
        "{body}"
    );

    // An MCP agent asks itself with the sidecar's `request_access` tool
    // (listed in every governed server's tools/list); the server never
    // sees the call.
    let rpc = |body: serde_json::Value| {
        let args = h.explicit_args();
        let url = h.url("/mcp");
        async move {
            curl(
                &args,
                &[
                    "-H",
                    "content-type: application/json",
                    "-H",
                    "accept: application/json, text/event-stream",
                    "-d",
                    &body.to_string(),
                    &url,
                ],
            )
            .await
        }
    };
    let seen = h.api.requests().len();
    let (status, answer) = rpc(
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "request_access", "arguments": {"kind": "action", "target": "erp.pay",
            "purpose": "supplier run", "ttl_secs": 60}}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer = json_of(&answer);
    let asked = answer["result"]["structuredContent"]["grant_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(
        h.api.requests().len(),
        seen,
        "request_access never reaches the server"
    );
    let pending = store.list(Some(agent_sidecar::grants::GrantState::Pending));
    assert!(
        pending
            .iter()
            .any(|g| g.id == asked && g.request.requested_by == "buyer"),
        "{pending:?}"
    );
    // Outside the bounds: refused in the tool's answer, nothing filed.
    let (_, answer) = rpc(
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "request_access", "arguments": {"kind": "action", "target": "erp.wire",
            "purpose": "more", "ttl_secs": 60}}}),
    )
    .await;
    assert_eq!(json_of(&answer)["result"]["isError"], true, "{answer}");
    assert_eq!(store.list(None).len(), 1);
    let mcp_requests = h.api.requests().len();

    // Requested by the agent, approved by the lead for 2 s.
    let g = store
        .request(GrantRequest {
            agent: "buyer".into(),
            kind: GrantKind::Action,
            target: "erp.pay".into(),
            purpose: "quarter-end supplier run".into(),
            ttl_secs: 2,
            requested_by: "buyer".into(),
        })
        .unwrap();
    assert!(
        store.approve(&g.id, "buyer", "self").is_err(),
        "no self-approval"
    );
    let (status, body) = h.post_json("/v1/payments", big).await;
    assert_ne!(status, 200, "a pending grant gives nothing: {body}");
    store
        .approve(&g.id, "lead", "approved for the run")
        .unwrap();
    let (status, body) = h.post_json("/v1/payments", big).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.api.requests().len(), mcp_requests + 1);
    h.owner.wait_for("action.supervised").await;

    // A tier-ceiling grant of 1 does not lift the deny on account secrets.
    let c = store
        .request(GrantRequest {
            agent: "buyer".into(),
            kind: GrantKind::TierCeiling,
            target: "1".into(),
            purpose: "incident".into(),
            ttl_secs: 2,
            requested_by: "oncall".into(),
        })
        .unwrap();
    store.approve(&c.id, "lead", "incident").unwrap();
    let (status, _) = curl(&h.explicit_args(), &[&h.url("/v1/accounts/7/secrets")]).await;
    assert_eq!(status, 403);

    // At expiry the grants are gone from every decision at once.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = h.post_json("/v1/payments", big).await;
    assert_ne!(status, 200, "{body}");
    assert_eq!(h.api.requests().len(), mcp_requests + 1);

    // Nor the tier-4 rule on mass deletes (which quarantines the agent:
    // last).
    store
        .approve(
            &store
                .request(GrantRequest {
                    agent: "buyer".into(),
                    kind: GrantKind::TierCeiling,
                    target: "1".into(),
                    purpose: "cleanup".into(),
                    ttl_secs: 60,
                    requested_by: "oncall".into(),
                })
                .unwrap()
                .id,
            "lead",
            "cleanup",
        )
        .unwrap();
    let (status, _) = curl(&h.explicit_args(), &["-X", "DELETE", &h.url("/v1/vendors")]).await;
    assert_ne!(status, 200);
    assert_eq!(h.api.requests().len(), mcp_requests + 1);

    let d = decided.0.lock().unwrap().clone();
    let pays: Vec<(u8, String)> = d
        .iter()
        .filter(|(n, ..)| n == "erp.pay")
        .map(|(_, t, r, _)| (*t, r.clone()))
        .collect();
    assert_eq!(pays.len(), 4, "{d:?}");
    assert!(
        !d.iter().any(|(n, ..)| n.contains("request_access")),
        "{d:?}"
    );
    assert_eq!(pays[2], (2, format!("grant:{}", g.id)), "{d:?}");
    for i in [0, 1, 3] {
        assert_eq!(pays[i].0, 3, "{d:?}");
    }
    let secrets = d.iter().find(|(n, ..)| n == "erp.account_secrets").unwrap();
    assert_eq!(secrets.1, 5, "deny stays deny: {d:?}");
    let mass = d.iter().find(|(n, ..)| n == "erp.delete_vendors").unwrap();
    assert_eq!(mass.1, 4, "tier 4 stays tier 4: {d:?}");
}
