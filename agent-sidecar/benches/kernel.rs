//! Kernel-enforcement benchmark (`harness = false`): what the eBPF hooks cost
//! the governed agent.
//!
//! 1. Hook overhead: a worker process does loopback TCP `connect()` +
//!    `close()` in a loop, once in an enforced cgroup (destination
//!    allowlisted) and once in a sibling cgroup without programs; plus the
//!    kernel's own per-program run statistics.
//! 2. Lookup cost against allowlist size (10 to 100,000 rules).
//! 3. `agent-sidecar run -- /bin/true` wall time against bare `/bin/true`.
//!
//! Needs root. Prints a Markdown report on stdout; with `--write-docs` (or
//! `BENCH_WRITE_DOCS=1`) also replaces `docs/benchmarks-kernel.md`. Run it with
//! `cargo xtask bench`, or as root:
//! `cargo bench -p agent-sidecar --bench kernel -- --write-docs`.

use std::{
    fmt::Write as _,
    io::{BufRead, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpListener},
    os::fd::AsRawFd,
    panic::{AssertUnwindSafe, catch_unwind, resume_unwind},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use agent_sidecar::{
    egress::{Allowlist, EgressRule, Protocols, RuleSource, Target},
    kernel::{Enforcer, EnforcerConfig, cgroup::AgentCgroup, preflight},
};
use agent_sidecar_common::program_names;
use anyhow::{Context, Result, bail, ensure};
use aya::{
    programs::{
        links::{FdLink, PinnedLink},
        loaded_programs,
    },
    sys::{Stats, enable_stats},
};
use ipnet::{IpNet, Ipv4Net};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, connect, listen, setsockopt,
    socket, sockopt,
};

