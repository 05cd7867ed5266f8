//! DNS resolver benchmark (`harness = false`): what the sidecar resolver
//! costs the agent.
//!
//! 1. Throughput: queries per second for cached allowlisted names, the
//!    resolver confined to one core (a current-thread tokio runtime on its
//!    own thread), the client keeping 64 queries in flight.
//! 2. Latency: sequential queries, one at a time, in alternating rounds:
//!    straight to the local upstream (the test authority), through the
//!    resolver with the answer forwarded (cache off), and through the
//!    resolver from its cache. The added latency is the resolver's p99
//!    minus the direct p99 of the same round; the report gives medians over
//!    rounds.
//!
//! Needs no privileges. Prints a Markdown report; with `--write-docs` (or
//! `BENCH_WRITE_DOCS=1`) also replaces `docs/benchmarks-dns.md`:
//! `cargo bench -p agent-sidecar --bench dns -- --write-docs`.

use std::{
    fmt::Write as _,
    net::{SocketAddr, UdpSocket},
    path::PathBuf,
    process::ExitCode,
    sync::mpsc,
    time::{Duration, Instant},
};

use agent_sidecar::{
    dns::{self, BudgetLimits, DnsConfig, Hooks},
    egress::{Breadth, NameAllowlist, NameRule},
};
use agent_sidecar_test_support::dns::{Authority, Zone, name};
use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query},
    rr::RecordType,
};

/// Distinct names queried (all allowlisted by `**.bench.test`).
const NAMES: usize = 100;
/// Queries kept in flight in the throughput run.
const WINDOW: usize = 64;
/// Length of one throughput run.
const THROUGHPUT_RUN: Duration = Duration::from_secs(2);
/// Throughput runs (median reported).
const THROUGHPUT_RUNS: usize = 5;
/// Sequential queries per latency measurement.
const LATENCY_QUERIES: usize = 2_000;
/// Alternating latency rounds.
const LATENCY_ROUNDS: usize = 9;
/// Targets.
const QPS_TARGET: f64 = 20_000.0;
const ADDED_P99_TARGET_US: f64 = 200.0;

fn main() -> ExitCode {
    let write_docs = std::env::args().any(|a| a == "--write-docs")
        || std::env::var_os("BENCH_WRITE_DOCS").is_some();
    // Criterion-style arguments from `cargo bench` (e.g. `--bench`) are ignored.
    let started = Instant::now();
    let mut zone = Zone::default();
    for i in 0..NAMES {
        zone.addr(
            &format!("n{i}.bench.test."),
            &format!("203.0.113.{}", i + 1),
        );
    }
    let authority_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("authority runtime");
    let authority = authority_rt.block_on(Authority::start(zone));
    let cached = start_resolver(authority.addr, 10_000);
    let uncached = start_resolver(authority.addr, 0);
    let queries: Vec<Vec<u8>> = (0..NAMES).map(|i| encode_query(i as u16, i)).collect();

    // Warm the cache.
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    for q in &queries {
        exchange(&client, cached, q);
    }

    let mut qps: Vec<f64> = (0..THROUGHPUT_RUNS)
        .map(|_| throughput(cached, &queries))
        .collect();
    qps.sort_by(f64::total_cmp);

    let mut rounds = Vec::new();
    for round in 0..LATENCY_ROUNDS {
        let mut order = [(0, authority.addr), (1, uncached), (2, cached)];
        if round % 2 == 1 {
            order.reverse();
        }
        let mut p = [Stats::default(); 3];
        for (slot, target) in order {
            p[slot] = latency(&client, target, &queries);
        }
        rounds.push(p);
    }
    let med = |f: &dyn Fn(&[Stats; 3]) -> f64| median(rounds.iter().map(f).collect());
    let direct_p50 = med(&|r| r[0].p50);
    let direct_p99 = med(&|r| r[0].p99);
    let fwd_p50 = med(&|r| r[1].p50);
    let fwd_p99 = med(&|r| r[1].p99);
    let cached_p50 = med(&|r| r[2].p50);
    let cached_p99 = med(&|r| r[2].p99);
    let added_fwd = med(&|r| r[1].p99 - r[0].p99);
    let added_cached = med(&|r| r[2].p99 - r[0].p99);
    let qps_median = qps[qps.len() / 2];

    let report = report(Report {
        qps: &qps,
        qps_median,
        direct: (direct_p50, direct_p99),
        forwarded: (fwd_p50, fwd_p99),
        cached: (cached_p50, cached_p99),
        added_fwd,
        added_cached,
        seconds: started.elapsed().as_secs(),
    });
    print!("{report}");
    if write_docs {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks-dns.md");
        if let Err(e) = std::fs::write(&path, &report) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    drop(authority);
    ExitCode::SUCCESS
}

/// Starts a resolver on its own thread with a current-thread runtime (one
/// core) and returns its address.
fn start_resolver(upstream: SocketAddr, cache_entries: usize) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("resolver runtime");
        rt.block_on(async move {
            let mut config = DnsConfig::new(
                "bench",
                vec!["127.0.0.1:0".parse().expect("addr")],
                vec![upstream],
            );
            config.cache_entries = cache_entries;
            // The per-agent budget (600 forwarded queries and 60 distinct
            // names a minute) would refuse the cache-miss series within a
            // second: this measures the resolver's own cost, so no budget.
            config.budget = BudgetLimits {
                queries: u32::MAX,
                names: u32::MAX,
            };
            let rule = NameRule::parse("**.bench.test", Breadth::Strict).expect("rule");
            let allowlist: NameAllowlist = [rule].into_iter().collect();
            let server = dns::start(&config, allowlist, Hooks::default())
                .await
                .expect("resolver");
            tx.send(server.local_addrs()[0]).expect("send addr");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("resolver address")
}

fn encode_query(id: u16, i: usize) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(
        name(&format!("n{i}.bench.test.")),
        RecordType::A,
    ));
    m.set_edns(Edns::new());
    m.to_vec().expect("encode")
}

