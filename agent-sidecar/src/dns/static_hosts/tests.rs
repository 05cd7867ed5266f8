use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Instant,
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{RData, RecordType},
};

use super::*;
use crate::dns::{
    DnsConfig, DnsDecision, DnsEvent, Hooks, Learned, LearnedSink, Resolver, Transport,
    resolver::{Local, STATIC_SOURCE},
    test_support::{allowlist, query},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn parses_name_equals_ip_in_canonical_form() {
    let h = parse_static_host("CRM.Demo.Test.=127.0.0.1").unwrap();
    assert_eq!(h.name, "crm.demo.test");
    assert_eq!(h.addr, ip("127.0.0.1"));
    assert_eq!(h.to_string(), "crm.demo.test=127.0.0.1");
    let v6: StaticHost = " api.bücher.example = [2001:db8::5] ".parse().unwrap();
    assert_eq!(v6.name, "api.xn--bcher-kva.example");
    assert_eq!(v6.addr, ip("2001:db8::5"));
    assert_eq!(
        parse_static_host("host=::1").unwrap().addr,
        ip("::1"),
        "a bare IPv6 address"
    );
}

#[test]
fn bad_entries_say_what_is_wrong() {
    for (input, hint) in [
        ("crm.demo.test", "no `=`"),
        ("=127.0.0.1", "name is empty"),
        ("*.demo.test=127.0.0.1", "wildcard"),
        ("**.demo.test=127.0.0.1", "wildcard"),
        ("crm.demo.test=localhost", "not an IPv4 or IPv6 address"),
        (
            "crm.demo.test=127.0.0.1:8443",
            "not an IPv4 or IPv6 address",
        ),
        ("crm.demo.test=", "not an IPv4 or IPv6 address"),
        ("10.0.0.1=127.0.0.1", "IP address"),
        ("bad name=127.0.0.1", "not allowed"),
    ] {
        let e = parse_static_host(input).expect_err(input);
        let text = e.to_string();
        assert!(
            matches!(e, ConfigError::StaticHost { .. }),
            "{input}: {e:?}"
        );
        assert!(text.contains(hint), "{input}: {text}");
        assert!(text.contains("write NAME=IP"), "{input}: {text}");
    }
}

#[test]
fn a_name_given_twice_gets_both_addresses_and_each_type_its_own() {
    let hosts: StaticHosts = [
        "crm.demo.test=127.0.0.1",
        "crm.demo.test=::1",
        "CRM.demo.test=127.0.0.1",
        "other.test=192.0.2.1",
    ]
    .iter()
    .map(|s| parse_static_host(s).unwrap())
    .collect();
    assert_eq!(hosts.len(), 2);
    assert_eq!(
        hosts.get("crm.demo.test"),
        Some(&[ip("127.0.0.1"), ip("::1")][..])
    );
    assert_eq!(
        hosts.answer("crm.demo.test", RecordType::A),
        Some(vec![ip("127.0.0.1")])
    );
    assert_eq!(
        hosts.answer("crm.demo.test", RecordType::AAAA),
        Some(vec![ip("::1")])
    );
    assert_eq!(
        hosts
            .answer("crm.demo.test", RecordType::ANY)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(hosts.answer("crm.demo.test", RecordType::MX), Some(vec![]));
    assert_eq!(hosts.answer("unknown.test", RecordType::A), None);
    let names: Vec<&str> = hosts.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["crm.demo.test", "other.test"]);
}

/// A resolver whose upstream is never asked (port 9, discard), with static
/// hosts and sinks for events and learned addresses.
struct Fixture {
    resolver: Resolver,
    events: Arc<Mutex<Vec<DnsEvent>>>,
    learned: Arc<Mutex<Learned>>,
}

fn fixture(rules: &[&str], learn: bool, hosts: &[&str]) -> Fixture {
    let mut config = DnsConfig::new(
        "agent-static",
        vec!["127.0.0.1:0".parse().unwrap()],
        vec!["127.0.0.1:9".parse().unwrap()],
    );
    config.static_hosts = hosts
        .iter()
        .map(|s| parse_static_host(s).unwrap())
        .collect();
    let events = Arc::new(Mutex::new(Vec::new()));
    let learned = Arc::new(Mutex::new(Learned::new()));
    let sink = Arc::clone(&events);
    let hooks = Hooks {
        events: Some(Arc::new(move |e: &DnsEvent| {
            sink.lock().unwrap().push(e.clone())
        })),
        learned: Some(Arc::clone(&learned) as Arc<dyn LearnedSink>),
        metrics: None,
    };
    Fixture {
        resolver: Resolver::new(&config, allowlist(rules, false, learn), hooks),
        events,
        learned,
    }
}

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5353);

