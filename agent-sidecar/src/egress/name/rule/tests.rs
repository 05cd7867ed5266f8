use super::*;
use agent_sidecar_common::{PROTO_TCP, PROTO_UDP};

fn r(s: &str) -> NameRule {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parses_host_and_host_port() {
    let rule = r("api.example.com");
    assert_eq!(rule.ports, None);
    assert_eq!(rule.protocols, Protocols::Any);
    assert!(!rule.allow_private && !rule.learn && rule.source.is_none());
    assert_eq!(r("api.example.com:443").ports, Some(vec![443]));
    assert_eq!(r("*.example.com:443").to_string(), "*.example.com:443");
    assert_eq!(r("**.Example.com.:5432").to_string(), "**.example.com:5432");
    assert_eq!(
        r("db.example.com:5432,5433").to_string(),
        "db.example.com:5432,5433"
    );
    assert_eq!(r(" api.example.com:443 "), r("api.example.com:443"));
}

#[test]
fn rejects_bad_rules_in_target_style() {
    for (input, needle) in [
        ("api.example.com:0", "out of range"),
        ("api.example.com:70000", "out of range"),
        ("api.example.com:https", "not a port"),
        ("api.example.com:", "not a port"),
        ("[2001:db8::1]:443", "brackets"),
        ("2001:db8::1", "more than one"),
        ("a..b.com:443", "empty label"),
        (":443", "empty"),
    ] {
        let e = input.parse::<NameRule>().expect_err(input);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("invalid egress name `{input}`")),
            "{msg}"
        );
        assert!(msg.contains(needle), "{input}: {msg}");
        assert!(msg.contains("write HOST or HOST:PORT"), "{input}: {msg}");
    }
    let e = "*.com:443".parse::<NameRule>().expect_err("too broad");
    assert_eq!(e.kind, NameErrorKind::TooBroad);
    assert_eq!(e.input, "*.com:443");
    NameRule::parse("*.com:443", Breadth::Forced).expect("forced");
}

#[test]
fn port_853_is_only_covered_explicitly() {
    let any = r("db.example.com");
    assert!(any.covers(5432, PROTO_TCP));
    assert!(any.covers(53, PROTO_UDP));
    assert!(!any.covers(DOT_PORT, PROTO_TCP));
    assert!(!any.covers(DOT_PORT, PROTO_UDP));
    assert!(r("db.example.com:853").covers(DOT_PORT, PROTO_TCP));
    let tcp_only = NameRule {
        protocols: Protocols::Tcp,
        ..r("db.example.com:5432")
    };
    assert!(tcp_only.covers(5432, PROTO_TCP));
    assert!(!tcp_only.covers(5432, PROTO_UDP));
    assert!(!tcp_only.covers(5433, PROTO_TCP));
}

#[test]
fn endpoints_expand_ports_and_protocols() {
    let rule = NameRule {
        protocols: Protocols::Tcp,
        ..r("db.example.com:5432,5433")
    };
    assert_eq!(
        rule.endpoints(),
        vec![
            Endpoint {
                port: Some(5432),
                proto: PROTO_TCP
            },
            Endpoint {
                port: Some(5433),
                proto: PROTO_TCP
            },
        ]
    );
    assert_eq!(
        r("db.example.com").endpoints(),
        vec![
            Endpoint {
                port: None,
                proto: PROTO_TCP
            },
            Endpoint {
                port: None,
                proto: PROTO_UDP
            },
        ]
    );
}
