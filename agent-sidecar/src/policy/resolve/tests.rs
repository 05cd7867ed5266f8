use serde_json::json;

use super::*;
use crate::policy::{
    action::{HttpRequest, McpCall},
    test_support::{AGENT, BASE, TEAM, set},
    tier::Tier,
};

fn who() -> AgentIdentity {
    AgentIdentity {
        id: "bot".into(),
        environment: "prod".into(),
        ..Default::default()
    }
}

#[test]
fn http_requests_are_recognised_and_their_attributes_extracted() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let req = Request::Http(HttpRequest {
        host: "ERP.example:8443".into(),
        method: "post".into(),
        path: "/v1/payments?trace=1".into(),
        body: Some(json!({"amount": "30000", "currency": "EUR", "lines": [1, 2]})),
        ..Default::default()
    });
    let a = s.action_from_request(who(), &req);
    assert_eq!(
        (a.tool.as_deref(), a.action.as_deref()),
        (Some("erp"), Some("pay"))
    );
    assert_eq!(a.attributes.records, Some(2));
    assert_eq!(a.attributes.regulatory, Some(vec!["sox".to_string()]));
    assert_eq!(
        a.target,
        Some(ActionTarget::Http {
            host: "erp.example".into(),
            method: "POST".into(),
            path: "/v1/payments".into()
        })
    );
    // 30,000 EUR at 1.1 is 33,000 USD: above the team's 25,000.
    assert_eq!(s.decide(&a).tier, Tier::Approval);
}

#[test]
fn mcp_calls_are_recognised_by_server_and_tool() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let call = |tool: &str| {
        Request::Mcp(McpCall {
            server: "crm".into(),
            tool: tool.into(),
            arguments: json!({"limit": 20000}),
        })
    };
    let a = s.action_from_request(who(), &call("export_customers"));
    assert_eq!(a.action.as_deref(), Some("export"));
    assert_eq!(a.attributes.sensitivity, Some(vec!["pii".to_string()]));
    assert_eq!(s.decide(&a).tier, Tier::Halt);
    let unknown = s.action_from_request(who(), &call("drop_table"));
    assert_eq!(
        (unknown.tool.as_deref(), unknown.action.as_deref()),
        (Some("crm"), None)
    );
    let d = s.decide(&unknown);
    assert!(
        d.reason
            .contains("no action of tool `crm` matches MCP crm/drop_table"),
        "{}",
        d.reason
    );
}

#[test]
fn inputs_fill_the_identity_from_the_set() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let input: ActionInput = serde_json::from_value(json!({
        "agent": "bot", "environment": "dev", "tool": "erp", "action": "read"
    }))
    .unwrap();
    let a = s.action_from_input(&input).unwrap();
    assert_eq!(a.agent.team.as_deref(), Some("fin"));
    assert_eq!(s.decide(&a).tier, Tier::Autonomous);
}
