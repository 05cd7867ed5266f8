use std::time::Duration;

use super::*;
use crate::policy::test_support::{compile, one_problem, set};

const BASE: &str = r#"
kind: base
name: acme
label: t
tools:
  - name: erp
    http: { host: ERP.example.test }
    credential: { secret: erp-token }
    actions:
      - name: pay
        method: POST
        path: /v1/payments
        compensation: { action: reverse, window: 10m }
      - name: reverse
        method: POST
        path: /v1/payments/{id}/reverse
  - name: crm
    mcp: { server: crm, url: "https://crm.example.test:8443/mcp" }
    credential: { secret: crm-key, header: x-api-key, format: "{secret}" }
    actions:
      - name: lookup
        mcp_tool: get_customer
      - name: export
        mcp_tool: export_customers
      - name: refund
        mcp_tool: refund
        attributes:
          amount: { body: /amount }
rules:
  - id: no-export
    when: { tool: crm, action: export }
    tier: 4
    quarantine: true
  - id: big-refund
    when: { tool: crm, action: refund, amount: { gt: 100 } }
    tier: deny
"#;

fn who() -> AgentIdentity {
    AgentIdentity {
        id: "a".into(),
        environment: "prod".into(),
        ..Default::default()
    }
}

#[test]
fn tool_hosts_are_inspected_with_their_endpoints() {
    let s = set(&[("base.yaml", BASE)]);
    let erp = s.inspected("erp.example.test").expect("erp inspected");
    assert_eq!((erp.port, erp.rest_tool.as_deref()), (443, Some("erp")));
    let crm = s.inspected("crm.example.test").expect("crm inspected");
    assert_eq!(crm.port, 8443);
    assert_eq!(crm.mcp[0].path, "/mcp");
    assert_eq!(crm.mcp[0].server, "crm");
    assert!(s.inspected("other.example.test").is_none());
    assert_eq!(s.secret_names(), vec!["crm-key", "erp-token"]);
    let c = s.credential("crm").unwrap();
    assert_eq!(
        (c.injection.header.as_str(), c.injection.format.as_str()),
        ("x-api-key", "{secret}")
    );
    assert_eq!(
        s.credential("erp").unwrap().injection.format,
        "Bearer {secret}"
    );
}

#[test]
fn compensation_and_routes() {
    let s = set(&[("base.yaml", BASE)]);
    let c = s.compensation("erp", "pay").unwrap();
    assert_eq!(
        (&*c.action, c.window),
        ("reverse", Duration::from_secs(600))
    );
    assert!(s.compensation("erp", "reverse").is_none());
    assert_eq!(
        s.action_route("erp", "reverse"),
        Some(&ActionRoute::Http {
            method: "POST".into(),
            path: "/v1/payments/{id}/reverse".into()
        })
    );
    let params = path_params("/v1/payments/{id}/reverse", "/v1/payments/p-1/reverse");
    assert_eq!(params["id"], "p-1");
    let filled = fill_path("/v1/payments/{id}/reverse", &|n| {
        (n == "id").then(|| "p-9".to_string())
    });
    assert_eq!(filled.as_deref(), Ok("/v1/payments/p-9/reverse"));
    for bad in [
        "a/b",
        "..%2F..%2Fpayments",
        "..",
        ".",
        "p%2e%2e",
        "a?b",
        "a#b",
        "a;b",
        "",
    ] {
        assert!(
            matches!(
                fill_path("/v1/{x}/revert", &|_| Some(bad.into())),
                Err(FillError::NotASegment { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        fill_path("/v1/{x}", &|_| None),
        Err(FillError::Missing("x".into()))
    );
}

#[test]
fn quarantine_is_carried_by_tier_4_decisions_and_hides_tools() {
    let s = set(&[("base.yaml", BASE)]);
    assert!(!s.may_call_mcp(&who(), "crm", "export_customers"));
    assert!(s.may_call_mcp(&who(), "crm", "get_customer"));
    // Denied only above an amount: still listed, decided per call.
    assert!(s.may_call_mcp(&who(), "crm", "refund"));
    // Undeclared tools are listed (they fall to defaults.unknown).
    assert!(s.may_call_mcp(&who(), "crm", "something_new"));
    let a = s.action_from_request(
        who(),
        &crate::policy::Request::Mcp(crate::policy::action::McpCall {
            server: "crm".into(),
            tool: "export_customers".into(),
            arguments: serde_json::json!({}),
        }),
    );
    let d = s.decide(&a);
    assert_eq!(d.tier, Tier::Halt);
    assert!(d.quarantine);
}

#[test]
fn bad_gateway_declarations_are_located() {
    let p = one_problem(&[(
        "base.yaml",
        &BASE.replace(
            "tier: 4\n    quarantine: true",
            "tier: 3\n    quarantine: true",
        ),
    )]);
    assert!(p.contains("quarantine goes with tier 4"), "{p}");
    let p = one_problem(&[(
        "base.yaml",
        &BASE.replace(
            "https://crm.example.test:8443/mcp",
            "http://crm.example.test/mcp",
        ),
    )]);
    assert!(p.contains("scheme must be https"), "{p}");
    let p = one_problem(&[(
        "base.yaml",
        &BASE.replace("{ action: reverse, window: 10m }", "{ action: nope }"),
    )]);
    assert!(p.contains("is not another action of tool `erp`"), "{p}");
    let p = one_problem(&[("base.yaml", &BASE.replace("window: 10m", "window: soon"))]);
    assert!(p.contains("`soon` is not a duration"), "{p}");
    let p = one_problem(&[(
        "base.yaml",
        &BASE.replace("format: \"{secret}\"", "format: \"static\""),
    )]);
    assert!(p.contains("has no `{secret}`"), "{p}");
    assert!(compile(&[("base.yaml", BASE)]).is_ok());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(
        parse_duration(" 2days 4h "),
        Some(Duration::from_secs(187_200))
    );
    assert_eq!(parse_duration("15"), None);
    assert_eq!(parse_duration("m"), None);
    assert_eq!(parse_duration("é"), None);
}