/// Hidden first argument that turns the bench binary into a connect worker.
const WORKER_ARG: &str = "--kernel-bench-worker";
/// Timed connect+close iterations per worker run.
const CONNECTS: u32 = 10_000;
/// Untimed iterations before the timed loop.
const WARMUP: u32 = 1_000;
/// Alternating baseline/enforced rounds for the overhead measurement.
const OVERHEAD_ROUNDS: usize = 21;
/// Alternating baseline/enforced rounds per allowlist size.
const SIZE_ROUNDS: usize = 11;
/// Rounds with kernel program statistics on, per measurement.
const STATS_ROUNDS: usize = 5;
/// Allowlist sizes (rules) for the lookup-cost curve; the first size is
/// measured again at the end, so drift over the run shows as a difference
/// between its two rows rather than as a trend.
const SIZES: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];
/// Alternating rounds of `agent-sidecar run -- /bin/true` and `/bin/true`.
const RUN_ROUNDS: usize = 25;
/// Untimed runs of each command before the timed rounds.
const RUN_WARMUP: usize = 2;
/// Target: added cost of the hooks on connect+close, percent.
const OVERHEAD_TARGET_PCT: f64 = 3.0;
/// Target: `run` over the bare command, milliseconds.
const RUN_TARGET_MS: f64 = 50.0;
/// "Flat": the largest connect4 cost per run over all sizes is at most this
/// many times the smallest.
const FLAT_TARGET_RATIO: f64 = 1.25;
/// Listen backlog of the loopback listener.
const LISTEN_BACKLOG: i32 = 4096;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(WORKER_ARG) {
        return worker_main(&args[1..]);
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "kernel bench: must run as root (it loads eBPF programs, creates cgroups and enables \
             BPF statistics); run `cargo xtask bench` or, as root, \
             `cargo bench -p agent-sidecar --bench kernel`"
        );
        return ExitCode::FAILURE;
    }
    let write_docs = args.iter().any(|a| a == "--write-docs")
        || std::env::var("BENCH_WRITE_DOCS").is_ok_and(|v| v == "1");
    match run_benchmarks().and_then(|report| publish(&report, write_docs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kernel bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the report and, if asked, writes it to `docs/benchmarks-kernel.md`.
fn publish(report: &str, write_docs: bool) -> Result<()> {
    println!("{report}");
    if write_docs {
        let path = docs_path();
        std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("kernel bench: wrote {}", path.display());
    }
    Ok(())
}

/// `<workspace>/docs/benchmarks-kernel.md`.
fn docs_path() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("docs/benchmarks-kernel.md")
}

// ---------------------------------------------------------------- worker --

/// Entry point of the worker process: `<addr> <warmup> <count>`. Waits for
/// one line on stdin (the parent moves it into a cgroup first), runs the
/// loop and prints the nanoseconds the timed part took.
fn worker_main(args: &[String]) -> ExitCode {
    match worker_run(args) {
        Ok(ns) => {
            println!("{ns}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kernel bench worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the worker arguments, waits for the go line and runs the loop.
fn worker_run(args: &[String]) -> Result<u128> {
    let [addr, warmup, count] = args else {
        bail!("usage: {WORKER_ARG} <ip:port> <warmup> <count>");
    };
    let addr = SockaddrIn::from(addr.parse::<SocketAddrV4>().context("worker address")?);
    let warmup: u32 = warmup.parse().context("worker warmup")?;
    let count: u32 = count.parse().context("worker count")?;
    std::io::stdin()
        .lock()
        .read_line(&mut String::new())
        .context("waiting for the go line")?;
    for _ in 0..warmup {
        connect_close(&addr)?;
    }
    let start = Instant::now();
    for _ in 0..count {
        connect_close(&addr)?;
    }
    Ok(start.elapsed().as_nanos())
}

/// One iteration: `socket()`, `SO_LINGER` 0, `connect()`, `close()`.
///
/// The zero linger makes `close()` send a RST instead of a FIN, so no
/// TIME_WAIT socket is left behind: the ephemeral ports never run out and
/// every iteration costs the same in both configurations.
fn connect_close(addr: &SockaddrIn) -> Result<()> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket()")?;
    setsockopt(
        &fd,
        sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .context("SO_LINGER")?;
    connect(fd.as_raw_fd(), addr).with_context(|| format!("connect({addr})"))?;
    Ok(())
}

// -------------------------------------------------------------- listener --

/// Binds a loopback TCP listener with a large backlog and closes every
/// accepted connection on a background thread (which lives until exit).
fn spawn_listener() -> Result<SocketAddrV4> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket()")?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).context("SO_REUSEADDR")?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
    )
    .context("bind()")?;
    let backlog = Backlog::new(LISTEN_BACKLOG).unwrap_or(Backlog::MAXCONN);
    listen(&fd, backlog).context("listen()")?;
    let listener = TcpListener::from(fd);
    let addr = match listener.local_addr()? {
        std::net::SocketAddr::V4(a) => a,
        other => bail!("listener bound to {other}, expected IPv4"),
    };
    std::thread::spawn(move || {
        // Accept errors (a connection reset before accept) are expected.
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    Ok(addr)
}

// ---------------------------------------------------------------- runs --

/// Runs one worker process inside `cgroup` and returns nanoseconds per
/// connect+close of its timed loop.
fn run_worker(cgroup: &AgentCgroup, dest: SocketAddrV4) -> Result<f64> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut child = Command::new(exe)
        .args([
            WORKER_ARG,
            &dest.to_string(),
            &WARMUP.to_string(),
            &CONNECTS.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a worker")?;
    let placed = cgroup
        .add_pid(child.id())
        .context("moving the worker into its cgroup");
    let go = match (&placed, child.stdin.take()) {
        (Ok(()), Some(mut stdin)) => stdin.write_all(b"go\n").context("starting the worker loop"),
        (Ok(()), None) => Err(anyhow::anyhow!("worker stdin missing")),
        (Err(_), _) => Ok(()),
    };
    if placed.is_err() || go.is_err() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().context("waiting for the worker")?;
    placed?;
    go?;
    ensure!(
        out.status.success(),
        "worker failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let ns: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("worker output")?;
    Ok(ns / f64::from(CONNECTS))
}

/// Runs a worker in the enforced cgroup and checks the hooks saw (and
/// allowed) every connect.
fn run_enforced(enforcer: &Enforcer, dest: SocketAddrV4) -> Result<f64> {
    let before = enforcer.counters().allowed;
    let ns = run_worker(enforcer.cgroup(), dest)?;
    let allowed = enforcer.counters().allowed - before;
    ensure!(
        allowed >= u64::from(WARMUP + CONNECTS),
        "the hooks allowed {allowed} connects, expected {}: the worker did not run enforced",
        WARMUP + CONNECTS
    );
    Ok(ns)
}

/// Per-round ns per connect+close without and with the programs.
#[derive(Debug, Default)]
struct Overhead {
    baseline: Vec<f64>,
    enforced: Vec<f64>,
}

impl Overhead {
    /// Median added cost in percent, from the per-round ratios (each round
    /// runs both configurations back to back, so slow drift cancels out).
    fn pct(&self) -> f64 {
        let ratios: Vec<f64> = self
            .enforced
            .iter()
            .zip(&self.baseline)
            .map(|(e, b)| e / b)
            .collect();
        (median(&ratios) - 1.0) * 100.0
    }
}

/// Alternates baseline and enforced worker runs (the order flips every round).
fn measure_overhead(
    baseline: &AgentCgroup,
    enforcer: &Enforcer,
    dest: SocketAddrV4,
    rounds: usize,
) -> Result<Overhead> {
    let mut o = Overhead::default();
    for round in 0..rounds {
        if round % 2 == 0 {
            o.baseline.push(run_worker(baseline, dest)?);
            o.enforced.push(run_enforced(enforcer, dest)?);
        } else {
            o.enforced.push(run_enforced(enforcer, dest)?);
            o.baseline.push(run_worker(baseline, dest)?);
        }
        eprintln!(
            "kernel bench:   round {}: baseline {:.0} ns, enforced {:.0} ns",
            round + 1,
            o.baseline[round],
            o.enforced[round]
        );
    }
    Ok(o)
}

// ------------------------------------------------------------ bpf stats --

/// Cumulative kernel run statistics of one program.
#[derive(Clone, Copy, Debug, Default)]
struct ProgStats {
    run_time_ns: u64,
    run_cnt: u64,
}

/// Median in-kernel cost of one hook during worker runs.
#[derive(Clone, Debug)]
struct HookCost {
    name: &'static str,
    /// Program runs per connect+close iteration.
    runs_per_iter: f64,
    /// Nanoseconds per program run.
    ns_per_run: f64,
}

impl HookCost {
    /// Nanoseconds this hook adds per connect+close.
    fn ns_per_iter(&self) -> f64 {
        self.runs_per_iter * self.ns_per_run
    }
}

/// The kernel ids of the programs attached for `enforcer` (the cgroup
/// programs, and the BPF-LSM guard when it is attached), read from its
/// pinned links, so no other loaded `connect4` is mistaken for ours.
fn attached_program_ids(enforcer: &Enforcer) -> Result<Vec<(&'static str, u32)>> {
    let lsm = enforcer
        .lsm_guard()
        .then_some(program_names::LSM_SOCKET_CREATE);
    program_names::ALL
        .iter()
        .copied()
        .chain(lsm)
        .map(|name| {
            let path = enforcer.layout().link_path(enforcer.generation(), name);
            let link = FdLink::from(
                PinnedLink::from_pin(&path)
                    .with_context(|| format!("opening {}", path.display()))?,
            );
            let info = link
                .info()
                .with_context(|| format!("reading the link of {name}"))?;
            Ok((name, info.program_id()))
        })
        .collect()
}

/// Reads the run statistics of the programs `ids`.
fn read_stats(ids: &[(&'static str, u32)]) -> Result<Vec<ProgStats>> {
    let mut found: Vec<Option<ProgStats>> = vec![None; ids.len()];
    // Programs of other users may vanish while we iterate; skip those errors.
    for info in loaded_programs().flatten() {
        if let Some(i) = ids.iter().position(|&(_, id)| id == info.id()) {
            let run_time_ns = u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
            found[i] = Some(ProgStats {
                run_time_ns,
                run_cnt: info.run_count(),
            });
        }
    }
    ids.iter()
        .zip(found)
        .map(|(&(name, id), s)| {
            s.with_context(|| format!("program {name} (id {id}) is not loaded"))
        })
        .collect()
}

/// Turns on the kernel's BPF run statistics while the guard lives
/// (`BPF_ENABLE_STATS`: the same switch as `sysctl kernel.bpf_stats_enabled=1`,
/// reference counted and released by the kernel even if this process dies).
fn stats_on() -> Result<std::os::fd::OwnedFd> {
    enable_stats(Stats::RunTime).context("enabling BPF run statistics (BPF_ENABLE_STATS)")
}

/// Runs `rounds` enforced workers with statistics on and returns the median
/// per-hook cost (hooks that did not run are left out).
fn measure_hook_costs(
    enforcer: &Enforcer,
    dest: SocketAddrV4,
    rounds: usize,
) -> Result<Vec<HookCost>> {
    let ids = attached_program_ids(enforcer)?;
    let iterations = f64::from(WARMUP + CONNECTS);
    let mut per_run: Vec<Vec<f64>> = vec![Vec::new(); ids.len()];
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); ids.len()];
    let _stats = stats_on()?;
    for _ in 0..rounds {
        let before = read_stats(&ids)?;
        run_enforced(enforcer, dest)?;
        let after = read_stats(&ids)?;
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let cnt = a.run_cnt - b.run_cnt;
            if cnt > 0 {
                per_run[i].push((a.run_time_ns - b.run_time_ns) as f64 / cnt as f64);
                runs[i].push(cnt as f64 / iterations);
            }
        }
    }
    Ok(ids
        .iter()
        .zip(per_run.iter().zip(&runs))
        .filter(|(_, (p, _))| !p.is_empty())
        .map(|(&(name, _), (p, r))| HookCost {
            name,
            runs_per_iter: median(r),
            ns_per_run: median(p),
        })
        .collect())
}

/// The connect4 entry of `costs` (ns per run), or an error if it never ran.
fn connect4_ns(costs: &[HookCost]) -> Result<f64> {
    costs
        .iter()
        .find(|c| c.name == program_names::CONNECT4)
        .map(|c| c.ns_per_run)
        .context("connect4 never ran during the stats rounds")
}

// ------------------------------------------------------------ allowlists --

/// Deterministic xorshift64 generator for the synthetic allowlists.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// An allowlist with one TCP rule for `dest`.
fn single_rule(dest: SocketAddrV4) -> Allowlist {
    let mut list = Allowlist::new();
    push_rule(
        &mut list,
        Target {
            net: IpNet::V4(Ipv4Net::from(*dest.ip())),
            port: Some(dest.port()),
        },
    );
    list
}

/// Appends a TCP rule for `target`.
fn push_rule(list: &mut Allowlist, target: Target) {
    let n = list.rules().len() + 1;
    list.push(EgressRule {
        target,
        protocols: Protocols::Tcp,
        source: RuleSource::Flag(n),
    });
}

/// `size` TCP rules: `dest`, `127.0.0.0/8:<cidr_dest port>`, then random
/// ones outside 127.0.0.0/8, half `IP:PORT`, a quarter `CIDR` and a quarter
/// `CIDR:PORT` (prefixes /8-/30).
fn random_allowlist(size: usize, dest: SocketAddrV4, cidr_dest: SocketAddrV4) -> Allowlist {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut list = single_rule(dest);
    push_rule(
        &mut list,
        Target {
            net: IpNet::V4(Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("valid prefix")),
            port: Some(cidr_dest.port()),
        },
    );
    while list.rules().len() < size {
        let i = list.rules().len();
        push_rule(&mut list, random_target(&mut rng, i));
    }
    list
}

/// The `i`-th random rule (see [`random_allowlist`]).
fn random_target(rng: &mut XorShift, i: usize) -> Target {
    let addr = loop {
        let a = Ipv4Addr::from(rng.next() as u32);
        if !a.is_loopback() && !a.is_unspecified() {
            break a;
        }
    };
    let port = Some(rng.range(1, 65_535) as u16);
    let prefix = rng.range(8, 30) as u8;
    let cidr = IpNet::V4(
        Ipv4Net::new(addr, prefix)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| Ipv4Net::from(addr)),
    );
    match i % 4 {
        0 | 1 => Target {
            net: IpNet::V4(Ipv4Net::from(addr)),
            port,
        },
        2 => Target {
            net: cidr,
            port: None,
        },
        _ => Target { net: cidr, port },
    }
}

// ------------------------------------------------------------- sections --

/// Section 1 results.
struct HookSection {
    overhead: Overhead,
    costs: Vec<HookCost>,
    /// Whether the optional BPF-LSM socket guard was attached.
    lsm_guard: bool,
}

/// One point of the allowlist-size curve.
struct SizePoint {
    rules: usize,
    /// The re-measurement of the first size, after the largest.
    repeat: bool,
    entries: usize,
    overhead: Overhead,
    /// connect4 ns per run to the destination of an `IP:PORT` rule.
    connect4_ns: f64,
    /// connect4 ns per run to a destination only a `CIDR:PORT` rule matches.
    connect4_cidr_ns: f64,
}

/// Section 3 results, milliseconds per run.
struct RunSection {
    bare_ms: Vec<f64>,
    run_ms: Vec<f64>,
}

/// Starts enforcement, runs `f`, and always tears down (also on error or
/// panic), killing whatever is left in the cgroup.
fn with_enforcer<T>(
    config: &EnforcerConfig,
    list: &Allowlist,
    f: impl FnOnce(&mut Enforcer) -> Result<T>,
) -> Result<T> {
    let mut enforcer = Enforcer::start(config, list).context("starting enforcement")?;
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut enforcer)));
    let teardown = enforcer.teardown().context("tearing down enforcement");
    match outcome {
        Ok(result) => {
            let value = result?;
            teardown?;
            Ok(value)
        }
        Err(panic) => resume_unwind(panic),
    }
}

/// Creates an empty sibling cgroup (no programs) for the baseline, runs
/// `f`, and always removes it.
fn with_baseline_cgroup<T>(
    agent_prefix: &str,
    f: impl FnOnce(&AgentCgroup) -> Result<T>,
) -> Result<T> {
    let root = preflight::cgroup2_mount().context("finding the cgroup v2 mount")?;
    let (cgroup, _) = AgentCgroup::create_or_open(&root, &format!("{agent_prefix}-base"))
        .context("creating the baseline cgroup")?;
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&cgroup)));
    let killed = cgroup.kill_all(std::time::Duration::from_secs(5));
    let removed = cgroup.remove();
    match outcome {
        Ok(result) => {
            let value = result?;
            killed.context("emptying the baseline cgroup")?;
            removed.context("removing the baseline cgroup")?;
            Ok(value)
        }
        Err(panic) => resume_unwind(panic),
    }
}

