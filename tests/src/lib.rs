//! Harness for agent-sidecar's privileged integration tests.
//!
//! Every test builds its own world: a fresh network namespace (`ip netns`)
//! with extra addresses on its loopback, a fresh agent cgroup with the real
//! eBPF programs attached, servers inside the namespace, and probe processes
//! started inside (agent) or outside (control) the cgroup. Tests panic with
//! context instead of returning errors. The namespaces and the servers
//! (DNS, web, MCP) come from `agent-sidecar-test-support`.
#![allow(missing_docs)]

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, UdpSocket},
    path::{Path, PathBuf},
    process::Output,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub mod pay;

pub use agent_sidecar_test_support::netns::{NetNs, command_in, in_ns, sh, unique};

use agent_sidecar::{
    egress::{Allowlist, EgressRule, Protocols, RuleSource},
    kernel::{Enforcer, EnforcerConfig, events::DenyRecord},
};

/// Environment variable that makes privileged tests mandatory (set by CI and
/// `cargo xtask test`): without root they fail instead of not running.
pub const REQUIRE_ENV: &str = "AGENT_SIDECAR_PRIVILEGED_TESTS";

/// Returns whether privileged tests can run. Without root: panics when
/// [`REQUIRE_ENV`] or `CI` is set, otherwise prints a loud notice and
/// returns false.
pub fn privileged() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let required =
        std::env::var_os(REQUIRE_ENV).is_some_and(|v| v != "0") || std::env::var_os("CI").is_some();
    if required {
        panic!(
            "privileged kernel tests must run (CI / {REQUIRE_ENV}=1) but this process is not root"
        );
    }
    eprintln!(
        "\n!!!! NOT RUN: this kernel test needs root (BPF, cgroups, netns). Run `sudo cargo xtask test` \
         or set {REQUIRE_ENV}=1 to make this a failure. !!!!\n"
    );
    false
}

/// A TCP listener in a namespace that counts accepted connections and
/// records what each sent and how it ended.
pub struct TcpServer {
    pub addr: SocketAddr,
    pub accepted: Arc<Mutex<Vec<Vec<u8>>>>,
    /// How each connection ended, in the order of `accepted`: `eof` (the
    /// peer closed), `reset` (the peer reset it) or `idle` (the timeout).
    pub ends: Arc<Mutex<Vec<&'static str>>>,
}

impl TcpServer {
    /// A server that records what each connection sent until it closes or
    /// is idle for 300 ms.
    pub fn start(ns: &NetNs, addr: &str) -> Self {
        Self::with_idle_timeout(ns, addr, Duration::from_millis(300))
    }

