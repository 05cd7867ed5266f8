use super::*;
use crate::policy::test_support::{BASE, one_problem, set};

fn route(method: &str, path: &str) -> Route {
    Route::Http {
        method: method.into(),
        segments: parse_pattern(path).unwrap(),
    }
}

#[test]
fn routes_match_literals_params_and_rest() {
    let r = route("POST", "/v1/vendors/{id}/payments");
    assert!(r.matches_http("post", "/v1/vendors/42/payments"));
    assert!(r.matches_http("POST", "/v1/vendors/42/payments/"));
    assert!(!r.matches_http("GET", "/v1/vendors/42/payments"));
    assert!(!r.matches_http("POST", "/v1/vendors//payments"));
    assert!(!r.matches_http("POST", "/v1/vendors/42/payments/7"));
    let rest = route("PUT", "/v1/global/*");
    assert!(rest.matches_http("PUT", "/v1/global/a/b"));
    assert!(rest.matches_http("PUT", "/v1/global"));
    assert!(!rest.matches_http("PUT", "/v1/other"));
}

#[test]
fn bad_patterns_say_why() {
    for (p, why) in [
        ("v1/x", "does not start with `/`"),
        ("/v1/*/x", "`*` may only be the last segment"),
        ("/v1//x", "empty segment"),
        ("/v1/{id", "mixes text"),
        ("/v1?x=1", "query"),
    ] {
        assert!(parse_pattern(p).unwrap_err().contains(why), "{p}");
    }
}

#[test]
fn declarations_are_compiled_with_their_sources() {
    let s = set(&[("org.yaml", BASE)]);
    assert_eq!(s.tools.len(), 2);
    let pay = s
        .actions
        .iter()
        .find(|a| a.qualified.as_ref() == "erp.pay")
        .unwrap();
    assert_eq!(
        pay.declared,
        Attr::Amount.bit()
            | Attr::Records.bit()
            | Attr::Reversibility.bit()
            | Attr::Regulatory.bit()
    );
    // `records` has a default, `reversibility` a constant, `amount` neither.
    assert_eq!(pay.fallback.records, Some(1.0));
    assert!(pay.fallback.reversibility.is_some());
    assert_eq!(pay.fallback.amount, None);
}

#[test]
fn invalid_declarations_are_refused_with_their_location() {
    let tool = |body: &str| {
        format!(
            "kind: base\nname: a\nlabel: l\ntools:\n  - name: t\n    http: {{ host: t.example }}\n    actions:\n      - name: x\n        method: POST\n        path: /x\n{body}"
        )
    };
    let cases = [
        (
            "        attributes:\n          records: { body: /n, header: x-n }\n",
            "more than one place",
            "p/org.yaml:12:20",
        ),
        (
            "        attributes:\n          records: {}\n",
            "names no place",
            "p/org.yaml:12:20",
        ),
        (
            "        attributes:\n          amount: { const: 5, count: true }\n",
            "`count` applies to `records` only",
            "p/org.yaml:12:38",
        ),
        (
            "        attributes:\n          sensitivity: { const: [secret] }\n",
            "unknown sensitivity class `secret`",
            "p/org.yaml:12:33",
        ),
        (
            "        attributes:\n          amount: { body: /a, currency: { const: JPY } }\n",
            "currency \"JPY\" has no exchange rate",
            "p/org.yaml:12:50",
        ),
        (
            "        attributes:\n          reversibility: { const: maybe, default: x }\n",
            "`default` has no effect",
            "p/org.yaml:12:51",
        ),
        (
            "        mcp_tool: y\n",
            "has an `mcp_tool`",
            "p/org.yaml:11:19",
        ),
    ];
    for (body, what, at) in cases {
        let text = tool(body);
        let e = one_problem(&[("org.yaml", &text)]);
        assert!(e.contains(what), "{body}: {e}");
        assert!(e.starts_with(at), "{body}: {e}");
    }
}

#[test]
fn one_tool_per_host_and_unique_routes() {
    let team = "kind: team\nname: fin\ntools:\n  - name: erp2\n    http: { host: ERP.example }\n    actions:\n      - { name: x, method: GET, path: /x }\n";
    let e = one_problem(&[("org.yaml", BASE), ("team.yaml", team)]);
    assert!(
        e.contains("uses host `erp.example`, which another tool already uses"),
        "{e}"
    );
    let same_route = "kind: team\nname: fin\ntools:\n  - name: hr\n    http: { host: hr.example }\n    actions:\n      - { name: a, method: GET, path: /x }\n      - { name: b, method: get, path: /x/ }\n";
    let e = one_problem(&[("org.yaml", BASE), ("team.yaml", same_route)]);
    assert!(
        e.contains("action `b` has the same route as action `a`"),
        "{e}"
    );
}