/// Section 1: hook overhead and per-hook in-kernel cost, one allowlist rule.
fn hook_section(
    baseline: &AgentCgroup,
    enforcer: &Enforcer,
    dest: SocketAddrV4,
) -> Result<HookSection> {
    eprintln!(
        "kernel bench: 1/3 hook overhead ({OVERHEAD_ROUNDS} rounds x {CONNECTS} connects per configuration)"
    );
    let overhead = measure_overhead(baseline, enforcer, dest, OVERHEAD_ROUNDS)?;
    let costs = measure_hook_costs(enforcer, dest, STATS_ROUNDS)?;
    Ok(HookSection {
        overhead,
        costs,
        lsm_guard: enforcer.lsm_guard(),
    })
}

/// Section 2: the same measurements for growing allowlists.
fn size_section(
    baseline: &AgentCgroup,
    enforcer: &mut Enforcer,
    dest: SocketAddrV4,
    cidr_dest: SocketAddrV4,
) -> Result<Vec<SizePoint>> {
    let mut points = Vec::new();
    let last = SIZES.len();
    for (i, &rules) in SIZES.iter().chain(&SIZES[..1]).enumerate() {
        let repeat = i == last;
        eprintln!(
            "kernel bench: 2/3 allowlist of {rules} rules{}",
            if repeat { " (again)" } else { "" }
        );
        enforcer
            .update_allowlist(&random_allowlist(rules, dest, cidr_dest))
            .context("loading the allowlist")?;
        let overhead = measure_overhead(baseline, enforcer, dest, SIZE_ROUNDS)?;
        let exact_ns = connect4_ns(&measure_hook_costs(enforcer, dest, STATS_ROUNDS)?)?;
        let cidr_ns = connect4_ns(&measure_hook_costs(enforcer, cidr_dest, STATS_ROUNDS)?)?;
        points.push(SizePoint {
            rules,
            repeat,
            entries: enforcer.allowlist_entries(),
            overhead,
            connect4_ns: exact_ns,
            connect4_cidr_ns: cidr_ns,
        });
    }
    Ok(points)
}

