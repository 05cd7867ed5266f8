use super::*;
use crate::proxy::testing::context;

const ALLOWED: &[&str] = &["api.allowed.test", "public.allowed.test"];

fn hello(sni: Option<&str>, ech: bool) -> ClientHelloInfo {
    ClientHelloInfo {
        sni: sni.map(str::to_owned),
        ech,
    }
}

fn head(target: &str, host: Option<&str>) -> RequestHead {
    RequestHead {
        method: "GET".into(),
        target: target.into(),
        host: host.map(str::to_owned),
        head_len: 0,
    }
}

fn reason(r: Result<Cleared, Denial>) -> String {
    match r {
        Ok(c) => format!("allowed {}", c.host),
        Err(d) => d.reason,
    }
}

#[test]
fn names_are_normalised_then_decided() {
    let ctx = context(ALLOWED);
    let cleared = check_name(&ctx, "API.Allowed.Test.", 443).expect("allowed");
    assert_eq!(cleared.host, "api.allowed.test");
    assert_eq!(cleared.allowed.rule, "allow api.allowed.test");
    assert_eq!(
        reason(check_name(&ctx, "evil.test", 443)),
        "not_allowlisted"
    );
    assert_eq!(reason(check_name(&ctx, "127.0.0.1", 443)), "ip_literal");
    assert_eq!(reason(check_name(&ctx, "[::1]", 443)), "ip_literal");
    assert_eq!(reason(check_name(&ctx, "a b", 443)), "host_invalid");
}

#[test]
fn sni_rules() {
    let ctx = context(ALLOWED);
    let cases = [
        (
            hello(Some("api.allowed.test"), false),
            None,
            "allowed api.allowed.test",
        ),
        (hello(None, false), None, "sni_missing"),
        (hello(Some("10.1.2.3"), false), None, "sni_ip_literal"),
        (hello(Some("bad name"), false), None, "sni_invalid"),
        (hello(Some("evil.test"), false), None, "not_allowlisted"),
        (
            hello(Some("public.allowed.test"), false),
            Some("api.allowed.test"),
            "sni_mismatch",
        ),
        (
            hello(Some("API.allowed.test"), false),
            Some("api.allowed.test"),
            "allowed api.allowed.test",
        ),
        (
            hello(Some("public.allowed.test"), true),
            None,
            "allowed public.allowed.test",
        ),
        (
            hello(Some("evil.test"), true),
            None,
            "ech_outer_not_allowed",
        ),
        (
            hello(Some("public.allowed.test"), true),
            Some("api.allowed.test"),
            "ech_outer_mismatch",
        ),
    ];
    for (h, connect, want) in cases {
        assert_eq!(
            reason(check_hello(&ctx, &h, connect, 443)),
            want,
            "{h:?} {connect:?}"
        );
    }
}

#[test]
fn host_rules() {
    let ctx = context(ALLOWED);
    let cases = [
        (
            head("/", Some("api.allowed.test")),
            None,
            "allowed api.allowed.test",
        ),
        (
            head("/", Some("api.allowed.test:80")),
            None,
            "allowed api.allowed.test",
        ),
        (
            head("/", Some("api.allowed.test:8080")),
            None,
            "host_port_mismatch",
        ),
        (head("/", None), None, "host_missing"),
        (head("/", Some("10.0.0.1")), None, "host_ip_literal"),
        (head("/", Some("[::1]:80")), None, "host_ip_literal"),
        (head("/", Some("a:b:c")), None, "host_invalid"),
        (head("/", Some("evil.test")), None, "not_allowlisted"),
        (
            head("/", Some("public.allowed.test")),
            Some("api.allowed.test"),
            "host_mismatch",
        ),
        (
            head("http://evil.test/", Some("api.allowed.test")),
            None,
            "host_mismatch",
        ),
        (
            head("http://api.allowed.test/x", Some("api.allowed.test")),
            None,
            "allowed api.allowed.test",
        ),
    ];
    for (h, connect, want) in cases {
        assert_eq!(
            reason(check_head(&ctx, &h, connect, 80)),
            want,
            "{h:?} {connect:?}"
        );
    }
}