/// The local answer to `qname`/`qtype`; panics if the resolver wants to ask
/// upstream.
fn ask_locally(f: &Fixture, qname: &str, qtype: RecordType) -> Message {
    let bytes = query(qname, qtype).to_vec().unwrap();
    match f.resolver.local(&bytes, CLIENT, Transport::Udp) {
        Local::Now(Some(answer)) => Message::from_vec(&answer).unwrap(),
        Local::Now(None) => panic!("{qname} {qtype}: no answer"),
        Local::Forward(_) => panic!("{qname} {qtype}: forwarded upstream"),
    }
}

fn addresses(m: &Message) -> Vec<(IpAddr, u32)> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some((IpAddr::V4(a.0), r.ttl())),
            RData::AAAA(a) => Some((IpAddr::V6(a.0), r.ttl())),
            _ => None,
        })
        .collect()
}

#[test]
fn allowlisted_static_host_is_answered_locally_with_ttl_60_and_no_rebinding_guard() {
    let f = fixture(
        &["crm.demo.test:8443"],
        false,
        &["crm.demo.test=127.0.0.1", "crm.demo.test=::1"],
    );
    let a = ask_locally(&f, "CRM.demo.test.", RecordType::A);
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert_eq!(a.id(), 0x1234);
    assert_eq!(addresses(&a), [(ip("127.0.0.1"), STATIC_TTL)]);
    assert_eq!(
        a.answers()[0].name(),
        a.queries()[0].name(),
        "the owner name is the question's"
    );
    let aaaa = ask_locally(&f, "crm.demo.test.", RecordType::AAAA);
    assert_eq!(addresses(&aaaa), [(ip("::1"), STATIC_TTL)]);
    // Another address-family type: the name exists, with no such record
    // (NODATA).
    let https = ask_locally(&f, "crm.demo.test.", RecordType::HTTPS);
    assert_eq!(https.response_code(), ResponseCode::NoError);
    assert!(https.answers().is_empty());
    // A type that is never forwarded is refused for static hosts too.
    let txt = ask_locally(&f, "crm.demo.test.", RecordType::TXT);
    assert_eq!(txt.response_code(), ResponseCode::Refused);

    let events = f.events.lock().unwrap();
    assert_eq!(events.len(), 4);
    let e = &events[0];
    assert_eq!(e.decision, DnsDecision::Allowed);
    assert_eq!(e.upstream.as_deref(), Some(STATIC_SOURCE));
    assert_eq!(e.answers, [ip("127.0.0.1")]);
    assert!(e.dropped.is_empty(), "loopback kept: operator-given");
    assert_eq!(e.ttl, Some(STATIC_TTL));
    assert_eq!(e.rule.as_deref(), Some("crm.demo.test:8443"));
}

#[test]
fn a_static_host_the_allowlist_does_not_allow_is_refused() {
    let f = fixture(&["api.example.test"], false, &["crm.demo.test=127.0.0.1"]);
    let r = ask_locally(&f, "crm.demo.test.", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert!(r.answers().is_empty());
    assert_eq!(
        f.events.lock().unwrap()[0].decision,
        DnsDecision::Refused,
        "the allowlist decides first"
    );
    // An allowlisted name without a static entry still goes upstream.
    let bytes = query("api.example.test.", RecordType::A).to_vec().unwrap();
    assert!(matches!(
        f.resolver.local(&bytes, CLIENT, Transport::Udp),
        Local::Forward(_)
    ));
}

#[test]
fn static_answers_respect_max_ttl() {
    let mut config = DnsConfig::new(
        "agent-static",
        vec!["127.0.0.1:0".parse().unwrap()],
        vec!["127.0.0.1:9".parse().unwrap()],
    );
    config.max_ttl = std::time::Duration::from_secs(10);
    config.static_hosts = [parse_static_host("crm.demo.test=192.0.2.7").unwrap()]
        .into_iter()
        .collect();
    let f = Fixture {
        resolver: Resolver::new(
            &config,
            allowlist(&["crm.demo.test"], false, false),
            Hooks::default(),
        ),
        events: Arc::default(),
        learned: Arc::default(),
    };
    let a = ask_locally(&f, "crm.demo.test.", RecordType::A);
    assert_eq!(addresses(&a), [(ip("192.0.2.7"), 10)]);
}

#[test]
fn static_addresses_are_learned_by_learning_rules_private_or_not() {
    let f = fixture(&["db.demo.test:5432"], true, &["db.demo.test=10.0.0.5"]);
    let before = Instant::now();
    let a = ask_locally(&f, "db.demo.test.", RecordType::A);
    assert_eq!(addresses(&a), [(ip("10.0.0.5"), STATIC_TTL)]);
    let mut table = f.learned.lock().unwrap();
    assert_eq!(table.len(), 2, "TCP and UDP on 5432");
    // TTL 60 + the default 60 s grace.
    assert!(
        table
            .expired(before + std::time::Duration::from_secs(119))
            .is_empty()
    );
    let gone = table.expired(Instant::now() + std::time::Duration::from_secs(121));
    assert!(gone.iter().all(|k| k.addr == ip("10.0.0.5")));
    assert_eq!(gone.len(), 2);
}