/// The `agent-sidecar` binary: `AGENT_SIDECAR_BIN`, or the one cargo built
/// for this bench (same profile).
fn sidecar_binary() -> Result<PathBuf> {
    let bin = std::env::var_os("AGENT_SIDECAR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_agent-sidecar")));
    ensure!(
        bin.is_file(),
        "{} not found (build it, or set AGENT_SIDECAR_BIN)",
        bin.display()
    );
    Ok(bin)
}

/// Runs `cmd` to completion and returns its wall time in milliseconds;
/// fails unless it exits 0.
fn time_command(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(ms)
}

/// Section 3: `agent-sidecar run -- /bin/true` against `/bin/true`.
fn run_section(agent_prefix: &str, state_dir: &Path) -> Result<RunSection> {
    eprintln!("kernel bench: 3/3 `agent-sidecar run -- /bin/true` ({RUN_ROUNDS} rounds)");
    let bin = sidecar_binary()?;
    let sidecar = |i: usize| {
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .args(["--agent-id", &format!("{agent_prefix}-run-{i}")])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--", "/bin/true"]);
        cmd
    };
    let bare = || Command::new("/bin/true");
    for i in 0..RUN_WARMUP {
        time_command(&mut sidecar(i))?;
        time_command(&mut bare())?;
    }
    let mut section = RunSection {
        bare_ms: Vec::new(),
        run_ms: Vec::new(),
    };
    for round in 0..RUN_ROUNDS {
        let i = RUN_WARMUP + round;
        if round % 2 == 0 {
            section.bare_ms.push(time_command(&mut bare())?);
            section.run_ms.push(time_command(&mut sidecar(i))?);
        } else {
            section.run_ms.push(time_command(&mut sidecar(i))?);
            section.bare_ms.push(time_command(&mut bare())?);
        }
    }
    Ok(section)
}