/// One query, waiting for its answer; panics on loss (loopback).
fn exchange(socket: &UdpSocket, target: SocketAddr, query: &[u8]) -> Duration {
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    socket.send_to(query, target).expect("send");
    let n = socket.recv(&mut buf).expect("answer in time");
    let elapsed = start.elapsed();
    assert!(n >= 12 && buf[..2] == query[..2], "answer to the query");
    assert!(
        u16::from_be_bytes([buf[6], buf[7]]) > 0,
        "an answer with records"
    );
    elapsed
}

/// Queries per second with `WINDOW` queries in flight for `THROUGHPUT_RUN`.
fn throughput(target: SocketAddr, queries: &[Vec<u8>]) -> f64 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    let mut sent = 0usize;
    let mut answered = 0usize;
    for _ in 0..WINDOW {
        socket
            .send_to(&queries[sent % queries.len()], target)
            .expect("send");
        sent += 1;
    }
    let start = Instant::now();
    while start.elapsed() < THROUGHPUT_RUN {
        match socket.recv(&mut buf) {
            Ok(_) => {
                answered += 1;
                socket
                    .send_to(&queries[sent % queries.len()], target)
                    .expect("send");
                sent += 1;
            }
            // A lost datagram: refill the window.
            Err(_) => {
                for _ in 0..WINDOW {
                    socket
                        .send_to(&queries[sent % queries.len()], target)
                        .expect("send");
                    sent += 1;
                }
            }
        }
    }
    answered as f64 / start.elapsed().as_secs_f64()
}

#[derive(Clone, Copy, Default)]
struct Stats {
    p50: f64,
    p99: f64,
}

