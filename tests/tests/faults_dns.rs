//! Fault: the DNS upstream goes silent (a UDP socket that reads every query
//! and never answers). The agent's query for a name not in the cache gets
//! SERVFAIL after the documented bound (`upstream_attempts` rounds of
//! `upstream_timeout`: 2 x 2 s by default), not a hang; while it waits the
//! resolver keeps answering cached names and static hosts at once; the
//! failure is an event, a WARN line that names the silent server and the
//! time limit, and `agent_sidecar_dns_upstream_failures_total{reason=
//! "timeout"}`. Once the upstream answers again, the same name resolves
//! (a failure is not cached). Clients are `dig` (Debian bind9-dnsutils).
//!
//! Runs without root: the resolver on loopback, as `run` starts it.

use std::{
    net::SocketAddr,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use agent_sidecar::{
    dns::{self, DnsConfig, DnsDecision, DnsEvent, DnsMetrics, Hooks, parse_static_host},
    egress::{Breadth, NameAllowlist, NameRule},
};
use agent_sidecar_test_support::{
    dns::{Authority, Zone},
    log_capture::LogCapture,
};
use tokio::net::UdpSocket;

/// An upstream in front of `authority` that relays queries while `silent`
/// is false, and reads and drops them (counting) while it is true.
async fn switchable_upstream(
    authority: SocketAddr,
    silent: Arc<AtomicBool>,
    swallowed: Arc<AtomicU64>,
) -> SocketAddr {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, client)) = socket.recv_from(&mut buf).await {
            if silent.load(Ordering::SeqCst) {
                swallowed.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let query = buf[..n].to_vec();
            let socket = Arc::clone(&socket);
            tokio::spawn(async move {
                let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                relay.send_to(&query, authority).await.unwrap();
                let mut answer = vec![0u8; 65535];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(2), relay.recv(&mut answer)).await
                {
                    let _ = socket.send_to(&answer[..n], client).await;
                }
            });
        }
    });
    addr
}

/// `dig @addr -p PORT NAME A`, at most `wait` seconds; its output and how
/// long it took.
async fn dig(addr: SocketAddr, name: &str, wait: u32) -> (String, Duration) {
    let mut cmd = Command::new("dig");
    cmd.arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string()])
        .args(["+tries=1", &format!("+time={wait}"), name, "A"]);
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("dig runs (Debian bind9-dnsutils)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        start.elapsed(),
    )
}

fn status(dig: &str) -> &str {
    dig.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("none")
}

fn rule(text: &str) -> NameRule {
    NameRule::parse(text, Breadth::Strict).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_gives_servfail_in_time_and_the_resolver_stays_responsive() {
    let log = LogCapture::install();
    let mut zone = Zone::default();
    zone.addr("cached.example.test.", "203.0.113.10")
        .addr("fresh.example.test.", "203.0.113.11");
    let authority = Authority::start(zone).await;
    let silent = Arc::new(AtomicBool::new(false));
    let swallowed = Arc::new(AtomicU64::new(0));
    let upstream =
        switchable_upstream(authority.addr, Arc::clone(&silent), Arc::clone(&swallowed)).await;

    // The documented defaults: 2 rounds of 2 s.
    let mut config = DnsConfig::new(
        "faults-dns",
        vec!["127.0.0.1:0".parse().unwrap()],
        vec![upstream],
    );
    config
        .static_hosts
        .insert(parse_static_host("static.example.test=203.0.113.12").unwrap());
    let bound = config.upstream_timeout * config.upstream_attempts;
    let registry = prometheus::Registry::new();
    let metrics = DnsMetrics::register(&registry).unwrap();
    let events = Arc::new(Mutex::new(Vec::<DnsEvent>::new()));
    let sink = Arc::clone(&events);
    let hooks = Hooks {
        events: Some(Arc::new(move |e: &DnsEvent| {
            sink.lock().unwrap().push(e.clone())
        })),
        learned: None,
        metrics: Some(metrics.for_agent("faults-dns")),
    };
    let allowlist: NameAllowlist = [
        "cached.example.test",
        "fresh.example.test",
        "static.example.test",
    ]
    .into_iter()
    .map(rule)
    .collect();
    let server = dns::start(&config, allowlist, hooks).await.unwrap();
    let addr = server.local_addrs()[0];

    // Warm the cache while the upstream answers, then silence it.
    let (out, _) = dig(addr, "cached.example.test", 5).await;
    assert!(out.contains("203.0.113.10"), "{out}");
    silent.store(true, Ordering::SeqCst);

    // The query for a fresh name waits on the silent upstream ...
    let pending = tokio::spawn(dig(addr, "fresh.example.test", 10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... and meanwhile cached names and static hosts are answered at once.
    for _ in 0..5 {
        let (out, took) = dig(addr, "cached.example.test", 2).await;
        assert!(out.contains("203.0.113.10"), "{out}");
        assert!(took < Duration::from_secs(1), "cached answer took {took:?}");
        let (out, took) = dig(addr, "static.example.test", 2).await;
        assert!(out.contains("203.0.113.12"), "{out}");
        assert!(took < Duration::from_secs(1), "static answer took {took:?}");
    }
    let (out, took) = pending.await.unwrap();
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert!(
        took >= bound - Duration::from_millis(500) && took < bound + Duration::from_millis(1500),
        "SERVFAIL after {took:?}, the documented bound is {bound:?}"
    );
    // Every attempt reached the silent server: nothing was skipped.
    assert_eq!(
        swallowed.load(Ordering::SeqCst),
        u64::from(config.upstream_attempts)
    );

    // An event, a line and a metric that say what happened.
    let event = events
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.qname.as_deref() == Some("fresh.example.test"))
        .cloned()
        .expect("an event for the failed query");
    assert_eq!(event.decision, DnsDecision::UpstreamError);
    let said = format!("upstream {upstream} did not answer within 2s");
    assert_eq!(event.upstream.as_deref(), Some(said.as_str()));
    let lines = log.lines_with(&["WARN", "fresh.example.test", "upstream_error", &said]);
    assert_eq!(lines.len(), 1, "{}", log.text());
    let failures = |reason: &str| -> f64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "agent_sidecar_dns_upstream_failures_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "reason" && l.value() == reason)
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    };
    assert_eq!(failures("timeout"), 1.0);
    assert_eq!(failures("io"), 0.0);

    // The upstream answers again: the name resolves (no failure cached).
    silent.store(false, Ordering::SeqCst);
    let (out, _) = dig(addr, "fresh.example.test", 5).await;
    assert!(out.contains("203.0.113.11"), "{out}");
    assert_eq!(failures("timeout"), 1.0);
    server.shutdown().await;
}