/// Runs every section and renders the report.
fn run_benchmarks() -> Result<String> {
    let started = Instant::now();
    let stats_preset = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .is_ok_and(|s| s.trim() != "0");
    let load_before = load_average();
    let prefix = format!("bench-{}", std::process::id());
    let state_dir = std::env::temp_dir().join(format!("agent-sidecar-{prefix}"));
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let result = run_sections(&prefix, &state_dir);
    let _ = std::fs::remove_dir_all(&state_dir);
    let (hooks, sizes, run) = result?;
    let conditions = Conditions {
        stats_preset,
        load_before,
        load_after: load_average(),
        secs: started.elapsed().as_secs_f64(),
    };
    Ok(render(&hooks, &sizes, &run, &conditions))
}

/// How the run went, for the report.
struct Conditions {
    /// `kernel.bpf_stats_enabled` was already on before the bench.
    stats_preset: bool,
    /// `/proc/loadavg` 1/5/15-minute averages at the start.
    load_before: String,
    /// The same at the end.
    load_after: String,
    /// Duration of the whole run, seconds.
    secs: f64,
}

/// The 1, 5 and 15-minute load averages from `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The three sections, with the listener, baseline cgroup and enforcement
/// they share.
fn run_sections(
    prefix: &str,
    state_dir: &Path,
) -> Result<(HookSection, Vec<SizePoint>, RunSection)> {
    let dest = spawn_listener()?;
    let cidr_dest = spawn_listener()?;
    let mut config = EnforcerConfig::new(&format!("{prefix}-hooks"));
    config.state_dir = state_dir.to_path_buf();
    let (hooks, sizes) = with_baseline_cgroup(prefix, |baseline| {
        with_enforcer(&config, &single_rule(dest), |enforcer| {
            let hooks = hook_section(baseline, enforcer, dest)?;
            let sizes = size_section(baseline, enforcer, dest, cidr_dest)?;
            Ok((hooks, sizes))
        })
    })?;
    let run = run_section(prefix, state_dir)?;
    Ok((hooks, sizes, run))
}