/// p50 and p99 of sequential queries, microseconds.
fn latency(socket: &UdpSocket, target: SocketAddr, queries: &[Vec<u8>]) -> Stats {
    for q in queries.iter().take(50) {
        exchange(socket, target, q);
    }
    let mut us: Vec<f64> = (0..LATENCY_QUERIES)
        .map(|i| exchange(socket, target, &queries[i % queries.len()]).as_secs_f64() * 1e6)
        .collect();
    us.sort_by(f64::total_cmp);
    Stats {
        p50: us[us.len() / 2],
        p99: us[us.len() * 99 / 100],
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Report<'a> {
    qps: &'a [f64],
    qps_median: f64,
    direct: (f64, f64),
    forwarded: (f64, f64),
    cached: (f64, f64),
    added_fwd: f64,
    added_cached: f64,
    seconds: u64,
}

fn report(r: Report<'_>) -> String {
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    let sh = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks: DNS resolver\n");
    let _ = writeln!(
        s,
        "Produced by `agent-sidecar/benches/dns.rs`; every number below is from one run of it.\n"
    );
    let _ = writeln!(
        s,
        "## How to run\n\n```sh\ncargo bench -p agent-sidecar --bench dns -- --write-docs\n```\n"
    );
    let _ = writeln!(
        s,
        "prints this report and rewrites this file (`BENCH_WRITE_DOCS=1` does the same as `--write-docs`). No privileges needed; everything runs on 127.0.0.1. This run took {} s.\n",
        r.seconds
    );
    let _ = writeln!(s, "## Machine\n\n| | |\n|---|---|");
    let _ = writeln!(s, "| date (UTC) | {} |", sh("date -u +%Y-%m-%d"));
    let _ = writeln!(s, "| kernel | {} |", sh("uname -r"));
    let _ = writeln!(s, "| CPUs | {} |", sh("nproc"));
    let _ = writeln!(
        s,
        "| load average (1/5/15 min) at the end | {} |\n",
        sh("cut -d' ' -f1-3 /proc/loadavg")
    );
    let _ = writeln!(s, "## Method\n");
    let _ = writeln!(
        s,
        "- Upstream: the test authority of `test-support/src/dns.rs` (hickory-proto on a tokio UDP socket, one worker thread), serving {NAMES} names `n<i>.bench.test`."
    );
    let _ = writeln!(
        s,
        "- Resolver: `dns::start` with the default configuration but no per-agent query budget (the default, 600 forwarded queries and 60 distinct names a minute, would refuse the cache-miss series) and the rule `**.bench.test`, on a current-thread tokio runtime on its own thread: one core. Events go to `tracing` (no subscriber) only, as in production without the audit sink."
    );
    let _ = writeln!(
        s,
        "- Throughput: a client keeps {WINDOW} queries in flight (blocking UDP socket, one answer in, one query out) over the {NAMES} cached names for {} s; {THROUGHPUT_RUNS} runs, median reported.",
        THROUGHPUT_RUN.as_secs()
    );
    let _ = writeln!(
        s,
        "- Latency: {LATENCY_QUERIES} sequential queries (50 untimed first) per measurement; {LATENCY_ROUNDS} rounds alternate *direct* (client to upstream), *forwarded* (through a resolver whose cache is off) and *cached* (through the resolver, answers from its cache), the order flipping each round. Added p99 = resolver p99 − direct p99 within a round; medians over rounds."
    );
    let _ = writeln!(
        s,
        "- The machine has 2 CPUs shared by the client, the upstream and the resolver, so the numbers include scheduling between them.\n"
    );
    let _ = writeln!(
        s,
        "## Targets\n\n| target | measured | met |\n|---|---|---|"
    );
    let _ = writeln!(
        s,
        "| cached allowed names ≥ {:.0} queries/s on one core | {:.0} queries/s | {} |",
        QPS_TARGET,
        r.qps_median,
        met(r.qps_median >= QPS_TARGET)
    );
    let _ = writeln!(
        s,
        "| added p99 latency vs. the upstream directly ≤ {ADDED_P99_TARGET_US:.0} µs (forwarded) | {:+.0} µs | {} |",
        r.added_fwd,
        met(r.added_fwd <= ADDED_P99_TARGET_US)
    );
    let _ = writeln!(
        s,
        "| added p99 latency vs. the upstream directly ≤ {ADDED_P99_TARGET_US:.0} µs (cached) | {:+.0} µs | {} |\n",
        r.added_cached,
        met(r.added_cached <= ADDED_P99_TARGET_US)
    );
    let _ = writeln!(
        s,
        "## 1. Throughput (cached)\n\n| run | queries/s |\n|---|---|"
    );
    for (i, q) in r.qps.iter().enumerate() {
        let _ = writeln!(s, "| {} | {q:.0} |", i + 1);
    }
    let _ = writeln!(
        s,
        "\n(runs sorted)\n\n## 2. Latency (µs, medians over rounds)\n\n| path | p50 | p99 |\n|---|---|---|"
    );
    let _ = writeln!(
        s,
        "| direct to upstream | {:.0} | {:.0} |",
        r.direct.0, r.direct.1
    );
    let _ = writeln!(
        s,
        "| through the resolver, forwarded | {:.0} | {:.0} |",
        r.forwarded.0, r.forwarded.1
    );
    let _ = writeln!(
        s,
        "| through the resolver, cached | {:.0} | {:.0} |",
        r.cached.0, r.cached.1
    );
    s
}
