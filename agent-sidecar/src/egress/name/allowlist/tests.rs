use super::*;
use crate::egress::RuleSource;
use agent_sidecar_common::{PROTO_TCP, PROTO_UDP};

fn list(rules: &[&str]) -> NameAllowlist {
    rules
        .iter()
        .enumerate()
        .map(|(i, s)| NameRule {
            source: Some(RuleSource::Flag(i + 1)),
            ..NameRule::parse(s, super::super::Breadth::Forced).expect(s)
        })
        .collect()
}

fn found(list: &NameAllowlist, name: &str) -> Option<String> {
    list.find(name).map(|r| r.to_string())
}

#[test]
fn most_specific_rule_wins() {
    let l = list(&[
        "**.example.com",
        "*.example.com",
        "api.example.com:443",
        "**.eu.example.com",
        "**",
    ]);
    assert_eq!(
        found(&l, "api.example.com").as_deref(),
        Some("api.example.com:443")
    );
    assert_eq!(
        found(&l, "API.Example.COM.").as_deref(),
        Some("api.example.com:443")
    );
    assert_eq!(
        found(&l, "www.example.com").as_deref(),
        Some("*.example.com")
    );
    assert_eq!(
        found(&l, "a.b.example.com").as_deref(),
        Some("**.example.com")
    );
    assert_eq!(
        found(&l, "a.eu.example.com").as_deref(),
        Some("**.eu.example.com")
    );
    assert_eq!(found(&l, "example.com").as_deref(), Some("**"));
    assert_eq!(found(&l, "other.org").as_deref(), Some("**"));
    assert_eq!(l.matches("api.example.com").len(), 4);
}

#[test]
fn unmatched_names_find_nothing() {
    let l = list(&["*.example.com", "api.example.org"]);
    for name in [
        "example.com",
        "a.b.example.com",
        "example.org",
        "x.api.example.org",
        "",
        ".",
        "com",
    ] {
        assert_eq!(found(&l, name), None, "{name}");
    }
    assert!(NameAllowlist::new().find("example.com").is_none());
    assert!(NameAllowlist::new().is_empty());
}

#[test]
fn same_pattern_keeps_insertion_order_and_find_port_picks_covering_rule() {
    let l = list(&[
        "db.example.com:5432",
        "db.example.com:6432",
        "**.example.com:22",
    ]);
    assert_eq!(
        found(&l, "db.example.com").as_deref(),
        Some("db.example.com:5432")
    );
    let by_port = |port, proto| {
        l.find_port("db.example.com", port, proto)
            .map(|r| r.to_string())
    };
    assert_eq!(
        by_port(6432, PROTO_TCP).as_deref(),
        Some("db.example.com:6432")
    );
    assert_eq!(by_port(22, PROTO_TCP).as_deref(), Some("**.example.com:22"));
    assert_eq!(by_port(23, PROTO_TCP), None);
    assert_eq!(l.rules()[1].source, Some(RuleSource::Flag(2)));
}

#[test]
fn doh_endpoints_need_an_exact_rule() {
    let wild = list(&["**.google", "**.cloudflare-dns.com", "*.nextdns.io"]);
    for name in [
        "dns.google",
        "cloudflare-dns.com.",
        "mozilla.cloudflare-dns.com",
        "dns.nextdns.io",
    ] {
        assert_eq!(found(&wild, name), None, "{name}");
    }
    assert_eq!(found(&wild, "www.google").as_deref(), Some("**.google"));
    let exact = list(&["dns.google:443", "**.google"]);
    assert_eq!(
        found(&exact, "dns.google").as_deref(),
        Some("dns.google:443")
    );
    assert_eq!(exact.find_port("dns.google", 853, PROTO_TCP), None);
    assert_eq!(
        exact
            .find_port("dns.google", 443, PROTO_UDP)
            .map(|r| r.to_string())
            .as_deref(),
        Some("dns.google:443")
    );
}

#[test]
fn port_853_needs_an_explicit_port() {
    let l = list(&["**.example.com", "dot.example.com:853"]);
    assert_eq!(l.find_port("a.example.com", 853, PROTO_TCP), None);
    assert!(l.find_port("dot.example.com", 853, PROTO_TCP).is_some());
}

#[test]
fn idna_lookup() {
    let l = list(&["*.bücher.example"]);
    assert!(l.find("shop.bücher.example").is_some());
    assert!(l.find("SHOP.xn--bcher-kva.example.").is_some());
    assert!(l.find("shop.bucher.example").is_none());
}

#[test]
fn large_allowlist_matches_like_a_linear_scan() {
    let mut rules = Vec::new();
    for i in 0..2_000 {
        rules.push(match i % 3 {
            0 => format!("host{i}.team{}.example.com", i % 17),
            1 => format!("*.team{}.example.com:{}", i % 17, 1000 + i),
            _ => format!("**.svc{i}.example.net"),
        });
    }
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    let l = list(&refs);
    let names = [
        "host3.team3.example.com",
        "host4.team4.example.com",
        "x.team5.example.com",
        "a.b.svc2.example.net",
        "svc2.example.net",
        "nothing.example.org",
    ];
    for name in names {
        let linear = l.rules().iter().filter(|r| r.pattern.matches(name)).count();
        assert_eq!(l.matches(name).len(), linear, "{name}");
    }
}
