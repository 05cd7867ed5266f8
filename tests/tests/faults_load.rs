//! Faults of load: the admin API flooded, and an agent opening 10,000
//! connections to its proxy. In both the sidecar keeps governing tool calls
//! (a tier-1 call through the proxy answers 200, loosely within seconds),
//! the admin API keeps answering an operator's request, the limits hold,
//! each refusal is logged and counted, and the process's open fds return
//! to where they were once the clients are gone.
//!
//! Runs without root (root lifts the fd limit further): the gateway is
//! wired as `run` wires it, minus the kernel (see
//! `agent_sidecar_test_support::sidecar::gateway`). Both tests raise the
//! process's RLIMIT_NOFILE.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use agent_sidecar::admin::{MAX_CONNECTIONS, MAX_PER_PEER};
use agent_sidecar_test_support::{
    curl::curl,
    log_capture::LogCapture,
    sidecar::gateway::{Harness, Options},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinSet,
};

/// The tests count the process's open fds: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOKEN: &str = "a-fault-test-admin-token-of-some-length";

/// Raises RLIMIT_NOFILE to `n` (as root) or to the hard limit.
fn raise_nofile(n: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if setrlimit(Resource::RLIMIT_NOFILE, n, n).is_ok() {
        return n;
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    hard
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Waits up to `limit` for the open fds to come back to `baseline` (plus a
/// little slack for the runtime's own); returns the last count.
async fn fds_settle(baseline: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let n = open_fds();
        if n <= baseline + 8 || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket.connect(to).await
}

/// `GET /v1/approvals` with `token` from `from`; the status, 0 when the
/// connection was closed without an answer.
async fn admin_get(from: Ipv4Addr, admin: SocketAddr, token: &str) -> u16 {
    let Ok(mut s) = connect_from(from, admin).await else {
        return 0;
    };
    let req = format!(
        "GET /v1/approvals HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3)?.parse().ok())
        .unwrap_or(0)
}

/// A tier-1 call through the explicit proxy: its status and how long it took.
async fn tool_call(h: &Harness) -> (u16, Duration) {
    let start = Instant::now();
    let (code, _) = curl(&h.explicit_args(), &[&h.url("/v1/invoices")]).await;
    (code, start.elapsed())
}

fn admin_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_admin_api_keeps_answering_the_operator_and_the_sidecar_keeps_governing() {
    let _serial = SERIAL.lock().await;
    raise_nofile(65_536);
    let log = LogCapture::install();
    let h = Harness::start(Options::default()).await;
    let admin = admin_addr(&h.admin(TOKEN).await);
    let operator = Ipv4Addr::new(127, 0, 0, 2);
    assert_eq!(admin_get(operator, admin, TOKEN).await, 200);
    assert_eq!(tool_call(&h).await.0, 200);
    let baseline = open_fds();

    // The flood: 4,000 requests at once from one address, half with a bad
    // token, half with the good one.
    let mut flood = JoinSet::new();
    for i in 0..4_000 {
        let token = if i % 2 == 0 { TOKEN } else { "a-wrong-token" };
        flood.spawn(admin_get(Ipv4Addr::LOCALHOST, admin, token));
    }
    // Meanwhile: the operator from another address, and tool calls.
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(admin_get(operator, admin, TOKEN).await, 200);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        let (code, took) = tool_call(&h).await;
        assert_eq!(code, 200);
        assert!(took < Duration::from_secs(5), "tool call took {took:?}");
    }
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    while let Some(status) = flood.join_next().await {
        *statuses.entry(status.unwrap()).or_default() += 1;
    }
    // Answered (200 good token, 401 bad, 429 the peer is throttled) or
    // closed unserved (0, past the peer's share); never a server error.
    assert!(
        statuses.keys().all(|s| [0, 200, 401, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.get(&401).is_some_and(|n| *n > 0), "{statuses:?}");

    // Idle connections past the peer's share are closed at once, counted.
    let before = h.metric("agent_sidecar_admin_connections_refused_total{reason=\"peer_limit\"}");
    let mut idle = Vec::new();
    for _ in 0..MAX_PER_PEER + 36 {
        idle.push(connect_from(Ipv4Addr::LOCALHOST, admin).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.metric("agent_sidecar_admin_connections_refused_total{reason=\"peer_limit\"}")
        < before + 36.0
    {
        assert!(Instant::now() < deadline, "{}", h.metrics.render());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin_get(operator, admin, TOKEN).await, 200);
    assert_eq!(tool_call(&h).await.0, 200);
    drop(idle);
    const { assert!(MAX_CONNECTIONS > MAX_PER_PEER) };
    assert!(
        !log.lines_with(&[
            "WARN",
            "admin listener: connections closed unserved",
            "peer_limit"
        ])
        .is_empty(),
        "{}",
        log.text()
    );
    assert!(h.metric("agent_sidecar_admin_auth_failures_total") > 0.0);

    // Nothing kept: the fds come back.
    let after = fds_settle(baseline, Duration::from_secs(20)).await;
    assert!(
        after <= baseline + 8,
        "fds {baseline} before, {after} after"
    );
    assert_eq!(admin_get(operator, admin, TOKEN).await, 200);
    eprintln!("admin flood: {statuses:?}, fds {baseline} -> {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_agent_connections_hold_the_proxy_limit_and_the_sidecar_stays_responsive() {
    let _serial = SERIAL.lock().await;
    raise_nofile(65_536);
    let log = LogCapture::install();
    let h = Harness::start(Options::default()).await;
    let admin = admin_addr(&h.admin(TOKEN).await);
    assert_eq!(tool_call(&h).await.0, 200);
    let baseline = open_fds();
    let limit = agent_sidecar::proxy::ProxyConfig::default().max_connections;

    // 10,000 connections to the proxy that never send a byte.
    let mut held = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        held.push(TcpStream::connect(h.proxies.explicit).await.unwrap());
    }
    // The proxy serves at most `limit` at once: the oldest quiet ones were
    // closed to make room, each counted.
    let evicted = "agent_sidecar_proxy_refusals_total{agent_id=\"unknown\",listener=\"explicit\",reason=\"evicted_idle\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.metric(evicted) < (10_000 - limit) as f64 {
        assert!(Instant::now() < deadline, "{}", h.metrics.render());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = open_fds();
    assert!(
        during <= baseline + 10_000 + limit + 64,
        "the sidecar holds more than {limit} connections: fds {baseline} -> {during}"
    );
    // Still governing: a tool call through the same proxy, the admin API.
    let (code, took) = tool_call(&h).await;
    assert_eq!(code, 200);
    assert!(took < Duration::from_secs(10), "tool call took {took:?}");
    assert_eq!(admin_get(Ipv4Addr::LOCALHOST, admin, TOKEN).await, 200);
    assert!(
        !log.lines_with(&[
            "WARN",
            "proxy listener at its connection limit",
            "evicted_idle"
        ])
        .is_empty(),
        "{}",
        log.text()
    );

    drop(held);
    let after = fds_settle(baseline, Duration::from_secs(30)).await;
    assert!(
        after <= baseline + 8,
        "fds {baseline} before, {during} held, {after} after"
    );
    assert_eq!(tool_call(&h).await.0, 200);
    eprintln!(
        "10,000 connections: evicted {}, fds {baseline} -> {during} -> {after}",
        h.metric(evicted)
    );
}