    /// The same, with another idle timeout (for connections held open).
    pub fn with_idle_timeout(ns: &NetNs, addr: &str, idle: Duration) -> Self {
        let addr: SocketAddr = addr.parse().expect("addr");
        let listener = in_ns(ns, move || TcpListener::bind(addr).expect("bind tcp"));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let ends = Arc::new(Mutex::new(Vec::new()));
        let (log, end_log) = (accepted.clone(), ends.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, end_log) = (log.clone(), end_log.clone());
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let _ = stream.set_read_timeout(Some(idle));
                    let mut buf = Vec::new();
                    let end = match stream.read_to_end(&mut buf) {
                        Ok(_) => "eof",
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset",
                        Err(_) => "idle",
                    };
                    // One lock order: bytes, then the end.
                    let mut log = log.lock().unwrap();
                    log.push(buf);
                    end_log.lock().unwrap().push(end);
                });
            }
        });
        TcpServer {
            addr,
            accepted,
            ends,
        }
    }

    /// Waits up to `limit` until `n` connections have ended; returns what
    /// each sent and how it ended.
    pub fn wait_ended(&self, n: usize, limit: Duration) -> Vec<(Vec<u8>, &'static str)> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let log = self.accepted.lock().unwrap();
                let ends = self.ends.lock().unwrap();
                if log.len() >= n || Instant::now() > deadline {
                    return log.iter().cloned().zip(ends.iter().copied()).collect();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connections accepted so far (waits briefly for in-flight ones).
    pub fn count(&self) -> usize {
        std::thread::sleep(Duration::from_millis(50));
        self.accepted.lock().unwrap().len()
    }
}

/// A UDP socket in a namespace that records every datagram.
pub struct UdpServer {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl UdpServer {
    pub fn start(ns: &NetNs, addr: &str) -> Self {
        let addr: SocketAddr = addr.parse().expect("addr");
        let socket = in_ns(ns, move || UdpSocket::bind(addr).expect("bind udp"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok(n) = socket.recv(&mut buf) {
                log.lock().unwrap().push(buf[..n].to_vec());
            }
        });
        UdpServer { addr, received }
    }

    /// Whether a datagram with exactly `payload` arrived (waits briefly).
    pub fn got(&self, payload: &str) -> bool {
        let deadline = Instant::now() + Duration::from_millis(300);
        loop {
            if self
                .received
                .lock()
                .unwrap()
                .iter()
                .any(|p| p == payload.as_bytes())
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A binary of the workspace, next to the test executable's `deps/` dir.
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `cargo xtask test` does it)",
        bin.display()
    );
    bin
}

/// The probe binary, at a path the agent's uid can execute: a checkout
/// the agent cannot reach (under `/root`, mode 0700) gets a copy under
/// `/var/lib/agent-sidecar-dev/bin-<hash>/`, made once per test process.
pub fn probe_bin() -> PathBuf {
    static STAGED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    STAGED
        .get_or_init(|| reachable_copy(&workspace_bin("egress-probe")))
        .clone()
}

/// Whether a process of another uid can reach `path` (every ancestor
/// directory searchable by others).
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// `bin` itself when others can reach it, else a world-executable copy in
/// a directory named for its path and modification time (so a rebuilt
/// binary gets a fresh copy), written under a temporary name and renamed
/// so that concurrent test processes never run a half-written file.
fn reachable_copy(bin: &Path) -> PathBuf {
    use std::{
        hash::{Hash, Hasher},
        os::unix::fs::PermissionsExt,
    };
    if reachable_by_others(bin) {
        return bin.to_path_buf();
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bin.hash(&mut h);
    std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .expect("binary metadata")
        .hash(&mut h);
    let dir = Path::new("/var/lib/agent-sidecar-dev").join(format!("bin-{:016x}", h.finish()));
    let to = dir.join(bin.file_name().expect("binary name"));
    if !to.exists() {
        std::fs::create_dir_all(&dir).expect("creating the stage of the test binaries");
        for d in [dir.parent().unwrap(), dir.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                .expect("opening the stage to the agent");
        }
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::copy(bin, &tmp).expect("copying the binary into the stage");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .expect("making the staged binary executable");
        std::fs::rename(&tmp, &to).expect("placing the staged binary");
    }
    to
}

/// The agent-sidecar binary.
pub fn sidecar_bin() -> PathBuf {
    workspace_bin("agent-sidecar")
}

/// Result of one probe run.
#[derive(Debug)]
pub struct ProbeResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ProbeResult {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    pub fn denied(&self) -> bool {
        self.code == 1
    }
}

fn finish(out: Output) -> ProbeResult {
    ProbeResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One governed agent: an [`Enforcer`] on a fresh cgroup, plus the deny
/// events it has received.
pub struct Agent {
    pub id: String,
    pub enforcer: Option<Enforcer>,
    pub state_dir: PathBuf,
    events: aya::maps::RingBuf<aya::maps::MapData>,
    seen: Vec<DenyRecord>,
}

/// Builds an allowlist from `(target, protocols)` pairs.
pub fn allowlist(rules: &[&str]) -> Allowlist {
    let mut list = Allowlist::new();
    for (i, r) in rules.iter().enumerate() {
        let (target, protocols) = match r.split_once(' ') {
            Some((t, "tcp")) => (t, Protocols::Tcp),
            Some((t, "udp")) => (t, Protocols::Udp),
            _ => (*r, Protocols::Any),
        };
        list.push(EgressRule {
            target: target.parse().expect("target"),
            protocols,
            source: RuleSource::Flag(i + 1),
        });
    }
    list
}

impl Agent {
    pub fn start(rules: &[&str]) -> Self {
        Self::start_with_private(rules, &[])
    }

    /// An agent whose kernel also refuses the ports of `private`, the
    /// sidecar's own listeners.
    pub fn start_with_private(rules: &[&str], private: &[SocketAddr]) -> Self {
        let id = unique("agent");
        let state_dir = std::env::temp_dir().join(unique("ast-state"));
        let mut config = EnforcerConfig::new(&id);
        config.state_dir = state_dir.clone();
        config.private_listeners = private.to_vec();
        let mut enforcer =
            Enforcer::start(&config, &allowlist(rules)).unwrap_or_else(|e| panic!("enforcer: {e}"));
        let events = enforcer.take_events().expect("events");
        Agent {
            id,
            enforcer: Some(enforcer),
            state_dir,
            events,
            seen: Vec::new(),
        }
    }

    pub fn enforcer(&self) -> &Enforcer {
        self.enforcer.as_ref().expect("enforcer")
    }

    pub fn procs(&self) -> File {
        self.enforcer()
            .cgroup()
            .procs_writer()
            .expect("cgroup.procs")
    }

    /// Runs the probe inside the cgroup (as root unless `uid`).
    pub fn probe(&self, ns: &NetNs, args: &[&str]) -> ProbeResult {
        let procs = self.procs();
        let out = command_in(ns, Some(&procs), &probe_bin(), args)
            .output()
            .expect("run probe");
        finish(out)
    }

    /// Runs the probe in the same namespace but outside any agent cgroup.
    pub fn control(ns: &NetNs, args: &[&str]) -> ProbeResult {
        finish(
            command_in(ns, None, &probe_bin(), args)
                .output()
                .expect("run probe"),
        )
    }

    /// Collects deny events until one matches `pred` (or 2 s pass).
    pub fn expect_event(&mut self, what: &str, pred: impl Fn(&DenyRecord) -> bool) -> DenyRecord {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            agent_sidecar::kernel::events::drain(&mut self.events, &mut |r| self.seen.push(r));
            if let Some(r) = self.seen.iter().find(|r| pred(r)) {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no deny event for {what}; events seen: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(e) = self.enforcer.take()
            && let Err(err) = e.teardown()
        {
            eprintln!("teardown of {} failed: {err}", self.id);
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Writes `text` to `path` (test convenience).
pub fn write_file(path: &Path, text: &str) {
    File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write file");
}