// ---------------------------------------------------------------- report --

/// Median of `v` (mean of the two middle values for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// `min`-`max` of `v`, formatted with `decimals`.
fn spread(v: &[f64], decimals: usize) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.decimals$}–{max:.decimals$}")
}

/// "yes" or "**no**".
fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// Thousands separators for integers.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Today's date (UTC) as `YYYY-MM-DD`.
fn utc_date() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Kernel release, CPU count and CPU model.
fn machine_info() -> (String, usize, String) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    (kernel, cpus, model)
}

/// Renders the whole report as Markdown.
fn render(
    hooks: &HookSection,
    sizes: &[SizePoint],
    run: &RunSection,
    conditions: &Conditions,
) -> String {
    let mut md = String::new();
    render_intro(&mut md, conditions);
    render_targets(&mut md, hooks, sizes, run);
    render_hooks(&mut md, hooks);
    render_sizes(&mut md, sizes);
    render_run(&mut md, run);
    md
}

/// Title, how to run, machine and method.
fn render_intro(md: &mut String, conditions: &Conditions) {
    let secs = conditions.secs;
    let (kernel, cpus, model) = machine_info();
    let _ = writeln!(md, "# Benchmarks: kernel enforcement\n");
    let _ = writeln!(
        md,
        "Produced by `agent-sidecar/benches/kernel.rs`; every number below is from one run of it.\n"
    );
    let _ = writeln!(md, "## How to run\n");
    let _ = writeln!(md, "```sh\ncargo xtask bench\n```\n");
    let _ = writeln!(
        md,
        "runs, as root, `cargo bench -p agent-sidecar --bench kernel -- --write-docs`, which prints this \
         report and rewrites this file (`BENCH_WRITE_DOCS=1` does the same as `--write-docs`; without either \
         the report is only printed). It needs root, cgroup v2, bpffs and kernel BTF, and exits non-zero \
         otherwise. `AGENT_SIDECAR_BIN` overrides the `agent-sidecar` binary timed in section 3. \
         This run took {secs:.0} s.\n"
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date (UTC) | {} |", utc_date());
    let _ = writeln!(md, "| kernel | {kernel} |");
    let _ = writeln!(md, "| CPUs | {cpus} ({model}) |");
    let _ = writeln!(
        md,
        "| load average (1/5/15 min) | {} at the start, {} at the end |\n",
        conditions.load_before, conditions.load_after
    );
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "- A worker process (the bench binary re-executed) does {} untimed and {} timed iterations of \
         `socket()`, `SO_LINGER` 0, `connect()` to a 127.0.0.1 listener (backlog {LISTEN_BACKLOG}, a thread \
         accepts and closes), `close()`. The zero linger closes with a RST, so no TIME_WAIT sockets pile up \
         and every iteration costs the same; the cost of that `setsockopt()` is in both configurations.",
        thousands(WARMUP as usize),
        thousands(CONNECTS as usize)
    );
    let _ = writeln!(
        md,
        "- *enforced*: the worker is in the agent cgroup `agent-sidecar/<id>` with its cgroup programs \
         (`sock_create`, `connect4`, `connect6`, `sendmsg4`, `sendmsg6`, `egress`) and, where the kernel \
         allows it, the BPF-LSM socket guard attached, and the destination allowlisted (TCP); each run checks that the hooks allowed every \
         connect. *baseline*: the worker is in a sibling cgroup without programs."
    );
    let _ = writeln!(
        md,
        "- Rounds alternate baseline and enforced runs (the order flips each round). Overhead is the \
         median over rounds of enforced / baseline − 1; times are medians (min–max over rounds)."
    );
    let _ = writeln!(
        md,
        "- In-kernel cost: the kernel's per-program `run_time_ns` / `run_cnt` (deltas over a worker run), \
         for the programs attached to the bench's cgroup (ids read from its pinned links). Statistics are \
         on (`BPF_ENABLE_STATS`, the switch behind `sysctl kernel.bpf_stats_enabled`, released when the \
         bench exits) only during {STATS_ROUNDS} separate enforced runs per measurement, because the \
         accounting itself adds time; the timed rounds run without it.{}",
        if conditions.stats_preset {
            " **Note: `kernel.bpf_stats_enabled` was already 1 on this host, so the timed rounds include the accounting.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "- Allowlists for section 2: the destination's `IP:PORT` rule, `127.0.0.0/8:PORT` for a second \
         loopback listener (the *CIDR destination*, decided by the tries after two exact-map misses), \
         plus random TCP rules outside 127.0.0.0/8 (½ `IP:PORT`, ¼ `CIDR`, ¼ `CIDR:PORT`, prefixes \
         /8–/30), loaded into the running enforcement with `update_allowlist`.\n"
    );
}

/// The smallest and largest of `values`.
fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// The summary of targets.
fn render_targets(md: &mut String, hooks: &HookSection, sizes: &[SizePoint], run: &RunSection) {
    let overhead = hooks.overhead.pct();
    let (c4_min, c4_max) = min_max(sizes.iter().map(|p| p.connect4_ns));
    let flat = c4_max / c4_min;
    let (cidr_min, cidr_max) = min_max(sizes.iter().map(|p| p.connect4_cidr_ns));
    let cidr_flat = cidr_max / cidr_min;
    let added = median(&run.run_ms) - median(&run.bare_ms);
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| target | measured | met |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| hooks add ≤ {OVERHEAD_TARGET_PCT} % to loopback connect+close | {overhead:+.1} % | {} |",
        met(overhead <= OVERHEAD_TARGET_PCT)
    );
    let _ = writeln!(
        md,
        "| connect4 cost flat from {} to {} rules (max / min ≤ {FLAT_TARGET_RATIO}) | max / min = {flat:.2} ({c4_min:.0}–{c4_max:.0} ns per run) | {} |",
        thousands(SIZES[0]),
        thousands(SIZES[SIZES.len() - 1]),
        met(flat <= FLAT_TARGET_RATIO)
    );
    let _ = writeln!(
        md,
        "| the same, CIDR destination | max / min = {cidr_flat:.2} ({cidr_min:.0}–{cidr_max:.0} ns per run) | {} |",
        met(cidr_flat <= FLAT_TARGET_RATIO)
    );
    let _ = writeln!(
        md,
        "| `run -- /bin/true` adds < {RUN_TARGET_MS} ms | {added:+.1} ms | {} |\n",
        met(added < RUN_TARGET_MS)
    );
}

