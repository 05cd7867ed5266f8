//! Proxy benchmark (`harness = false`), one process:
//!
//! 1. Transparent TLS passthrough on loopback: 1 MiB HTTPS downloads through
//!    the transparent listener against the same downloads straight from the
//!    upstream — throughput ratio (target >= 0.8) and the time-to-first-byte
//!    the listener adds at p99 (target <= 300 us) — and, as the reference,
//!    through nginx's stream module doing SNI passthrough (`ssl_preread`;
//!    Debian packages `nginx` and `libnginx-mod-stream`, started here from a
//!    generated configuration).
//! 2. The same with the upstream in a network namespace of its own, reached
//!    across a veth pair (10.201.0.1/30 here, 10.201.0.2/30 there), as a
//!    remote tool API is from a pod; measured at MTU 1500 and then at 9000.
//!    Creating the namespace needs root (`cargo xtask bench` runs as root);
//!    it and the veth pair are removed on exit, panics included.
//! 3. Where the transfers' wall time went: each thread's running and
//!    run-queue waiting time during the transfers of 1 and 2.
//! 4. CONNECT through the explicit proxy against CONNECT through squid (Debian
//!    package `squid`, started here with an equivalent `dstdomain` allowlist
//!    in a temp dir): requests/s with 4 concurrent clients and per-request
//!    latency (p50/p99), each request being CONNECT + TLS handshake + GET +
//!    response.
//!
//! Rounds alternate the sides of every comparison; ratios are per round
//! and the report gives their median. Prints a Markdown report; with
//! `--write-docs` (or `PROXY_BENCH_WRITE_DOCS=1`) also replaces
//! `docs/benchmarks-proxy.md`. Run it with
//! `cargo bench -p agent-sidecar --bench proxy -- --write-docs`.
//! nginx with its stream module is required (`cargo xtask bench` installs
//! it); without squid installed, section 4 reports ours only.

