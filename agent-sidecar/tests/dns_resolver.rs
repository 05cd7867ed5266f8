//! The per-agent DNS resolver end to end: a local authoritative server for
//! test zones (`agent_sidecar_test_support::dns`) as the upstream, the resolver on
//! 127.0.0.1, and real clients: `dig` (Debian `bind9-dnsutils`) and
//! hickory's client, over UDP and TCP.

use std::{
    net::{IpAddr, SocketAddr},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agent_sidecar::{
    dns::{
        self, DnsConfig, DnsDecision, DnsEvent, DnsMetrics, DnsServer, Hooks, Learned, RefusalMode,
    },
    egress::{Breadth, NameAllowlist, NameRule},
};
use agent_sidecar_test_support::dns::{Authority, Zone, name};
use hickory_client::{
    client::{Client, ClientHandle},
    proto::{
        op::ResponseCode,
        rr::{
            DNSClass, RData, RecordType,
            rdata::{
                HTTPS, SVCB,
                svcb::{Alpn, EchConfigList, IpHint, SvcParamKey, SvcParamValue},
            },
        },
        runtime::TokioRuntimeProvider,
        tcp::TcpClientStream,
        udp::UdpClientStream,
        xfer::DnsResponse,
    },
};
use tokio::net::UdpSocket;

/// A resolver in front of an authority, with its events, learned addresses
/// and metrics.
struct Harness {
    authority: Authority,
    server: DnsServer,
    events: Arc<Mutex<Vec<DnsEvent>>>,
    learned: Arc<Mutex<Learned>>,
    registry: prometheus::Registry,
}

impl Harness {
    fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    fn events(&self) -> Vec<DnsEvent> {
        self.events.lock().unwrap().clone()
    }

    fn last_event(&self, qname: &str) -> DnsEvent {
        self.events()
            .into_iter()
            .rev()
            .find(|e| e.qname.as_deref() == Some(qname))
            .unwrap_or_else(|| panic!("no event for {qname}: {:?}", self.events()))
    }

    fn budget_refused(&self, limit: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "agent_sidecar_dns_budget_refused_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "limit" && l.value() == limit)
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }

    fn metric(&self, decision: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "agent_sidecar_dns_queries_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "decision" && l.value() == decision)
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }
}

fn rule(text: &str) -> NameRule {
    NameRule::parse(text, Breadth::Strict).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn test_zone() -> Zone {
    let mut zone = Zone::default();
    zone.addr("api.example.test.", "203.0.113.10")
        .addr("api.example.test.", "2001:db8::10")
        .addr("evil.example.test.", "203.0.113.66")
        .addr("a.wild.example.test.", "203.0.113.21")
        .addr("a.b.wild.example.test.", "203.0.113.22")
        .addr("x.y.deep.example.test.", "203.0.113.23")
        .addr("deep.example.test.", "203.0.113.24")
        .addr("internal.example.test.", "10.0.0.5")
        .addr("meta.example.test.", "169.254.169.254")
        .addr("xn--bcher-kva.example.test.", "203.0.113.30")
        .cname("www.example.test.", "edge.cdn-provider.test.")
        .addr("edge.cdn-provider.test.", "203.0.113.40")
        .addr("db.example.test.", "203.0.113.50");
    let params = vec![
        (
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
        ),
        (
            SvcParamKey::Ipv4Hint,
            SvcParamValue::Ipv4Hint(IpHint(vec![
                "10.0.0.7".parse::<std::net::Ipv4Addr>().unwrap().into(),
            ])),
        ),
        (
            SvcParamKey::EchConfigList,
            SvcParamValue::EchConfigList(EchConfigList(vec![0, 1, 2, 3])),
        ),
    ];
    zone.add(
        "api.example.test.",
        300,
        RData::HTTPS(HTTPS(SVCB::new(1, name("."), params.clone()))),
    );
    zone.add(
        "evil.example.test.",
        300,
        RData::HTTPS(HTTPS(SVCB::new(1, name("."), params))),
    );
    for i in 0..120 {
        zone.addr("big.example.test.", &format!("198.51.100.{}", i + 1));
    }
    zone.truncate_udp("big.example.test.");
    zone
}

async fn harness_with(rules: Vec<NameRule>, tweak: impl FnOnce(&mut DnsConfig)) -> Harness {
    let authority = Authority::start(test_zone()).await;
    let mut config = DnsConfig::new(
        "agent-test",
        vec!["127.0.0.1:0".parse().unwrap()],
        vec![authority.addr],
    );
    config.upstream_timeout = Duration::from_millis(500);
    tweak(&mut config);
    let events = Arc::new(Mutex::new(Vec::new()));
    let learned = Arc::new(Mutex::new(Learned::new()));
    let registry = prometheus::Registry::new();
    let metrics = DnsMetrics::register(&registry).expect("metrics");
    let sink_events = Arc::clone(&events);
    let hooks = Hooks {
        events: Some(Arc::new(move |e: &DnsEvent| {
            sink_events.lock().unwrap().push(e.clone())
        })),
        learned: Some(Arc::clone(&learned) as Arc<dyn dns::LearnedSink>),
        metrics: Some(metrics.for_agent("agent-test")),
    };
    let allowlist: NameAllowlist = rules.into_iter().collect();
    let server = dns::start(&config, allowlist, hooks)
        .await
        .expect("start resolver");
    Harness {
        authority,
        server,
        events,
        learned,
        registry,
    }
}

async fn harness(rules: &[&str]) -> Harness {
    harness_with(rules.iter().map(|r| rule(r)).collect(), |_| {}).await
}

/// Runs `dig @addr -p port ARGS` and returns its output.
async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let mut cmd = Command::new("dig");
    cmd.arg(format!("@{}", addr.ip()))
        .arg("-p")
        .arg(addr.port().to_string())
        .args(["+tries=1", "+time=3"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| {
            panic!("cannot run `dig` ({e}): install Debian's bind9-dnsutils (apt-get install bind9-dnsutils)")
        });
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn status(dig_output: &str) -> &str {
    dig_output
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output:\n{dig_output}"))
}

/// The addresses in the ANSWER section of `dig` output.
fn dig_addresses(dig_output: &str) -> Vec<String> {
    dig_output
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields.as_slice() {
                [_, _, "IN", "A" | "AAAA", ip] => Some(ip.to_string()),
                _ => None,
            }
        })
        .collect()
}

async fn udp_client(addr: SocketAddr) -> Client {
    let conn = UdpClientStream::builder(addr, TokioRuntimeProvider::default()).build();
    let (client, bg) = Client::connect(conn).await.expect("udp client");
    tokio::spawn(bg);
    client
}

async fn tcp_client(addr: SocketAddr) -> Client {
    let (stream, sender) = TcpClientStream::new(addr, None, None, TokioRuntimeProvider::default());
    let (client, bg) = Client::new(stream, sender, None).await.expect("tcp client");
    tokio::spawn(bg);
    client
}

async fn ask(client: &mut Client, qname: &str, qtype: RecordType) -> DnsResponse {
    client
        .query(name(qname), DNSClass::IN, qtype)
        .await
        .unwrap_or_else(|e| panic!("{qname} {qtype}: {e}"))
}

fn addresses(response: &DnsResponse) -> Vec<IpAddr> {
    response
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_name_is_answered_to_dig_and_hickory() {
    let h = harness(&["api.example.test:443"]).await;
    let out = dig(h.addr(), &["api.example.test", "A"]).await;
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(dig_addresses(&out), ["203.0.113.10"]);
    let mut client = udp_client(h.addr()).await;
    let aaaa = ask(&mut client, "api.example.test.", RecordType::AAAA).await;
    assert_eq!(
        addresses(&aaaa),
        ["2001:db8::10".parse::<IpAddr>().unwrap()]
    );
    let event = h.last_event("api.example.test");
    assert_eq!(event.decision, DnsDecision::Allowed);
    assert_eq!(event.rule.as_deref(), Some("api.example.test:443"));
    assert_eq!(event.qtype.as_deref(), Some("AAAA"));
    assert_eq!(event.agent_id.as_ref(), "agent-test");
    assert!(h.authority.saw("api.example.test"));
    assert_eq!(h.metric("allowed"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_name_gets_nxdomain_and_never_reaches_upstream() {
    let h = harness(&["api.example.test"]).await;
    let out = dig(h.addr(), &["evil.example.test", "A"]).await;
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    for qtype in ["HTTPS", "ANY", "SVCB"] {
        let out = dig(h.addr(), &["evil.example.test", qtype]).await;
        assert_eq!(status(&out), "REFUSED", "{qtype}: {out}");
    }
    assert!(
        !h.authority.saw("evil.example.test"),
        "the denied name leaked upstream: {:?}",
        h.authority.log()
    );
    let event = h.last_event("evil.example.test");
    assert_eq!(event.decision, DnsDecision::Refused);
    assert_eq!(h.metric("refused"), 4.0);
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["decision"], "refused");
    assert_eq!(json["reason"], "service_query_not_allowlisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_mode_answers_refused() {
    let h = harness_with(vec![rule("api.example.test")], |c| {
        c.refusal = RefusalMode::Refused
    })
    .await;
    let out = dig(h.addr(), &["evil.example.test", "A"]).await;
    assert_eq!(status(&out), "REFUSED", "{out}");
    assert!(!h.authority.saw("evil.example.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_hints_and_ech_are_stripped() {
    let h = harness(&["api.example.test"]).await;
    let mut client = udp_client(h.addr()).await;
    let response = ask(&mut client, "api.example.test.", RecordType::HTTPS).await;
    let [record] = response.answers() else {
        panic!("one HTTPS record: {response:?}")
    };
    let RData::HTTPS(HTTPS(svcb)) = record.data() else {
        panic!("not HTTPS: {record:?}")
    };
    let keys: Vec<SvcParamKey> = svcb.svc_params().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, [SvcParamKey::Alpn]);
    let out = dig(h.addr(), &["api.example.test", "HTTPS"]).await;
    assert_eq!(status(&out), "NOERROR");
    assert!(
        out.contains("alpn=\"h2\"") || out.contains("alpn=h2"),
        "{out}"
    );
    assert!(!out.contains("ipv4hint") && !out.contains("ech="), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_guard_drops_internal_answers_unless_allowed() {
    let h = harness(&["internal.example.test", "meta.example.test"]).await;
    let out = dig(h.addr(), &["internal.example.test", "A"]).await;
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(dig_addresses(&out).is_empty(), "{out}");
    let event = h.last_event("internal.example.test");
    assert_eq!(event.decision, DnsDecision::RebindingDropped);
    assert_eq!(event.dropped[0].addr, "10.0.0.5".parse::<IpAddr>().unwrap());
    let json = serde_json::to_value(h.last_event("internal.example.test")).unwrap();
    assert_eq!(json["dropped"][0]["range"], "private");
    let out = dig(h.addr(), &["meta.example.test", "A"]).await;
    assert!(dig_addresses(&out).is_empty(), "{out}");
    assert_eq!(h.metric("rebinding_dropped"), 2.0);

    let exempt = harness_with(
        vec![NameRule {
            allow_private: true,
            ..rule("internal.example.test")
        }],
        |_| {},
    )
    .await;
    let out = dig(exempt.addr(), &["internal.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out), ["10.0.0.5"], "{out}");
    assert_eq!(
        exempt.last_event("internal.example.test").decision,
        DnsDecision::Allowed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_cover_one_label_or_any_depth() {
    let h = harness(&["*.wild.example.test", "**.deep.example.test"]).await;
    let cases = [
        ("a.wild.example.test", "NOERROR"),
        ("a.b.wild.example.test", "NXDOMAIN"),
        ("x.y.deep.example.test", "NOERROR"),
        ("deep.example.test", "NXDOMAIN"),
    ];
    for (qname, expected) in cases {
        let out = dig(h.addr(), &[qname, "A"]).await;
        assert_eq!(status(&out), expected, "{qname}: {out}");
    }
    assert!(!h.authority.saw("a.b.wild.example.test"));
    assert!(!h.authority.saw("deep.example.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idna_rule_allows_the_punycode_name() {
    let h = harness(&["bücher.example.test"]).await;
    let out = dig(h.addr(), &["xn--bcher-kva.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out), ["203.0.113.30"], "{out}");
    let mut client = udp_client(h.addr()).await;
    let response = ask(&mut client, "XN--BCHER-KVA.example.test.", RecordType::A).await;
    assert_eq!(addresses(&response).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_queries_are_answered() {
    let h = harness(&["api.example.test"]).await;
    let out = dig(h.addr(), &["+tcp", "api.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out), ["203.0.113.10"], "{out}");
    let out = dig(h.addr(), &["+tcp", "evil.example.test", "A"]).await;
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    let mut client = tcp_client(h.addr()).await;
    for _ in 0..3 {
        let response = ask(&mut client, "api.example.test.", RecordType::A).await;
        assert_eq!(addresses(&response).len(), 1);
    }
    assert!(
        h.events()
            .iter()
            .any(|e| e.transport == dns::Transport::Tcp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_upstream_answer_is_fetched_over_tcp() {
    let h = harness(&["big.example.test"]).await;
    // Over UDP the 120 addresses exceed 1232 bytes: the client gets TC and
    // dig retries over TCP by itself.
    let out = dig(h.addr(), &["big.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out).len(), 120, "{out}");
    let log = h.authority.log();
    assert!(
        log.iter().any(|l| l.name == "big.example.test" && !l.tcp),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.name == "big.example.test" && l.tcp),
        "{log:?}"
    );
    let mut client = udp_client(h.addr()).await;
    let response = ask(&mut client, "big.example.test.", RecordType::A).await;
    assert!(
        response.truncated(),
        "UDP answer to the client is truncated"
    );
    let event = h.last_event("big.example.test");
    assert!(event.cached, "second query served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_formerr_or_are_dropped_and_serving_goes_on() {
    let h = harness(&["api.example.test"]).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Readable header, garbage question: FORMERR with the same id.
    let mut garbage = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff; 9]);
    socket.send_to(&garbage, h.addr()).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .expect("FORMERR in time")
        .unwrap();
    let reply = hickory_client::proto::op::Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.id(), 0xabcd);
    assert_eq!(reply.response_code(), ResponseCode::FormErr);
    // Truncated header and random bytes: no answer.
    for bytes in [&[0x01u8, 0x02, 0x03][..], &[0x00; 5][..]] {
        socket.send_to(bytes, h.addr()).await.unwrap();
        let silent =
            tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await;
        assert!(silent.is_err(), "no reply to {bytes:?}");
    }
    let mut seed = 0x2545_f491_u32;
    for _ in 0..200 {
        let len = (seed % 300) as usize;
        let packet: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        socket.send_to(&packet, h.addr()).await.unwrap();
    }
    // Over TCP too.
    let out = dig(h.addr(), &["api.example.test", "A"]).await;
    assert_eq!(
        dig_addresses(&out),
        ["203.0.113.10"],
        "still serving: {out}"
    );
    assert!(h.metric("malformed") >= 3.0);
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(&[0, garbage.len() as u8]).await.unwrap();
    stream.write_all(&garbage).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await.unwrap();
    let reply = hickory_client::proto::op::Message::from_vec(&body).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::FormErr);
    let out = dig(h.addr(), &["+tcp", "api.example.test", "A"]).await;
    assert_eq!(status(&out), "NOERROR", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_to_unlisted_cdn_is_followed_but_the_cdn_name_is_not_resolvable() {
    let h = harness(&["www.example.test"]).await;
    let out = dig(h.addr(), &["www.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out), ["203.0.113.40"], "{out}");
    assert!(out.contains("CNAME"), "{out}");
    let out = dig(h.addr(), &["edge.cdn-provider.test", "A"]).await;
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_http_rules_learn_addresses_until_ttl_plus_grace() {
    let h = harness_with(
        vec![
            NameRule {
                learn: true,
                ..rule("db.example.test:5432")
            },
            rule("api.example.test:443"),
        ],
        |c| c.grace = Duration::from_secs(60),
    )
    .await;
    let before = Instant::now();
    let out = dig(h.addr(), &["db.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out), ["203.0.113.50"]);
    dig(h.addr(), &["api.example.test", "A"]).await;
    let mut table = h.learned.lock().unwrap();
    assert_eq!(
        table.len(),
        2,
        "TCP and UDP on 5432, nothing for the HTTP rule"
    );
    assert!(table.expired(before + Duration::from_secs(359)).is_empty());
    let gone = table.expired(Instant::now() + Duration::from_secs(361));
    assert_eq!(gone.len(), 2);
    assert!(
        gone.iter()
            .all(|k| k.addr == "203.0.113.50".parse::<IpAddr>().unwrap()
                && k.endpoint.port == Some(5432))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_do_not_ask_upstream_again() {
    let h = harness(&["api.example.test"]).await;
    let mut client = udp_client(h.addr()).await;
    for _ in 0..5 {
        let response = ask(&mut client, "api.example.test.", RecordType::A).await;
        assert_eq!(addresses(&response).len(), 1);
    }
    let asked = h
        .authority
        .log()
        .iter()
        .filter(|l| l.name == "api.example.test")
        .count();
    assert_eq!(asked, 1);
    assert_eq!(h.events().iter().filter(|e| e.cached).count(), 4);
    // A new allowlist empties the cache and applies at once.
    h.server.resolver().set_allowlist(NameAllowlist::new());
    let out = dig(h.addr(), &["api.example.test", "A"]).await;
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstreams_are_skipped_and_all_dead_gives_servfail() {
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    let h = harness_with(vec![rule("api.example.test")], |c| {
        c.upstreams.insert(0, dead_addr);
        c.upstream_timeout = Duration::from_millis(200);
    })
    .await;
    let out = dig(h.addr(), &["api.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out), ["203.0.113.10"], "{out}");

    let all_dead = harness_with(vec![rule("api.example.test")], |c| {
        c.upstreams = vec![dead_addr];
        c.upstream_timeout = Duration::from_millis(200);
        c.upstream_attempts = 1;
    })
    .await;
    let out = dig(all_dead.addr(), &["api.example.test", "A"]).await;
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    let event = all_dead.last_event("api.example.test");
    assert_eq!(event.decision, DnsDecision::UpstreamError);
    assert!(
        event
            .upstream
            .as_deref()
            .is_some_and(|u| u.contains("did not answer")),
        "{event:?}"
    );
    drop(dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_listen_addresses_and_shutdown() {
    let authority = Authority::start(test_zone()).await;
    let listen = vec![
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.2:0".parse().unwrap(),
    ];
    let config = DnsConfig::new("agent-test", listen, vec![authority.addr]);
    let allowlist: NameAllowlist = [rule("api.example.test")].into_iter().collect();
    let server = dns::start(&config, allowlist, Hooks::default())
        .await
        .expect("start");
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    for addr in &addrs {
        let out = dig(*addr, &["api.example.test", "A"]).await;
        assert_eq!(dig_addresses(&out), ["203.0.113.10"], "{addr}: {out}");
    }
    server.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addrs[0]).await.is_err(),
        "TCP listener closed"
    );
    let bad = DnsConfig::new("agent-test", vec![], vec![authority.addr]);
    assert!(
        dns::start(&bad, NameAllowlist::new(), Hooks::default())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_hosts_are_answered_without_upstream_for_allowlisted_names_only() {
    // api.example.test exists upstream (203.0.113.10): the static entry wins.
    let h = harness_with(
        vec![rule("crm.demo.test:8443"), rule("api.example.test")],
        |c| {
            c.static_hosts = [
                "crm.demo.test=127.0.0.1",
                "crm.demo.test=::1",
                "api.example.test=192.0.2.44",
                "hidden.demo.test=127.0.0.1",
            ]
            .iter()
            .map(|s| dns::parse_static_host(s).unwrap())
            .collect();
        },
    )
    .await;
    let out = dig(h.addr(), &["crm.demo.test", "A"]).await;
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(dig_addresses(&out), ["127.0.0.1"], "{out}");
    let ttls: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, ttl, "IN", "A", _] => Some(ttl),
            _ => None,
        })
        .collect();
    assert_eq!(ttls, ["60"], "TTL 60: {out}");
    let out = dig(h.addr(), &["+tcp", "crm.demo.test", "AAAA"]).await;
    assert_eq!(dig_addresses(&out), ["::1"], "{out}");
    let out = dig(h.addr(), &["api.example.test", "A"]).await;
    assert_eq!(dig_addresses(&out), ["192.0.2.44"], "{out}");
    // Not allowlisted: refused, static entry or not.
    let out = dig(h.addr(), &["hidden.demo.test", "A"]).await;
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(
        h.authority.log().is_empty(),
        "nothing went upstream: {:?}",
        h.authority.log()
    );
    let event = h.last_event("crm.demo.test");
    assert_eq!(event.decision, DnsDecision::Allowed);
    assert_eq!(event.answers, ["::1".parse::<IpAddr>().unwrap()]);
    assert!(event.dropped.is_empty(), "no rebinding guard: {event:?}");
    assert_eq!(
        event.upstream.as_deref(),
        Some(dns::resolver::STATIC_SOURCE)
    );
    assert_eq!(h.metric("allowed"), 3.0);
    assert_eq!(h.metric("rebinding_dropped"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_names_forward_only_address_types_and_lower_case() {
    let h = harness(&["api.example.test:443"]).await;
    // Types that carry no address (TXT, MX, NULL, SRV, ANY) and unassigned
    // numbers are refused: the agent chooses none of the 16 type bits.
    for qtype in ["TXT", "MX", "NULL", "SRV", "ANY", "TYPE65280", "TYPE4242"] {
        let out = dig(h.addr(), &["api.example.test", qtype]).await;
        assert_eq!(status(&out), "REFUSED", "{qtype}: {out}");
    }
    assert!(
        h.authority.log().is_empty(),
        "a refused type reached upstream: {:?}",
        h.authority.log()
    );
    let event = h.last_event("api.example.test");
    assert_eq!(
        serde_json::to_value(&event).unwrap()["reason"],
        "query_type"
    );
    // The letter case the agent chose does not reach upstream, and the
    // agent's answer still matches its question.
    let out = dig(h.addr(), &["ApI.eXaMpLe.TeSt", "A"]).await;
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(dig_addresses(&out), ["203.0.113.10"]);
    assert!(out.contains("ApI.eXaMpLe.TeSt."), "{out}");
    let mut client = udp_client(h.addr()).await;
    let https = ask(&mut client, "API.EXAMPLE.TEST.", RecordType::HTTPS).await;
    assert_eq!(https.response_code(), ResponseCode::NoError);
    let asked: Vec<String> = h.authority.log().iter().map(|l| l.asked.clone()).collect();
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|a| a == &a.to_ascii_lowercase()),
        "the agent's letter case reached upstream: {asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_rule_carries_no_more_distinct_names_than_the_budget() {
    let h = harness_with(vec![rule("*.wild.example.test")], |c| {
        c.budget = dns::BudgetLimits {
            queries: 1000,
            names: 10,
        }
    })
    .await;
    // An agent tunnelling data in unique labels.
    for i in 0..30 {
        let label = format!("chunk{i:03}-4f6e65207365637265742062797465.wild.example.test");
        dig(h.addr(), &[&label, "A"]).await;
    }
    let seen: std::collections::BTreeSet<String> =
        h.authority.log().into_iter().map(|l| l.name).collect();
    assert_eq!(seen.len(), 10, "distinct names upstream: {seen:?}");
    assert_eq!(h.budget_refused("names"), 20.0);
    // Names already spent in this minute keep resolving (from the cache, or
    // within the query budget), so the agent's real hosts keep working.
    let out = dig(h.addr(), &["a.wild.example.test", "A"]).await;
    assert_eq!(status(&out), "NXDOMAIN", "a new name is refused: {out}");
    let first = "chunk000-4f6e65207365637265742062797465.wild.example.test";
    let before = h.authority.log().len();
    dig(h.addr(), &[first, "AAAA"]).await;
    assert_eq!(h.authority.log().len(), before + 1, "a spent name resolves");
    let event = h.last_event("a.wild.example.test");
    assert_eq!(
        serde_json::to_value(&event).unwrap()["reason"],
        "budget_exceeded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_budget_bounds_forwarded_queries_of_an_exact_name() {
    let h = harness_with(vec![rule("api.example.test")], |c| {
        c.budget = dns::BudgetLimits {
            queries: 5,
            names: 60,
        };
        c.refusal = RefusalMode::Refused;
    })
    .await;
    let mut client = udp_client(h.addr()).await;
    let mut refused = 0;
    for _ in 0..4 {
        for qtype in [RecordType::A, RecordType::AAAA, RecordType::HTTPS] {
            // The cache would answer repeats: empty it through a reload.
            h.server
                .resolver()
                .set_allowlist([rule("api.example.test")].into_iter().collect());
            let r = ask(&mut client, "api.example.test.", qtype).await;
            if r.response_code() == ResponseCode::Refused {
                refused += 1;
            }
        }
    }
    assert_eq!(h.authority.log().len(), 5, "{:?}", h.authority.log());
    assert_eq!(refused, 7);
    assert_eq!(h.budget_refused("queries"), 7.0);
}