/// Section 1 tables.
fn render_hooks(md: &mut String, hooks: &HookSection) {
    let o = &hooks.overhead;
    let _ = writeln!(md, "## 1. Hook overhead on loopback connect+close\n");
    let _ = writeln!(
        md,
        "One allowlist rule; {} rounds per configuration. BPF-LSM socket guard: {}.\n",
        o.baseline.len(),
        if hooks.lsm_guard {
            "attached"
        } else {
            "not attached on this host"
        }
    );
    let _ = writeln!(md, "| configuration | ns per connect+close |\n|---|---|");
    let _ = writeln!(
        md,
        "| baseline (no programs) | {:.0} ({}) |",
        median(&o.baseline),
        spread(&o.baseline, 0)
    );
    let _ = writeln!(
        md,
        "| enforced | {:.0} ({}) |",
        median(&o.enforced),
        spread(&o.enforced, 0)
    );
    let _ = writeln!(
        md,
        "| **overhead** | **{:+.1} %** ({:+.0} ns, difference of medians) |\n",
        o.pct(),
        median(&o.enforced) - median(&o.baseline)
    );
    let _ = writeln!(
        md,
        "In-kernel cost per program (kernel BPF statistics, median of {STATS_ROUNDS} runs):\n"
    );
    let _ = writeln!(
        md,
        "| program | runs per connect+close | ns per run | ns per connect+close |\n|---|---|---|---|"
    );
    for c in &hooks.costs {
        let _ = writeln!(
            md,
            "| `{}` | {:.2} | {:.0} | {:.0} |",
            c.name,
            c.runs_per_iter,
            c.ns_per_run,
            c.ns_per_iter()
        );
    }
    let total: f64 = hooks.costs.iter().map(HookCost::ns_per_iter).sum();
    let _ = writeln!(md, "| all | | | {total:.0} |\n");
}

