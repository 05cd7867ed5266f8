//! The governed half of the soak: the real `agent-sidecar run` (root, the
//! kernel programs, the DNS resolver, the proxies) in a network namespace of
//! its own, governing an agent that loops until stopped. Each round the
//! agent
//!
//! - resolves an allowlisted name and a refused one with `dig` (the answer
//!   must be the legitimate address; the refused name NXDOMAIN);
//! - fetches `https://api.allowed.test/` through the explicit proxy (`run`
//!   sets `HTTPS_PROXY`) from a local TLS server (must answer `legit`) and
//!   `https://evil.test/` (must fail: the proxy refuses the name, although a
//!   server answers there);
//! - connects to the attacker's address on a port no rule names (must be
//!   refused by the kernel with EPERM; nothing listening would be
//!   ECONNREFUSED, a failure of the check too). Ports 80 and 443 are not
//!   used for this: the transparent proxy takes those and refuses by name.
//!
//! Every check prints one line (`soak-check NAME ok|fail DETAIL`), every
//! round ends with `soak-round`; a reader thread counts them. The soak
//! samples the `run` process's RSS and open fds each minute.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use agent_sidecar_test_support::{
    ca::TestCa,
    dns::{Authority, Zone},
    web::WebServer,
};
use agent_sidecar_tests::{NetNs, command_in, probe_bin, sidecar_bin, unique};

const LEGIT: &str = "198.51.100.1";
const EVIL: &str = "198.51.100.2";

/// What the agent's loop reported.
#[derive(Default)]
pub(crate) struct GovernedCounts {
    /// Rounds the agent finished.
    pub(crate) rounds: AtomicU64,
    /// Checks made (five a round).
    pub(crate) checks: AtomicU64,
    /// Checks with the outcome the soak did not ask for, and minutes in
    /// which the agent finished no round or `run` had exited.
    pub(crate) unexpected: AtomicU64,
}

/// `agent-sidecar run` governing the looping agent, and its world.
pub(crate) struct Governed {
    child: Child,
    agent_id: String,
    state_dir: PathBuf,
    pub(crate) counts: Arc<GovernedCounts>,
    last_rounds: u64,
    _web: (WebServer, WebServer),
    _dns: Authority,
    _ca: TestCa,
    _ns: NetNs,
}

/// The agent's loop (POSIX sh; `$1` the CA file, `$2` the probe binary).
const LOOP: &str = r#"
check() { if [ "$2" = ok ]; then echo "soak-check $1 ok"; else echo "soak-check $1 fail $3"; fi; }
trap 'exit 0' TERM
while :; do
  a=$(dig +short +time=3 +tries=1 api.allowed.test 2>&1)
  [ "$a" = "198.51.100.1" ] && check dns_allowed ok || check dns_allowed fail "$a"
  r=$(dig +time=3 +tries=1 evil.test 2>&1)
  case "$r" in *NXDOMAIN*) check dns_refused ok ;; *) check dns_refused fail "$(echo $r | head -c 200)" ;; esac
  b=$(curl -sS --max-time 10 --cacert "$1" https://api.allowed.test/soak 2>&1)
  [ "$b" = legit ] && check https_allowed ok || check https_allowed fail "$b"
  e=$(curl -sS --max-time 10 --cacert "$1" https://evil.test/soak 2>&1)
  [ $? -ne 0 ] && check https_refused ok || check https_refused fail "$e"
  p=$("$2" tcp 198.51.100.2:5432)
  [ $? -eq 1 ] && check connect_denied ok || check connect_denied fail "$p"
  echo soak-round
  sleep 0.5
done
"#;

impl Governed {
    /// Starts the world and `run`; waits for the first round. `log` gets
    /// `run`'s stderr.
    pub(crate) fn start(log: &std::path::Path) -> Self {
        let ns = NetNs::new();
        ns.add_address(&format!("{LEGIT}/32"));
        ns.add_address(&format!("{EVIL}/32"));
        let ca = TestCa::new();
        let names = ["api.allowed.test", "evil.test"];
        let (cert, key) = ca.issue("legit", &names);
        let (ecert, ekey) = ca.issue("evil", &names);
        let legit = WebServer::https(&ns, &format!("{LEGIT}:443"), "legit", &cert, &key);
        let evil = WebServer::https(&ns, &format!("{EVIL}:443"), "evil", &ecert, &ekey);
        let dns = Authority::start_in(
            &ns,
            &format!("{LEGIT}:53"),
            Zone::from_addrs(&[("api.allowed.test", LEGIT), ("evil.test", EVIL)], 30),
        );
        let state_dir = std::env::temp_dir().join(unique("soak-run"));
        std::fs::create_dir_all(&state_dir).expect("the run's state dir");
        let agent_id = unique("soak");
        let upstream = format!("{LEGIT}:53");
        let ca_file = ca.ca_file();
        let probe = probe_bin();
        let args = [
            "run",
            "--agent-id",
            &agent_id,
            "--state-dir",
            state_dir.to_str().expect("utf-8 path"),
            "--upstream-dns",
            &upstream,
            "--allow",
            "api.allowed.test:443",
            "--",
            "sh",
            "-c",
            LOOP,
            "soak-agent",
            ca_file.to_str().expect("utf-8 path"),
            probe.to_str().expect("utf-8 path"),
        ];
        let stderr = std::fs::File::create(log).expect("the run's log file");
        let mut child = command_in(&ns, None, &sidecar_bin(), &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start agent-sidecar run");
        let counts = Arc::new(GovernedCounts::default());
        let stdout = child.stdout.take().expect("the agent's stdout");
        let c = Arc::clone(&counts);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "soak-round" {
                    c.rounds.fetch_add(1, Ordering::Relaxed);
                } else if let Some(rest) = line.strip_prefix("soak-check ") {
                    c.checks.fetch_add(1, Ordering::Relaxed);
                    if !rest.split_whitespace().nth(1).is_some_and(|r| r == "ok") {
                        c.unexpected.fetch_add(1, Ordering::Relaxed);
                        eprintln!("soak: governed agent: unexpected outcome: {rest}");
                    }
                }
            }
        });
        let g = Governed {
            child,
            agent_id,
            state_dir,
            counts,
            last_rounds: 0,
            _web: (legit, evil),
            _dns: dns,
            _ca: ca,
            _ns: ns,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while g.counts.rounds.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "the governed agent finished no round in 60 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        g
    }

    /// The `run` process's RSS (KiB) and open fds; counts a minute without
    /// a round, or a `run` that has exited, as unexpected.
    pub(crate) fn sample(&mut self) -> (u64, u64) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak: agent-sidecar run exited: {status}");
            return (0, 0);
        }
        let rounds = self.counts.rounds.load(Ordering::Relaxed);
        if rounds == self.last_rounds {
            self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak: the governed agent finished no round this minute");
        }
        self.last_rounds = rounds;
        let pid = self.child.id();
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        (rss, fds)
    }

    /// Stops the agent (SIGTERM to `run`, which forwards it) and checks that
    /// `run` ended cleanly.
    pub(crate) fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
                        eprintln!("soak: agent-sidecar run ended with {status}");
                    }
                    break;
                }
                _ if Instant::now() > deadline => {
                    self.counts.unexpected.fetch_add(1, Ordering::Relaxed);
                    eprintln!("soak: agent-sidecar run did not stop within 20 s of SIGTERM");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Governed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(sidecar_bin())
            .args(["teardown", "--agent-id", &self.agent_id, "--state-dir"])
            .arg(&self.state_dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}