use std::{
    collections::HashMap,
    fmt::Write as _,
    fs::File,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::fd::OwnedFd,
    path::Path,
    process::{Child, Command, ExitCode, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use agent_sidecar::proxy::{
    ProxyConfig, ProxyContext,
    sniff::{Sniffed, sniff},
};
use agent_sidecar_test_support::{
    bench::{
        nginx::{self, NginxProcess},
        report::{
            self, current_thread, kernel, load_average, median, micros, num_cpus, percentile,
        },
        sched::{Sched, SchedClock},
    },
    ca::TestCa,
    sidecar::proxy::{AllowList, MapResolve, Proxies},
    temp::TempDir,
    upstream::{MIB, Upstream},
};
use anyhow::{Context, Result, bail, ensure};
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

const HOST: &str = "api.allowed.test";
const UPSTREAM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const ROUNDS: usize = 9;
const TRANSFERS_PER_ROUND: usize = 30;
const TTFB_PER_ROUND: usize = 300;
const CONNECT_CLIENTS: usize = 4;
const CONNECT_PER_CLIENT: usize = 50;
const SNIFF_RUNS: usize = 10_000;
/// The benchmark's end of the veth pair.
const VETH_LOCAL: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
/// The upstream's end, in its own network namespace.
const VETH_UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
const VETH_PREFIX: u8 = 30;
/// MTUs measured across the veth pair, in this order; the first is the
/// default of a veth and of a typical pod interface.
const VETH_MTUS: [u32; 2] = [1500, 9000];

fn main() -> ExitCode {
    report::main_with_report("proxy", "PROXY_BENCH_WRITE_DOCS", run)
}

/// Runs `setup` on a single-threaded runtime of its own thread, which then
/// keeps serving what `setup` spawned; returns what `setup` sent back.
fn on_own_thread<T, F, Fut>(name: &str, setup: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(std::sync::mpsc::Sender<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    on_own_thread_in(name, None, setup)
}

/// [`on_own_thread`], the thread first entering the network namespace
/// `netns` (an fd of it) when given: the sockets `setup` creates live there.
fn on_own_thread_in<T, F, Fut>(name: &str, netns: Option<OwnedFd>, setup: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(std::sync::mpsc::Sender<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let rt = current_thread()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if let Some(fd) = netns {
                // On failure `tx` is dropped and the caller's recv fails.
                if let Err(e) = nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET) {
                    eprintln!("setns: {e}");
                    return;
                }
            }
            rt.block_on(async move {
                setup(tx).await;
                std::future::pending::<()>().await;
            });
        })?;
    rx.recv().with_context(|| format!("{name} did not start"))
}

/// One request's timings.
#[derive(Clone, Copy)]
struct Sample {
    /// Connect start to the first response byte.
    ttfb: Duration,
    /// Request written to end of response.
    transfer: Duration,
    /// Connect start to end of response.
    total: Duration,
    /// Response bytes (head and body).
    bytes: usize,
}

struct Bench {
    connector: TlsConnector,
    upstream: SocketAddr,
    transparent: SocketAddr,
    explicit: SocketAddr,
}

/// Where the passthrough comparison connects, by [`Side`]: straight to an
/// upstream, to the transparent listener, or to nginx's stream proxy, both
/// forwarding to that upstream.
#[derive(Clone, Copy)]
struct Topology {
    addrs: [SocketAddr; SIDES],
    /// The thread serving the upstream (named in `run`).
    upstream_thread: &'static str,
}

/// The sides of a passthrough comparison, as indexes of [`Topology::addrs`].
const DIRECT: usize = 0;
const LISTENER: usize = 1;
const NGINX: usize = 2;
const SIDES: usize = 3;
/// nginx's `proxy_buffer_size` (its default is 16k): the listener's copy
/// buffer size, so that both copy in the same chunks.
const NGINX_BUFFER: &str = "64k";

/// A proxy context sending `HOST` to `ip`.
fn context(ip: IpAddr) -> ProxyContext {
    ProxyContext::new(
        Arc::new(AllowList(vec![HOST.to_owned()])),
        Arc::new(MapResolve(HashMap::from([(HOST.to_owned(), vec![ip])]))),
    )
    .with_config(ProxyConfig {
        agent_id: "bench".to_owned(),
        ..ProxyConfig::default()
    })
}

async fn run() -> Result<String> {
    let started = Instant::now();
    // First, so that a run without root stops before measuring anything.
    let veth = Veth::create()?;
    let ca = TestCa::new();
    let leaf = ca.leaf(&[HOST]);
    let acceptor = leaf.acceptor();
    let remote_acceptor = leaf.acceptor();
    let upstream = on_own_thread("upstream", move |tx| async move {
        let upstream = Upstream::start((UPSTREAM_IP, 0).into(), "bench", Some(acceptor)).await;
        let _ = tx.send(upstream);
    })?;
    let remote = on_own_thread_in("upstream-veth", Some(veth.netns()?), move |tx| async move {
        let upstream = Upstream::start(
            (VETH_UPSTREAM, 0).into(),
            "bench-veth",
            Some(remote_acceptor),
        )
        .await;
        let _ = tx.send(upstream);
    })
    .context("upstream in the veth namespace")?;
    let port = upstream.addr.port();
    let remote_port = remote.addr.port();
    // One proxy thread serves both topologies, each through a listener whose
    // resolver returns that topology's upstream.
    let (transparent, explicit, remote_transparent) =
        on_own_thread("proxy", move |tx| async move {
            let proxies = Proxies::start(&context(UPSTREAM_IP), &[port]);
            let remote = Proxies::start(&context(IpAddr::V4(VETH_UPSTREAM)), &[remote_port]);
            let _ = tx.send((
                proxies.transparent[&port],
                proxies.explicit,
                remote.transparent[&remote_port],
            ));
            // Keep the listeners: the thread never returns.
            std::future::pending::<()>().await;
            drop((proxies, remote));
        })?;
    let bench = Bench {
        connector: TlsConnector::from(ca.client_config()),
        upstream: upstream.addr,
        transparent,
        explicit,
    };
    let nginx = NginxStream::start(&[upstream.addr, remote.addr])?;
    let local = Topology {
        addrs: [upstream.addr, transparent, nginx.listeners[0]],
        upstream_thread: "upstream",
    };
    let across = Topology {
        addrs: [remote.addr, remote_transparent, nginx.listeners[1]],
        upstream_thread: "upstream-veth",
    };

    // Warm-up: every path once.
    bench.get(bench.upstream, None, "/1m").await?;
    bench.get(bench.transparent, None, "/1m").await?;
    bench.get(bench.explicit, Some(port), "/").await?;
    for (topology, name) in [(local, "loopback"), (across, "veth")] {
        for (addr, side) in topology.addrs.iter().zip(SIDE_NAMES) {
            bench
                .fetch_from(*addr, "/1m")
                .await
                .with_context(|| format!("{side}, {name} upstream"))?;
        }
    }

    let mut md = String::new();
    let _ = writeln!(md, "# Proxy benchmarks\n");
    let _ = writeln!(
        md,
        "Produced by `cargo bench -p agent-sidecar --bench proxy -- --write-docs` \
         (`agent-sidecar/benches/proxy.rs`): a rustls HTTPS upstream (hyper, \
         test CA, ring); the upstreams, the proxy and the clients (tokio-rustls) each on \
         a single-threaded Tokio runtime of its own thread; the references, nginx ({}) and \
         squid, each run one worker process. The clients and the proxies use loopback; the \
         upstream of section 2 is across a veth pair. {ROUNDS} rounds; the sides of every \
         comparison alternate within a round, each going first equally often; ratios are \
         per round, the tables show medians.\n",
        nginx.process.version
    );
    let _ = writeln!(
        md,
        "Machine: {} CPUs, {}, load average at start {}.\n",
        num_cpus(),
        kernel(),
        load_average()
    );

    let loopback = passthrough(&bench, local, &nginx).await?;
    let mut remote_runs = Vec::new();
    for mtu in VETH_MTUS {
        veth.set_mtu(mtu)?;
        // One transfer each way at the new MTU before measuring.
        for addr in across.addrs {
            bench.fetch_from(addr, "/1m").await?;
        }
        remote_runs.push((mtu, passthrough(&bench, across, &nginx).await?));
    }

    let _ = writeln!(md, "## 1. Transparent TLS passthrough\n");
    let _ = writeln!(
        md,
        "Each transfer: TCP connect, TLS 1.3 handshake, `GET /1m`, 1 MiB body, close. \
         Throughput counts from the request to the end of the body; time-to-first-byte \
         (TTFB) from the TCP connect to the first response byte, so it includes the \
         handshake and, through the listener, the ClientHello sniff, the name decision, \
         the resolver call and the upstream connect. Client, proxies and upstream all \
         on loopback (upstream at {UPSTREAM_IP}).\n\n\
         Three sides in the same rounds: **direct** to the upstream; through the \
         **transparent listener**; and through **nginx stream**, the reference: nginx's \
         stream module doing the same job, routing on the ClientHello's SNI without \
         terminating TLS (`ssl_preread on`, a `map` of `$ssl_preread_server_name` allowing \
         `{HOST}` only, `proxy_pass` to the upstream, `proxy_buffer_size {NGINX_BUFFER}` \
         like the listener's copy buffer, one worker). nginx neither resolves nor decides \
         nor records anything.\n"
    );
    let _ = writeln!(
        md,
        "| | direct | transparent listener | nginx stream | listener / direct | nginx / direct | target |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
    loopback.rows(&mut md, None);
    let _ = writeln!(
        md,
        "\nOf the added per-connection time, parsing the ClientHello (rustls `Acceptor` \
         and `tls-parser`, `proxy::sniff::sniff`) takes {:.1} us (median of {SNIFF_RUNS} \
         calls on a {}-byte rustls hello).\n",
        sniff_cost(&bench)?,
        bench.hello()?.len()
    );

    let _ = writeln!(
        md,
        "## 2. Transparent TLS passthrough, upstream across a veth pair\n"
    );
    let _ = writeln!(
        md,
        "The same transfers, rounds and alternation as section 1, with the upstream in a \
         network namespace of its own at {VETH_UPSTREAM}/{VETH_PREFIX}, one end of a veth \
         pair whose other end, {VETH_LOCAL}/{VETH_PREFIX}, is in the benchmark's namespace \
         (kernel defaults otherwise). Direct: client -> {VETH_UPSTREAM} across the veth. \
         Through a proxy: client -> proxy on 127.0.0.1 -> {VETH_UPSTREAM} across the veth \
         (the listener's test resolver returns {VETH_UPSTREAM}), as a pod's connection to a \
         remote tool API goes. MTU {} (the veth default, and a usual pod interface MTU) is \
         the reference row; MTU {} was measured after it in the same run and is shown as \
         well.\n",
        VETH_MTUS[0], VETH_MTUS[1]
    );
    let _ = writeln!(
        md,
        "| | MTU | direct | transparent listener | nginx stream | listener / direct | nginx / direct | target |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
    for (mtu, run) in &remote_runs {
        run.rows(&mut md, Some(*mtu));
    }
    let _ = writeln!(md);

    let _ = writeln!(md, "## 3. Where the transfers' time goes\n");
    let _ = writeln!(
        md,
        "During the 1 MiB transfers of sections 1 and 2, the share of their wall time each \
         thread spent running on a CPU and runnable but waiting on a run queue \
         (`/proc/.../schedstat` before and after every transfer): the client, the upstream, \
         and the proxy (the listener's thread, or the nginx worker). CPUs idle: {} minus \
         the three running shares.\n",
        num_cpus()
    );
    let _ = writeln!(
        md,
        "| side | MTU | client running | client waiting | upstream running | upstream waiting | proxy running | proxy waiting | CPUs idle |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    loopback.sched_rows(&mut md, Some("loopback"));
    for (mtu, run) in &remote_runs {
        run.sched_rows(&mut md, Some(&format!("veth {mtu}")));
    }
    let through = &loopback.sched[LISTENER];
    let direct = &loopback.sched[DIRECT];
    let _ = writeln!(
        md,
        "\nOn loopback, direct, the client ran {:.2} of the time (it decrypts, and is the \
         slowest stage) and waited {:.2}. Through the listener it ran {:.2} and waited {:.2}, \
         while the three threads together waited {:.2} on run queues and {:.2} CPUs idled: \
         the scheduler does not keep three threads that hand data to each other on two CPUs \
         busy, so the client (the agent), the stage that sets the pace, runs less of the \
         time. The listener's own thread ran {:.2} of the time.\n",
        direct.share(direct.client.run_ns),
        direct.share(direct.client.wait_ns),
        through.share(through.client.run_ns),
        through.share(through.client.wait_ns),
        through.share(through.client.wait_ns + through.upstream.wait_ns + through.proxy.wait_ns),
        num_cpus() as f64
            - through.share(through.client.run_ns + through.upstream.run_ns + through.proxy.run_ns),
        through.share(through.proxy.run_ns),
    );

    connect_vs_squid(&bench, port, &mut md).await?;
    let _ = writeln!(md, "\n## Notes\n");
    let _ = writeln!(
        md,
        "- Loopback (section 1) is the worst case: client, proxy and upstream share the \
         machine's CPUs. Direct, two busy threads (TLS client and TLS server) share them; \
         through a proxy a third one competes with both (section 3). nginx's stream proxy, \
         measured in the same rounds, is the yardstick for what a proxy that copies in \
         userspace can reach on this machine. The ratios move with the machine's load: \
         other jobs slow the direct path too, so compare runs at similar load (see the \
         load average above).\n\
         - Across the veth pair (section 2) the upstream is remote as in production: its \
         traffic leaves through a network device (MTU {}, then {}, rather than loopback's 65536) \
         into another namespace's stack, as a pod's traffic to a remote tool API leaves \
         through the pod's interface. On this machine the upstream still runs on the same \
         CPUs, so the contention of section 1 remains; with a really remote upstream the \
         proxy competes with the agent only. The MTU {} rows come later in the run than \
         the MTU {} rows, so a change in the machine's load between them shows up in \
         their comparison; the per-round ratios are what each row is about.\n\
         - The copy uses `copy_bidirectional` with 64 KiB buffers per direction. \
         Measured against it in alternating runs on this machine and not kept: \
         `splice(2)` (socket -> pipe -> socket, 1 MiB pipes), which cut the proxy's CPU \
         per MiB by 20-40 % but did not raise throughput (0.77x against 0.74x for 1 MiB \
         transfers, within the noise; 0.68-0.73x against 0.78-0.82x over 16 MiB \
         keep-alive transfers); 256 KiB and 1 MiB buffers, \
         a 1-4 MiB receive buffer on the upstream socket, a shorter scheduler slice \
         (`sched_setattr`) or `nice -5` for the proxy thread, and briefly polling the \
         upstream socket before sleeping (no gain beyond the noise); an in-kernel sockmap \
         splice (0.57-0.63x: its backlog worker adds a fourth busy thread). A bare relay \
         (accept, connect, `copy_bidirectional`, nothing else) whose agent side is a Unix \
         stream socket, so that no TCP stack is crossed between agent and proxy as with an \
         `sk_msg` redirect of that leg, measured 0.69x and 0.72x against 0.71x and 0.72x \
         for the same relay over loopback TCP (21 rounds each): taking the agent leg out of \
         the TCP stack does not lift the bound either.\n\
         - How this guest's idle CPUs wait: {} (0: they halt at once, and waking one \
         costs an exit to the host). With 200 us of polling before halting (set for one \
         separate run on this machine, then set back to 0), every path got faster on loopback (direct 1834 MiB/s, listener \
         1122, nginx 1074, against 1255 / 860 / 877 the run before) but the ratios did \
         not rise (listener 0.61x, nginx 0.63x): the wake-up latency of halted CPUs costs \
         both paths, and polling CPUs leave less time to the third thread.\n\
         - TTFB p99 here is dominated by scheduling: the direct path's own p99 can be \
         several milliseconds when three threads share two CPUs, so the added p99 varies \
         between runs; the p50 difference is the steadier measure of the listener's \
         per-connection cost (one extra accept, sniff, decision, resolve and connect).\n\
         - The loopback upstream accepted {} TLS connections in this run, all at the \
         address the test resolver returns for `{HOST}` (or nginx's map); the veth \
         upstream {}. Load average at the end: {}. This run took {:.0} s.",
        VETH_MTUS[0],
        VETH_MTUS[1],
        VETH_MTUS[1],
        VETH_MTUS[0],
        halt_poll(),
        upstream.hits(),
        remote.hits(),
        load_average(),
        started.elapsed().as_secs_f64()
    );
    drop(nginx);
    drop(veth);
    Ok(md)
}

/// Column names of the sides, by index.
const SIDE_NAMES: [&str; SIDES] = ["direct", "transparent listener", "nginx stream"];

/// Results of one passthrough comparison, by side.
struct Passthrough {
    /// Median over rounds of each round's median 1 MiB throughput, MiB/s.
    throughput: [f64; SIDES],
    /// Per-round throughput ratios against direct (unused for direct).
    ratios: [Vec<f64>; SIDES],
    /// TTFB percentiles over all samples, us.
    ttfb_p50: [f64; SIDES],
    ttfb_p99: [f64; SIDES],
    /// Median of the per-round p99 TTFB differences against direct, us.
    added_p99: [f64; SIDES],
    /// Where the client, upstream and proxy threads spent the 1 MiB
    /// transfers' wall time, by side.
    sched: [Shares; SIDES],
}

/// Shares of a side's transfer wall time: running and waiting on a run
/// queue, for the client, the upstream and the proxy (none for direct).
#[derive(Clone, Copy, Default)]
struct Shares {
    client: Sched,
    upstream: Sched,
    proxy: Sched,
    wall_ns: u64,
}

impl Shares {
    fn share(&self, ns: u64) -> f64 {
        ns as f64 / self.wall_ns.max(1) as f64
    }
}

impl Passthrough {
    /// Table rows; with `mtu`, an MTU column after the label.
    fn rows(&self, md: &mut String, mtu: Option<u32>) {
        let mtu = mtu.map(|m| format!(" {m} |")).unwrap_or_default();
        let ratio = |side: usize| {
            let mut r = self.ratios[side].clone();
            let (lo, hi) = (
                r.iter().copied().fold(f64::INFINITY, f64::min),
                r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            (median(&mut r), lo, hi)
        };
        let (ours, lo, hi) = ratio(LISTENER);
        let (theirs, nlo, nhi) = ratio(NGINX);
        let [d, l, n] = self.throughput;
        let _ = writeln!(
            md,
            "| 1 MiB throughput (MiB/s, median of rounds) |{mtu} {d:.0} | {l:.0} | {n:.0} | \
             **{ours:.2}x** (rounds {lo:.2}-{hi:.2}) | {theirs:.2}x (rounds {nlo:.2}-{nhi:.2}) \
             | >= 0.8x {} |",
            verdict(ours >= 0.8)
        );
        let [d, l, n] = self.ttfb_p50;
        let _ = writeln!(
            md,
            "| TTFB p50 (us, all samples) |{mtu} {d:.0} | {l:.0} | {n:.0} | +{:.0} us | +{:.0} us | |",
            l - d,
            n - d
        );
        let [d, l, n] = self.ttfb_p99;
        let _ = writeln!(
            md,
            "| TTFB p99 (us, all samples) |{mtu} {d:.0} | {l:.0} | {n:.0} | **+{:.0} us** \
             (median of per-round p99 differences) | +{:.0} us | <= 300 us {} |",
            self.added_p99[LISTENER],
            self.added_p99[NGINX],
            verdict(self.added_p99[LISTENER] <= 300.0)
        );
    }

    /// One row per side of the thread-time table, `path` naming the topology.
    fn sched_rows(&self, md: &mut String, path: Option<&str>) {
        let mtu = path.map(|m| format!(" {m} |")).unwrap_or_default();
        for (side, name) in SIDE_NAMES.iter().enumerate() {
            let s = &self.sched[side];
            let proxy = if side == DIRECT {
                "- | -".to_owned()
            } else {
                format!(
                    "{:.2} | {:.2}",
                    s.share(s.proxy.run_ns),
                    s.share(s.proxy.wait_ns)
                )
            };
            let running = s.client.run_ns + s.upstream.run_ns + s.proxy.run_ns;
            let _ = writeln!(
                md,
                "| {name} |{mtu} {:.2} | {:.2} | {:.2} | {:.2} | {proxy} | {:.2} |",
                s.share(s.client.run_ns),
                s.share(s.client.wait_ns),
                s.share(s.upstream.run_ns),
                s.share(s.upstream.wait_ns),
                num_cpus() as f64 - s.share(running),
            );
        }
    }
}

/// The scheduler clocks of the threads a passthrough side involves.
struct Clocks {
    client: SchedClock,
    upstream: SchedClock,
    /// By side: none for direct, the listener's thread, the nginx worker.
    proxy: [Option<SchedClock>; SIDES],
}

impl Clocks {
    fn read(&self, side: usize) -> Result<[Sched; 3]> {
        Ok([
            self.client.read()?,
            self.upstream.read()?,
            match &self.proxy[side] {
                Some(c) => c.read()?,
                None => Sched::default(),
            },
        ])
    }
}

async fn passthrough(
    bench: &Bench,
    topology: Topology,
    nginx: &NginxStream,
) -> Result<Passthrough> {
    let clocks = Clocks {
        client: SchedClock::main_thread(),
        upstream: SchedClock::own_thread(topology.upstream_thread)?,
        proxy: [
            None,
            Some(SchedClock::own_thread("proxy")?),
            Some(SchedClock::process(nginx.process.worker)),
        ],
    };
    let mut throughput: [Vec<f64>; SIDES] = Default::default();
    let mut ratios: [Vec<f64>; SIDES] = Default::default();
    let mut ttfb: [Vec<f64>; SIDES] = Default::default();
    let mut added_p99: [Vec<f64>; SIDES] = Default::default();
    let mut sched = [Shares::default(); SIDES];
    for round in 0..ROUNDS {
        let mut tp: [Vec<f64>; SIDES] = Default::default();
        for i in 0..TRANSFERS_PER_ROUND {
            // Each side goes first, second and third equally often.
            for k in 0..SIDES {
                let side = (k + i + round) % SIDES;
                let before = clocks.read(side)?;
                let t = Instant::now();
                let s = bench.fetch_from(topology.addrs[side], "/1m").await?;
                let wall = t.elapsed();
                let after = clocks.read(side)?;
                let shares = &mut sched[side];
                shares.wall_ns += wall.as_nanos() as u64;
                shares.client += after[0] - before[0];
                shares.upstream += after[1] - before[1];
                shares.proxy += after[2] - before[2];
                tp[side].push(mib_per_s(s));
            }
        }
        let medians = tp.map(|mut v| median(&mut v));
        for side in 0..SIDES {
            throughput[side].push(medians[side]);
            ratios[side].push(medians[side] / medians[DIRECT]);
        }

        let mut round_ttfb: [Vec<f64>; SIDES] = Default::default();
        for i in 0..TTFB_PER_ROUND {
            for k in 0..SIDES {
                let side = (k + i + round) % SIDES;
                let s = bench.fetch_from(topology.addrs[side], "/").await?;
                round_ttfb[side].push(micros(s.ttfb));
            }
        }
        let p99 = round_ttfb.each_mut().map(|v| percentile(v, 0.99));
        for side in 0..SIDES {
            added_p99[side].push(p99[side] - p99[DIRECT]);
            ttfb[side].extend(round_ttfb[side].iter().copied());
        }
    }
    eprintln!(
        "passthrough via {}: per-round ratios listener {:.2?}, nginx {:.2?}",
        topology.addrs[DIRECT].ip(),
        ratios[LISTENER],
        ratios[NGINX]
    );
    Ok(Passthrough {
        throughput: throughput.map(|mut v| median(&mut v)),
        ratios,
        ttfb_p50: ttfb.each_mut().map(|v| percentile(v, 0.5)),
        ttfb_p99: ttfb.each_mut().map(|v| percentile(v, 0.99)),
        added_p99: added_p99.map(|mut v| median(&mut v)),
        sched,
    })
}

/// Median time of one `sniff` call on a real ClientHello, microseconds.
fn sniff_cost(bench: &Bench) -> Result<f64> {
    let hello = bench.hello()?;
    let mut times = Vec::with_capacity(SNIFF_RUNS);
    for _ in 0..SNIFF_RUNS {
        let t = Instant::now();
        let sniffed = sniff(std::hint::black_box(&hello));
        times.push(micros(t.elapsed()));
        ensure!(matches!(sniffed, Ok(Sniffed::Tls(_))), "hello not sniffed");
    }
    Ok(median(&mut times))
}

async fn connect_vs_squid(bench: &Bench, port: u16, md: &mut String) -> Result<()> {
    let squid = match Squid::start(HOST, UPSTREAM_IP) {
        Ok(squid) => Some(squid),
        Err(e) => {
            eprintln!("squid not compared: {e:#}");
            None
        }
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    if let Some(squid) = &squid {
        bench
            .get(squid.addr, Some(port), "/")
            .await
            .context("request through squid")?;
    }
    for _ in 0..ROUNDS {
        ours.push(bench.connect_load(bench.explicit, port).await?);
        if let Some(squid) = &squid {
            theirs.push(bench.connect_load(squid.addr, port).await?);
        }
    }
    let _ = writeln!(md, "## 4. CONNECT: explicit proxy vs squid\n");
    let _ = writeln!(
        md,
        "Each request: TCP connect to the proxy, `CONNECT {HOST}:<port>`, TLS handshake \
         through the tunnel, `GET /` (a ~40-byte body), close. {CONNECT_CLIENTS} clients in \
         parallel, {CONNECT_PER_CLIENT} requests each, per round. squid ({}) runs from a \
         generated configuration: `http_port` on loopback, `acl allowed dstdomain {HOST}`, \
         `http_access allow allowed`, `http_access deny all`, a `hosts_file` mapping the name \
         to the upstream, no cache, no access log, {}.\n",
        squid
            .as_ref()
            .map(|s| s.version.clone())
            .unwrap_or_else(|| "not installed".to_owned()),
        squid
            .as_ref()
            .map(|s| format!("`workers 1`, run as `{}`", s.user))
            .unwrap_or_default()
    );
    let _ = writeln!(md, "| | agent-sidecar explicit proxy | squid | ratio |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    let rps_ours: Vec<f64> = ours.iter().map(|l| l.rps).collect();
    let rps_theirs: Vec<f64> = theirs.iter().map(|l| l.rps).collect();
    row(md, "requests/s (median of rounds)", &rps_ours, &rps_theirs);
    let p50_ours: Vec<f64> = ours.iter().map(|l| l.p50).collect();
    let p50_theirs: Vec<f64> = theirs.iter().map(|l| l.p50).collect();
    row(md, "latency p50 (us)", &p50_ours, &p50_theirs);
    let p99_ours: Vec<f64> = ours.iter().map(|l| l.p99).collect();
    let p99_theirs: Vec<f64> = theirs.iter().map(|l| l.p99).collect();
    row(md, "latency p99 (us)", &p99_ours, &p99_theirs);
    let _ = writeln!(
        md,
        "\nRatio: ours / squid per round, median (above 1 for requests/s and below 1 for \
         latency means the explicit proxy is ahead)."
    );
    Ok(())
}

fn row(md: &mut String, label: &str, ours: &[f64], theirs: &[f64]) {
    let mut o = ours.to_vec();
    let mut t = theirs.to_vec();
    let mut ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    if t.is_empty() {
        let _ = writeln!(md, "| {label} | {:.0} | - | - |", median(&mut o));
    } else {
        let _ = writeln!(
            md,
            "| {label} | {:.0} | {:.0} | {:.2}x |",
            median(&mut o),
            median(&mut t),
            median(&mut ratios)
        );
    }
}

/// One round of concurrent CONNECT requests.
struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
}

impl Bench {
    /// Downloads `path` from the upstream via `addr`: directly (upstream or
    /// transparent listener) or, with `connect_port`, through a CONNECT
    /// proxy at `addr`.
    async fn get(&self, addr: SocketAddr, connect_port: Option<u16>, path: &str) -> Result<Sample> {
        let port = connect_port.unwrap_or(self.upstream.port());
        self.download(addr, connect_port, path, port).await
    }

    /// Downloads `path` over TLS from `addr` (an upstream or a transparent
    /// listener), naming the port of `addr` in `Host`.
    async fn fetch_from(&self, addr: SocketAddr, path: &str) -> Result<Sample> {
        self.download(addr, None, path, addr.port()).await
    }

    /// Connects to `addr` (through a CONNECT tunnel to `connect_port` when
    /// given), shakes hands for `HOST` and downloads `path`, naming
    /// `host_port` in `Host`.
    async fn download(
        &self,
        addr: SocketAddr,
        connect_port: Option<u16>,
        path: &str,
        host_port: u16,
    ) -> Result<Sample> {
        let t0 = Instant::now();
        let mut tcp = TcpStream::connect(addr).await.context("connect")?;
        tcp.set_nodelay(true)?;
        if let Some(port) = connect_port {
            connect_tunnel(&mut tcp, port).await?;
        }
        let name = ServerName::try_from(HOST).context("name")?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        fetch(tls, t0, path, host_port).await
    }

    /// The first flight of a rustls client for `HOST`.
    fn hello(&self) -> Result<Vec<u8>> {
        let name = ServerName::try_from(HOST).context("name")?;
        let mut conn = rustls::ClientConnection::new(self.connector.config().clone(), name)?;
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        Ok(out)
    }

    async fn connect_load(&self, proxy: SocketAddr, port: u16) -> Result<Load> {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CONNECT_CLIENTS {
            let me = Bench {
                connector: self.connector.clone(),
                upstream: self.upstream,
                transparent: self.transparent,
                explicit: self.explicit,
            };
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for _ in 0..CONNECT_PER_CLIENT {
                    lat.push(micros(me.get(proxy, Some(port), "/").await?.total));
                }
                anyhow::Ok(lat)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.context("client task")??);
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(Load {
            rps: all.len() as f64 / secs,
            p50: percentile(&mut all, 0.5),
            p99: percentile(&mut all, 0.99),
        })
    }
}

/// Sends `CONNECT HOST:port` and reads the response head (the proxy sends
/// nothing else before the client's first TLS bytes).
async fn connect_tunnel(tcp: &mut TcpStream, port: u16) -> Result<()> {
    tcp.write_all(
        format!("CONNECT {HOST}:{port} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(head.len() < 8192, "CONNECT response head too long");
        let n = tcp.read(&mut byte).await?;
        ensure!(n == 1, "proxy closed during CONNECT");
        head.push(byte[0]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(&head)?;
    match response.code {
        Some(200) => Ok(()),
        other => bail!(
            "CONNECT answered {other:?}: {}",
            String::from_utf8_lossy(&head)
        ),
    }
}

async fn fetch<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: S,
    t0: Instant,
    path: &str,
    port: u16,
) -> Result<Sample> {
    let t_req = Instant::now();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0;
    let mut ttfb = None;
    loop {
        let n = match tls.read(&mut buf).await {
            Ok(n) => n,
            // The upstream may close without close_notify after `Connection: close`.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        ttfb.get_or_insert_with(|| t0.elapsed());
        bytes += n;
    }
    let sample = Sample {
        ttfb: ttfb.context("empty response")?,
        transfer: t_req.elapsed(),
        total: t0.elapsed(),
        bytes,
    };
    if path == "/1m" {
        ensure!(sample.bytes >= MIB, "short body: {} bytes", sample.bytes);
    }
    Ok(sample)
}

/// How this machine's idle CPUs wait, for the notes: the guest halt-polling
/// window of the `haltpoll` cpuidle driver, when it is loaded.
fn halt_poll() -> String {
    match std::fs::read_to_string("/sys/module/haltpoll/parameters/guest_halt_poll_ns") {
        Ok(ns) => format!("cpuidle `haltpoll`, `guest_halt_poll_ns` {}", ns.trim()),
        Err(_) => "no `haltpoll` cpuidle driver".to_owned(),
    }
}

fn mib_per_s(s: Sample) -> f64 {
    s.bytes as f64 / (1024.0 * 1024.0) / s.transfer.as_secs_f64()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "(met)" } else { "(NOT met)" }
}

/// A squid started for the benchmark; killed (by its pid) on drop.
struct Squid {
    addr: SocketAddr,
    version: String,
    user: String,
    child: Child,
    _dir: TempDir,
}

impl Squid {
    fn start(host: &str, ip: IpAddr) -> Result<Self> {
        let binary = ["/usr/sbin/squid", "/usr/bin/squid"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("squid is not installed (apt-get install squid)")?;
        let version = Command::new(binary)
            .arg("-v")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = TempDir::new();
        let root = nix::unistd::geteuid().is_root();
        // squid refuses to keep root: it drops to cache_effective_user, which
        // must be able to write its logs here.
        let user = if root { "proxy".to_owned() } else { whoami() };
        if root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777))?;
        }
        std::fs::write(dir.0.join("hosts"), format!("{ip} {host}\n"))?;
        let d = dir.0.display();
        let config = format!(
            "http_port 127.0.0.1:{port}\n\
             acl allowed dstdomain {host}\n\
             http_access allow allowed\n\
             http_access deny all\n\
             hosts_file {d}/hosts\n\
             pid_filename {d}/squid.pid\n\
             cache_log {d}/cache.log\n\
             access_log none\n\
             cache deny all\n\
             cache_mem 8 MB\n\
             coredump_dir {d}\n\
             netdb_filename none\n\
             pinger_enable off\n\
             shutdown_lifetime 0 seconds\n\
             workers 1\n\
             {}",
            if root {
                format!("cache_effective_user {user}\n")
            } else {
                String::new()
            }
        );
        let conf = dir.0.join("squid.conf");
        std::fs::write(&conf, config)?;
        let child = Command::new(binary)
            .args(["-N", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start squid")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let squid = Self {
            addr,
            version,
            user,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(squid._dir.0.join("cache.log")).unwrap_or_default();
                bail!("squid did not start listening: {log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(squid)
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's stream module as an SNI passthrough proxy (`ssl_preread`): one
/// listener per upstream, forwarding a ClientHello for `HOST` to it and
/// anything else nowhere. `worker_processes 1`, no access log; stopped on
/// drop.
struct NginxStream {
    /// By upstream, in the order given to [`NginxStream::start`].
    listeners: Vec<SocketAddr>,
    process: NginxProcess,
    _dir: TempDir,
}

impl NginxStream {
    fn start(upstreams: &[SocketAddr]) -> Result<Self> {
        let module = nginx::stream_module()?.display();
        let dir = TempDir::new();
        let d = dir.0.display();
        let mut servers = String::new();
        let mut listeners = Vec::new();
        for (i, upstream) in upstreams.iter().enumerate() {
            let addr = SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port(),
            ));
            listeners.push(addr);
            // Port 9 (discard) of loopback: nothing listens, the connection
            // of a name that is not allowed is refused.
            let _ = write!(
                servers,
                "  map $ssl_preread_server_name $upstream{i} {{ {HOST} {upstream}; default 127.0.0.1:9; }}\n\
                 \x20 server {{ listen {addr}; ssl_preread on; proxy_pass $upstream{i}; \
                 proxy_buffer_size {NGINX_BUFFER}; }}\n"
            );
        }
        let config = format!(
            "load_module {module};\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             stream {{\n{servers}}}\n"
        );
        let process = NginxProcess::start(&dir.0, &config, listeners[0])?;
        Ok(Self {
            listeners,
            process,
            _dir: dir,
        })
    }
}

/// The upstream's network namespace and the veth pair joining it to the
/// benchmark's namespace; both removed on drop (also when unwinding).
struct Veth {
    netns: String,
    local_if: String,
    peer_if: String,
}

impl Veth {
    fn create() -> Result<Self> {
        ensure!(
            nix::unistd::geteuid().is_root(),
            "the veth topology (section 2) creates a network namespace and a veth pair, \
             which needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run the benchmark as root, \
             as `cargo xtask bench` does"
        );
        Self::remove_stale();
        let in_use = ip(&[
            "-4",
            "-o",
            "addr",
            "show",
            "to",
            &format!("{VETH_LOCAL}/{VETH_PREFIX}"),
        ])?;
        ensure!(
            in_use.trim().is_empty(),
            "{VETH_LOCAL}/{VETH_PREFIX} is already in use here, the veth topology needs it: \
             {in_use}"
        );
        let pid = std::process::id();
        let veth = Self {
            netns: format!("proxy-bench-{pid}"),
            // Interface names: at most 15 bytes.
            local_if: format!("pxb{pid}h"),
            peer_if: format!("pxb{pid}u"),
        };
        ip(&["netns", "add", &veth.netns])?;
        // From here on, dropping `veth` undoes whatever was done.
        let (ns, local, peer) = (&veth.netns, &veth.local_if, &veth.peer_if);
        ip(&[
            "link", "add", local, "type", "veth", "peer", "name", peer, "netns", ns,
        ])?;
        let mtu = VETH_MTUS[0].to_string();
        ip(&[
            "addr",
            "add",
            &format!("{VETH_LOCAL}/{VETH_PREFIX}"),
            "dev",
            local,
        ])?;
        ip(&["link", "set", local, "mtu", &mtu, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{VETH_UPSTREAM}/{VETH_PREFIX}"),
            "dev",
            peer,
        ])?;
        ip(&["-n", ns, "link", "set", peer, "mtu", &mtu, "up"])?;
        Ok(veth)
    }

    /// An fd of the upstream's namespace, for `setns`.
    fn netns(&self) -> Result<OwnedFd> {
        let path = format!("/run/netns/{}", self.netns);
        Ok(File::open(&path)
            .with_context(|| format!("open {path}"))?
            .into())
    }

    /// Sets the MTU of both ends.
    fn set_mtu(&self, mtu: u32) -> Result<()> {
        let mtu = mtu.to_string();
        ip(&["link", "set", &self.local_if, "mtu", &mtu])?;
        ip(&["-n", &self.netns, "link", "set", &self.peer_if, "mtu", &mtu])?;
        Ok(())
    }

    /// Removes what a killed earlier run left: namespaces `proxy-bench-<pid>`
    /// of processes that are gone, and their veth pairs.
    fn remove_stale() {
        let Ok(entries) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("proxy-bench-")
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            eprintln!("removing stale network namespace {name}");
            let _ = ip(&["link", "del", &format!("pxb{pid}h")]);
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end removes the pair; the namespace itself goes when
        // its last user (the upstream thread's sockets) does.
        if let Err(e) = ip(&["link", "del", &self.local_if]) {
            eprintln!("proxy bench: {e:#}");
        }
        if let Err(e) = ip(&["netns", "del", &self.netns]) {
            eprintln!("proxy bench: {e:#}");
        }
    }
}

/// Runs `ip args`, returning its output; fails with its stderr.
fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run ip (iproute2)")?;
    ensure!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "nobody".to_owned())
}