/// Section 2 table.
fn render_sizes(md: &mut String, sizes: &[SizePoint]) {
    let _ = writeln!(md, "## 2. Lookup cost against allowlist size\n");
    let _ = writeln!(
        md,
        "connect4 ns per run: median of {STATS_ROUNDS} runs with statistics on. connect+close: medians of {SIZE_ROUNDS} rounds per configuration, without statistics.\n"
    );
    let _ = writeln!(
        md,
        "| rules | kernel entries | connect4 ns per run | connect4 ns per run, CIDR destination | baseline ns per connect+close | enforced ns per connect+close | overhead |\n|---|---|---|---|---|---|---|"
    );
    for p in sizes {
        let _ = writeln!(
            md,
            "| {}{} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.1} % |",
            thousands(p.rules),
            if p.repeat { " (again, last)" } else { "" },
            thousands(p.entries),
            p.connect4_ns,
            p.connect4_cidr_ns,
            median(&p.overhead.baseline),
            median(&p.overhead.enforced),
            p.overhead.pct()
        );
    }
    let _ = writeln!(md);
}

/// Section 3 table.
fn render_run(md: &mut String, run: &RunSection) {
    let (bare, sidecar) = (median(&run.bare_ms), median(&run.run_ms));
    let _ = writeln!(md, "## 3. `agent-sidecar run -- /bin/true` wall time\n");
    let _ = writeln!(
        md,
        "{} alternating rounds after {RUN_WARMUP} untimed runs of each; `run` with a fresh `--agent-id` each time \
         and default logging (stderr captured), so every run creates the cgroup, loads, verifies, attaches \
         and pins the programs, starts `/bin/true` as nobody and tears everything down.\n",
        run.run_ms.len()
    );
    let _ = writeln!(md, "| command | ms (median) | min–max |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| `/bin/true` | {bare:.2} | {} |",
        spread(&run.bare_ms, 2)
    );
    let _ = writeln!(
        md,
        "| `agent-sidecar run -- /bin/true` | {sidecar:.2} | {} |",
        spread(&run.run_ms, 2)
    );
    let _ = writeln!(md, "| **difference** | **{:+.2}** | |", sidecar - bare);
}
