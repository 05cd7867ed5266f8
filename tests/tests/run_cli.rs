//! `agent-sidecar run` end to end: the real binary, real clients (curl,
//! Python's http.server), signals, SIGKILL of the sidecar, stale state.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar_tests::{
    NetNs, TcpServer, command_in, in_ns, privileged, probe_bin, sidecar_bin, unique,
};

/// `agent-sidecar run` with a private state dir, inside `ns`.
struct Run {
    agent_id: String,
    state_dir: PathBuf,
}

impl Run {
    fn new() -> Self {
        let state_dir = std::env::temp_dir().join(unique("ast-run"));
        std::fs::create_dir_all(&state_dir).unwrap();
        Run {
            agent_id: unique("cli"),
            state_dir,
        }
    }

    fn command(&self, ns: &NetNs, extra: &[&str], argv: &[&str]) -> Command {
        let mut args: Vec<&str> = vec![
            "run",
            "--agent-id",
            &self.agent_id,
            "--state-dir",
            self.state_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(argv);
        let mut cmd = command_in(ns, None, &sidecar_bin(), &args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    fn output(&self, ns: &NetNs, extra: &[&str], argv: &[&str]) -> Output {
        self.command(ns, extra, argv)
            .output()
            .expect("run agent-sidecar")
    }

    fn state_file(&self) -> PathBuf {
        self.state_dir.join(format!("{}.json", self.agent_id))
    }

    fn pin_dir(&self) -> PathBuf {
        Path::new("/sys/fs/bpf/agent-sidecar").join(&self.agent_id)
    }

    fn teardown(&self) -> Output {
        Command::new(sidecar_bin())
            .args([
                "teardown",
                "--agent-id",
                &self.agent_id,
                "--state-dir",
                self.state_dir.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.teardown();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cgroup2() -> PathBuf {
    agent_sidecar::kernel::preflight::cgroup2_mount().unwrap()
}

#[test]
fn run_drops_privileges_and_propagates_the_exit_code() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let run = Run::new();
    let out = run.output(
        &ns,
        &[],
        &["sh", "-c", "id -u; id -g; grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status; grep '^0::' /proc/self/cgroup; exit 7"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}{}", text(&out.stderr));
    // A uid (and gid) of its own, from the dynamic range.
    let ids: Vec<u32> = stdout.lines().take(2).map(|l| l.parse().unwrap()).collect();
    assert!(ids[0] == ids[1] && dynamic(ids[0]), "{stdout}");
    for line in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in {stdout}");
    }
    assert!(
        stdout.contains(&format!("0::/agent-sidecar/{}\n", run.agent_id)),
        "{stdout}"
    );
    // Torn down afterwards.
    assert!(!run.state_file().exists() && !run.pin_dir().exists());
    assert!(!cgroup2().join("agent-sidecar").join(&run.agent_id).exists());
    // Killed by a signal: 128 + N, like a shell.
    let out = run.output(&ns, &[], &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137));
    let out = run.output(&ns, &[], &["/no/such/agent"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));

    // No bpffs at --bpffs: mounted there, unless --no-mount-bpffs refuses.
    let bpffs = std::env::temp_dir().join(unique("ast-bpffs"));
    std::fs::create_dir_all(&bpffs).unwrap();
    let flag = ["--bpffs", bpffs.to_str().unwrap()];
    let out = run.output(&ns, &[flag[0], flag[1], "--no-mount-bpffs"], &["true"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains(&format!("bpffs is not mounted at {}", bpffs.display())),
        "{stderr}"
    );
    let out = run.output(&ns, &flag, &["true"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("bpffs was not mounted: mounted it"),
        "{stderr}"
    );
    let fs = nix::sys::statfs::statfs(&bpffs).unwrap();
    assert_eq!(
        fs.filesystem_type().0 as u64,
        0xcafe4a11,
        "a bpffs at {bpffs:?}"
    );
    nix::mount::umount(&bpffs).unwrap();
    std::fs::remove_dir(&bpffs).unwrap();

    // A command the agent's own uid cannot reach (a checkout in a 0700
    // home): refused before the start, naming the directory and the fix.
    let home = std::env::temp_dir().join(unique("ast-private-home"));
    std::fs::create_dir_all(&home).unwrap();
    let agent = home.join("agent.sh");
    std::fs::write(&agent, "#!/bin/sh\necho started\n").unwrap();
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = run.output(&ns, &[], &[agent.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(126), "{stdout}{stderr}");
    assert!(!stdout.contains("started"), "{stdout}");
    assert!(
        stderr.contains(&format!("chmod o+x {}", home.display())) && stderr.contains("--user"),
        "{stderr}"
    );
    // Made searchable, the same command starts.
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    let out = run.output(&ns, &[], &[agent.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "started");
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn real_clients_reach_only_the_allowlist() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let mut servers: Vec<Child> = ["10.77.0.1", "10.77.0.2"]
        .iter()
        .map(|ip| {
            command_in(
                &ns,
                None,
                Path::new("python3"),
                &["-m", "http.server", "8080", "--bind", ip],
            )
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server")
        })
        .collect();
    for ip in ["10.77.0.1", "10.77.0.2"] {
        wait_for("http.server", || {
            command_in(
                &ns,
                None,
                Path::new("curl"),
                &["-s", "-o", "/dev/null", &format!("http://{ip}:8080/")],
            )
            .status()
            .is_ok_and(|s| s.success())
        });
    }
    let run = Run::new();
    let script = "curl -s -o /dev/null -w '%{http_code}\\n' http://10.77.0.1:8080/; \
                  curl -s -m 3 -o /dev/null http://10.77.0.2:8080/; echo denied-exit=$?; \
                  python3 -c \"import urllib.request as u; print(u.urlopen('http://10.77.0.1:8080/').status)\"";
    let out = run.output(
        &ns,
        &["--allow", "10.77.0.1:8080", "--log-format", "json"],
        &["sh", "-c", script],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "200\ndenied-exit=7\n200\n", "stderr: {stderr}");
    // The deny reached userspace as a structured log line.
    let deny = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "egress denied")
        .unwrap_or_else(|| panic!("no deny event in {stderr}"));
    assert_eq!(deny["destination"], "10.77.0.2:8080");
    assert_eq!(deny["hook"], "connect4");
    assert_eq!(deny["comm"], "curl");
    assert!(dynamic(deny["uid"].as_u64().unwrap() as u32), "{deny}");
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
}

#[test]
fn the_agent_cannot_leave_its_cgroup_touch_pins_or_open_packet_sockets() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let run = Run::new();
    let root_procs = cgroup2().join("cgroup.procs");
    let parent_procs = cgroup2().join("agent-sidecar/cgroup.procs");
    let own_procs = cgroup2()
        .join("agent-sidecar")
        .join(&run.agent_id)
        .join("cgroup.procs");
    let probe = probe_bin();
    let p = probe.to_str().unwrap();
    let script = format!(
        "{p} write {} 0; {p} write {} 0; {p} write {} 0; {p} open /sys/fs/bpf/agent-sidecar/{}/gen-1/ALLOW4_PORT; {p} socket packet; {p} socket raw4; grep '^0::' /proc/self/cgroup",
        root_procs.display(),
        parent_procs.display(),
        own_procs.display(),
        run.agent_id
    );
    let out = run.output(&ns, &[], &["sh", "-c", &script]);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}{}", text(&out.stderr));
    for (i, line) in lines[..6].iter().enumerate() {
        assert!(
            line.contains("\"ok\":false")
                && (line.contains("\"errno\":13") || line.contains("\"errno\":1,")),
            "attempt {i}: {line}"
        );
    }
    assert_eq!(
        lines[6],
        format!("0::/agent-sidecar/{}", run.agent_id),
        "still in its cgroup"
    );
}

#[test]
fn sigkill_of_the_sidecar_leaves_the_agent_blocked_and_a_second_run_replaces_the_state() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let denied = TcpServer::start(&ns, "10.77.0.2:8080");
    let allowed = TcpServer::start(&ns, "10.77.0.1:8080");
    let run = Run::new();
    let go = std::env::temp_dir().join(unique("go"));
    let probe = probe_bin();
    let p = probe.to_str().unwrap();
    let script = format!(
        "{p} wait-file {g} tcp 10.77.0.2:8080; {p} tcp 10.77.0.1:8080",
        g = go.display()
    );
    let mut sidecar = run
        .command(&ns, &["--allow", "10.77.0.1:8080"], &["sh", "-c", &script])
        .spawn()
        .unwrap();
    wait_for("state file", || run.state_file().exists());

    // While it lives, the agent id is taken.
    let busy = run.output(&ns, &[], &["true"]);
    assert_eq!(busy.status.code(), Some(125));
    assert!(
        text(&busy.stderr).contains("is in use by a running agent-sidecar"),
        "{}",
        text(&busy.stderr)
    );

    sidecar.kill().unwrap(); // SIGKILL
    let _ = sidecar.wait();
    std::fs::write(&go, "").unwrap();
    let mut out = sidecar.stdout.take().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].contains("\"errno\":1,"),
        "denied after the sidecar died: {stdout}"
    );
    assert_eq!(
        lines[1], "{\"ok\":true}",
        "allowlist still in force: {stdout}"
    );
    assert_eq!((denied.count(), allowed.count()), (0, 1));
    assert!(
        run.pin_dir().join("gen-1").exists(),
        "pins survive the sidecar"
    );

    // A second run with the same id replaces the stale generation without a gap.
    let out = run.output(
        &ns,
        &["--allow", "10.77.0.1:8080"],
        &[p, "tcp", "10.77.0.2:8080"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("replacing stale pinned enforcement"),
        "{stderr}"
    );
    assert!(
        !run.pin_dir().exists() && !run.state_file().exists(),
        "cleaned up: {stderr}"
    );
    let _ = std::fs::remove_file(go);
}

#[test]
fn an_agent_starts_in_a_cgroup_a_supervisor_emptied_with_cgroup_kill() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let run = Run::new();
    // Left behind and killed through cgroup.kill (a supervisor cleaning
    // up after a sidecar that died): the kernel kills whatever is born
    // into such a cgroup, so run makes it anew.
    let cgroup = cgroup2().join("agent-sidecar").join(&run.agent_id);
    std::fs::create_dir_all(&cgroup).unwrap();
    std::fs::write(cgroup.join("cgroup.kill"), "1").unwrap();
    let out = run.output(&ns, &[], &["sh", "-c", "echo started"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "started");
    assert!(!cgroup.exists(), "removed at teardown");
}

#[test]
fn metrics_signals_and_keep_pinned_state() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let run = Run::new();
    let probe = probe_bin();
    let p = probe.to_str().unwrap();
    let script = format!(
        "{p} tcp 10.77.0.2:8080; {p} tcp 127.0.0.1:19464; trap 'exit 42' TERM; while :; do sleep 0.05; done"
    );
    let mut sidecar = run
        .command(
            &ns,
            &["--metrics-listen", "127.0.0.1:19464"],
            &["sh", "-c", &script],
        )
        .spawn()
        .unwrap();
    // The operator reads the metrics; the agent itself could not reach them.
    let mut metrics = String::new();
    wait_for("both denials in /metrics", || {
        let out = command_in(
            &ns,
            None,
            Path::new("curl"),
            &["-s", "http://127.0.0.1:19464/metrics"],
        )
        .output()
        .unwrap();
        metrics = text(&out.stdout);
        // The metrics listener's own port is refused as a private listener.
        ["not_allowlisted", "private_listener"].iter().all(|reason| {
            metrics.contains(&format!(
                "agent_sidecar_egress_denied_total{{agent_id=\"{}\",hook=\"connect4\",protocol=\"tcp\",reason=\"{reason}\"}} 1",
                run.agent_id
            ))
        })
    });
    assert!(
        metrics.contains("agent_sidecar_kernel_decisions_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agent_sidecar_allowlist_entries"),
        "{metrics}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sidecar.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = sidecar.wait().unwrap();
    assert_eq!(status.code(), Some(42), "SIGTERM forwarded to the agent");

    let out = run.output(&ns, &["--keep-pinned"], &["true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run.pin_dir().exists() && run.state_file().exists());
    let down = run.teardown();
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(!run.pin_dir().exists() && !run.state_file().exists());
    assert!(!cgroup2().join("agent-sidecar").join(&run.agent_id).exists());
}

#[test]
fn bad_input_gets_a_clear_error_and_the_fix() {
    // Parsing happens before anything privileged, so this runs everywhere.
    let out = Command::new(sidecar_bin())
        .args(["run", "--allow", "10.0.0.1/8", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("did you mean `10.0.0.0/8`"),
        "{}",
        text(&out.stderr)
    );

    let dir = std::env::temp_dir().join(unique("ast-policy"));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\negress:\n  allow:\n    - 10.0.0.0/8:99999\n",
    )
    .unwrap();
    let out = Command::new(sidecar_bin())
        .args(["run", "--policy", policy.to_str().unwrap(), "--", "true"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("p.yaml at line 4 column") && stderr.contains("out of range"),
        "{stderr}"
    );

    let out = Command::new(sidecar_bin())
        .args([
            "run",
            "--static-host",
            "crm.demo.test:127.0.0.1",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no `=` between the name and the address; write NAME=IP"),
        "{}",
        text(&out.stderr)
    );

    let out = Command::new(sidecar_bin())
        .args(["run", "--user", "0", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("could move itself out of its cgroup"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The uid `run` logged for its agent (`--log-format json`).
fn logged_uid(stderr: &str) -> u32 {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "agent user")
        .and_then(|v| v["uid"].as_u64())
        .unwrap_or_else(|| panic!("no agent user line in {stderr}")) as u32
}

/// Whether `uid` is in the default dynamic range.
fn dynamic(uid: u32) -> bool {
    agent_sidecar::run::uid_pool::DEFAULT_RANGE.contains(&uid)
}

#[test]
fn the_agent_environment_holds_only_what_is_listed() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let run = Run::new();
    let out = run
        .command(
            &ns,
            &["--env", "MODE=test", "--pass-env", "KEEP_ME"],
            &[
                "python3",
                "-c",
                "import os, json; print(json.dumps(dict(os.environ)))",
            ],
        )
        .env("OPERATOR_TOKEN", "operator-token-123")
        .env("KEEP_ME", "kept")
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let env: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(env["HOME"], "/nonexistent");
    assert_eq!(env["MODE"], "test");
    assert_eq!(env["KEEP_ME"], "kept");
    assert_eq!(env["LANG"], "C.UTF-8");
    assert_eq!(env["AGENT_SIDECAR_AGENT_ID"], run.agent_id.as_str());
    for name in env.keys() {
        assert!(
            [
                "PATH",
                "LANG",
                "LANGUAGE",
                "TERM",
                "TZ",
                "HOME",
                "MODE",
                "KEEP_ME",
                "AGENT_SIDECAR_AGENT_ID"
            ]
            .contains(&name.as_str())
                || name.starts_with("LC_"),
            "{name} reached the agent: {stdout}"
        );
    }
    assert!(!stdout.contains("operator-token-123"), "{stdout}");

    let out = run.output(&ns, &["--env", "NOVALUE"], &["true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("write NAME=VALUE"),
        "{}",
        text(&out.stderr)
    );
}

/// Tries, from the agent `pid`'s neighbour, every way to reach into it and
/// its file `path`; prints one JSON object of errno (or "ok") per attempt.
const NEIGHBOUR: &str = r#"
import ctypes, json, os, sys
pid, path = int(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
r = {}
def attempt(name, f):
    try:
        f()
        r[name] = "ok"
    except OSError as e:
        r[name] = e.errno
def ptrace():
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
def replace():
    tmp = path + ".neighbour"
    with open(tmp, "w") as f:
        f.write("replaced")
    try:
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
attempt("signal", lambda: os.kill(pid, 0))
attempt("ptrace", ptrace)
attempt("environ", lambda: open(f"/proc/{pid}/environ", "rb").read())
attempt("mem", lambda: open(f"/proc/{pid}/mem", "rb").close())
def getfd():
    fd = libc.syscall(438, os.pidfd_open(pid), 1, 0)  # pidfd_getfd
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.close(fd)
attempt("pidfd_getfd", getfd)
attempt("read_file", lambda: open(path).read())
attempt("replace_file", replace)
attempt("remove_file", lambda: os.unlink(path))
def shm():
    if libc.shmget(int(sys.argv[3]), 0, 0) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
attempt("sysv_shm", shm)
r["uid"] = os.getuid()
r["neighbour_uid"] = os.stat(f"/proc/{pid}").st_uid
print(json.dumps(r))
"#;

#[test]
fn two_agents_cannot_signal_trace_read_or_replace_each_other() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let (a, b) = (Run::new(), Run::new());
    // A shared sticky, world-writable directory, like /tmp.
    let shared = std::env::temp_dir().join(unique("ast-shared"));
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(
        &shared,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let pid_file = shared.join("a.pid");
    let a_file = shared.join("a-notes.txt");
    // A also creates a System V shared memory segment anybody may use.
    let shm_key = 0x5a00_0000 + std::process::id() % 0x10000;
    let script = format!(
        "echo a-private > {f}; \
         python3 -c 'import ctypes; assert ctypes.CDLL(None).shmget({k}, 4096, 0o1666) >= 0'; \
         echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 30",
        f = a_file.display(),
        p = pid_file.display(),
        k = shm_key
    );
    let mut agent_a = a.command(&ns, &[], &["sh", "-c", &script]).spawn().unwrap();
    wait_for("agent A's pid", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();

    let out = b.output(
        &ns,
        &["--log-format", "json"],
        &[
            "python3",
            "-c",
            NEIGHBOUR,
            &pid,
            a_file.to_str().unwrap(),
            &shm_key.to_string(),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let (uid_a, uid_b) = (
        r["neighbour_uid"].as_u64().unwrap() as u32,
        r["uid"].as_u64().unwrap() as u32,
    );
    assert_ne!(uid_a, uid_b, "two agents share a uid: {r}");
    assert!(dynamic(uid_a) && dynamic(uid_b), "{r}");
    assert_eq!(logged_uid(&stderr), uid_b, "the audit trail names the uid");
    for (attempt, errno) in [
        ("signal", 1),
        ("ptrace", 1),
        ("environ", 13),
        ("mem", 13),
        ("pidfd_getfd", 1),
        ("read_file", 13),
        ("replace_file", 1),
        ("remove_file", 1),
        ("sysv_shm", 2),
    ] {
        assert_eq!(r[attempt], errno, "{attempt}: {r}");
    }
    // A's lease is held while it runs, and released after.
    let lock = Path::new(agent_sidecar::run::uid_pool::LOCK_DIR).join(format!("{uid_a}.lock"));
    assert!(lock.exists(), "{}", lock.display());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_a.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = agent_a.wait();
    assert!(!lock.exists(), "lease released: {}", lock.display());
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "a-private\n");
    let _ = std::fs::remove_dir_all(&shared);
}

/// Tries non-IP socket families and unix sockets from inside the agent;
/// prints one JSON object of errno (or "ok") per attempt.
const SOCKETS: &str = r#"
import ctypes, json, os, socket, sys
outside_abstract, outside_file, open_file = sys.argv[1], sys.argv[2], sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
r = {}
def attempt(name, f):
    try:
        f()
        r[name] = "ok"
    except OSError as e:
        r[name] = e.errno
def sock(family, kind, proto=0):
    return lambda: socket.socket(family, kind, proto).close()
attempt("vsock", sock(socket.AF_VSOCK, socket.SOCK_STREAM))
attempt("netlink_route", sock(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("netlink_sock_diag", sock(socket.AF_NETLINK, socket.SOCK_RAW, 4))
attempt("packet", sock(socket.AF_PACKET, socket.SOCK_RAW))
attempt("alg", sock(socket.AF_ALG, socket.SOCK_SEQPACKET))
attempt("bluetooth", sock(31, socket.SOCK_STREAM))
def socketpair_inet():
    if libc.socketpair(2, 1, 0, (ctypes.c_int * 2)()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
attempt("socketpair_inet", socketpair_inet)
def io_uring():
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 8, params)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.close(fd)
attempt("io_uring", io_uring)
def connect(addr):
    def f():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        try:
            s.connect(addr)
        finally:
            s.close()
    return f
attempt("outside_abstract", connect("\0" + outside_abstract))
def datagram():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", "\0" + outside_abstract + "-dgram")
    finally:
        s.close()
attempt("outside_abstract_dgram", datagram)
attempt("outside_file_mode_0600", connect(outside_file))
attempt("outside_file_mode_0666", connect(open_file))
# What the agent may do: Unix pairs, its own abstract and file sockets.
def own():
    a, b = socket.socketpair()
    a.sendall(b"pair"); assert b.recv(4) == b"pair"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind("\0own-" + str(os.getpid())); srv.listen()
    c = socket.socket(socket.AF_UNIX); c.connect("\0own-" + str(os.getpid()))
    path = "/tmp/own-%d.sock" % os.getpid()
    srv2 = socket.socket(socket.AF_UNIX); srv2.bind(path); srv2.listen()
    c2 = socket.socket(socket.AF_UNIX); c2.connect(path)
    os.unlink(path)
attempt("own_unix", own)
attempt("getaddrinfo", lambda: socket.getaddrinfo("localhost", 80))
print(json.dumps(r))
"#;

fn non_ip_sockets_are_refused(lsm_guard_refused: bool) {
    let ns = NetNs::new();
    let run = Run::new();
    if lsm_guard_refused {
        // As if the kernel had refused the BPF-LSM guard this boot: the
        // seccomp filter alone decides.
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        std::fs::write(
            run.state_dir.join("lsm-guard.refused"),
            format!("{}\nrefused for the test\n", boot.trim()),
        )
        .unwrap();
    }
    // Root's listeners outside the agent: an abstract stream and datagram
    // socket, and a socket file only root may use.
    // (Abstract names belong to the network namespace of their creator.)
    let name = unique("ast-root-abstract");
    let (listener, _dgram) = {
        let name = name.clone();
        in_ns(&ns, move || {
            use std::os::{linux::net::SocketAddrExt, unix::net};
            let addr = |n: &str| net::SocketAddr::from_abstract_name(n.as_bytes()).unwrap();
            (
                net::UnixListener::bind_addr(&addr(&name)).unwrap(),
                net::UnixDatagram::bind_addr(&addr(&format!("{name}-dgram"))).unwrap(),
            )
        })
    };
    let file = std::env::temp_dir().join(format!("{}.sock", unique("ast-root")));
    let _file_listener = std::os::unix::net::UnixListener::bind(&file).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // And one any user may connect to, as some daemons make theirs.
    let open_file = std::env::temp_dir().join(format!("{}.sock", unique("ast-root-open")));
    let open_listener = std::os::unix::net::UnixListener::bind(&open_file).unwrap();
    std::fs::set_permissions(
        &open_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let out = run.output(
        &ns,
        &["--log-format", "json"],
        &[
            "python3",
            "-c",
            SOCKETS,
            &name,
            file.to_str().unwrap(),
            open_file.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    for attempt in [
        "vsock",
        "netlink_route",
        "netlink_sock_diag",
        "packet",
        "alg",
        "bluetooth",
        "io_uring",
        "outside_abstract",
        "outside_abstract_dgram",
    ] {
        assert_eq!(r[attempt], 1, "{attempt} (EPERM expected): {r}");
    }
    // socketpair() of an inet family: refused by the seccomp filter; where
    // the LSM guard decides instead, the kernel has no such pair.
    let pair = r["socketpair_inet"].clone();
    assert!(
        pair == 1 || (!lsm_guard_refused && pair == 95),
        "socketpair_inet: {r}"
    );
    assert_eq!(r["outside_file_mode_0600"], 13, "{r}");
    // ECONNREFUSED: the path is /dev/null in the agent's mount namespace.
    assert_eq!(r["outside_file_mode_0666"], 111, "{r}");
    open_listener.set_nonblocking(true).unwrap();
    assert!(
        open_listener.accept().is_err(),
        "nothing reached the open socket"
    );
    for attempt in ["own_unix", "getaddrinfo"] {
        assert_eq!(r[attempt], "ok", "{attempt}: {r}");
    }
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing reached root's socket");
    if lsm_guard_refused {
        // The seccomp filter's refusals are in the kernel's audit log.
        // Without auditd the kernel prints them rate-limited (10 per 5 s)
        // and drops the rest ("kauditd_printk_skb: N callbacks
        // suppressed"): when this run's records were dropped, a later run
        // with one refused socket, after the window, must be logged.
        let recorded = |uid: &u32| {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                let log = text(&Command::new("dmesg").output().unwrap().stdout);
                if log.lines().any(|l| {
                    l.contains("type=1326")
                        && l.contains(&format!(" uid={uid} "))
                        && l.contains(" syscall=41 ")
                }) {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let mut uids = vec![logged_uid(&stderr)];
        for _ in 0..3 {
            if recorded(uids.last().unwrap()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5500));
            let out = run.output(
                &ns,
                &["--log-format", "json"],
                &[
                    "python3",
                    "-c",
                    "import socket\ntry: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\nexcept OSError: pass",
                ],
            );
            uids.push(logged_uid(&text(&out.stderr)));
        }
        assert!(
            recorded(uids.last().unwrap()),
            "no seccomp audit record for uids {uids:?}"
        );
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&open_file);
}

#[test]
fn non_ip_sockets_and_outside_unix_sockets_are_refused() {
    if !privileged() {
        return;
    }
    non_ip_sockets_are_refused(false);
    non_ip_sockets_are_refused(true);
}

#[test]
fn a_fork_bomb_and_a_memory_hog_stop_at_the_limits_and_no_stray_fd_reaches_the_agent() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let run = Run::new();
    // Forks until the kernel says no; every child stays alive meanwhile.
    let bomb = "import os, time\n\
                n = 0\n\
                try:\n\
                \x20   while n < 10000:\n\
                \x20       if os.fork() == 0:\n\
                \x20           time.sleep(30)\n\
                \x20           os._exit(0)\n\
                \x20       n += 1\n\
                except OSError as e:\n\
                \x20   print(n, e.errno, flush=True)\n";
    let started = Instant::now();
    let out = run.output(
        &ns,
        &["--pids-max", "40", "--log-format", "json"],
        &["python3", "-c", bomb],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let (n, errno) = stdout
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("{stdout}{stderr}"));
    let n: u32 = n.parse().unwrap();
    assert!(n < 40, "forked {n} times under --pids-max 40");
    assert_eq!(errno, "11", "EAGAIN: {stdout}");
    assert!(stderr.contains(r#""pids_max":"40""#), "{stderr}");
    // The children were killed with the agent; the host still forks.
    assert!(started.elapsed() < Duration::from_secs(25));
    assert!(Command::new("true").status().unwrap().success());

    let hog = "b = bytearray(256 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')";
    let out = run.output(&ns, &["--memory-max", "64M"], &["python3", "-c", hog]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stdout.contains("survived"), "{stdout}{stderr}");
    assert!(
        out.status.code() == Some(137) || stderr.contains("MemoryError"),
        "OOM-killed: {:?} {stderr}",
        out.status
    );

    // An fd the operator's shell leaves open (no close-on-exec) on fd 9.
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    let leaked_fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    let mut cmd = run.command(&ns, &[], &["sleep", "30"]);
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(leaked_fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut sidecar = cmd.spawn().unwrap();
    let procs = cgroup2()
        .join("agent-sidecar")
        .join(&run.agent_id)
        .join("cgroup.procs");
    let mut pid = String::new();
    wait_for("the agent", || {
        pid = std::fs::read_to_string(&procs).unwrap_or_default();
        !pid.trim().is_empty()
    });
    let pid = pid.lines().next().unwrap().trim().to_string();
    // The agent is `sleep` once it has executed, and asleep once its own
    // start-up (which may open and close locale files) is over: its system
    // call is then nanosleep (35) or clock_nanosleep (230) on x86-64.
    wait_for("exec", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    wait_for("sleep to be asleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/syscall")).is_ok_and(|s| {
            let nr = s.split_whitespace().next().unwrap_or("");
            nr == "35" || nr == "230"
        })
    });
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "descriptors of the agent");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sidecar.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = sidecar.wait();
}

/// GET `url` from inside `ns` with curl: (status, body).
fn curl(ns: &NetNs, url: &str) -> (u16, String) {
    let out = command_in(
        ns,
        None,
        Path::new("curl"),
        &["-s", "-w", "\n%{http_code}", url],
    )
    .output()
    .unwrap();
    let text = text(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn metrics_parse_as_prometheus_text_and_readyz_tells_when_the_sidecar_enforces() {
    let python = agent_sidecar_test_support::mcp::test_python();
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let run = Run::new();
    let mut sidecar = KillOnDrop(
        run.command(
            &ns,
            &[
                "--metrics-listen",
                "127.0.0.1:19466",
                "--allow",
                "api.example:443",
                "--static-host",
                "api.example=10.77.0.9",
                "--allow",
                "10.77.1.0/24:8080",
            ],
            &[
                "sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.05; done",
            ],
        )
        .spawn()
        .unwrap(),
    );
    // Ready once the programs are attached, the resolver listens and the
    // policy is loaded; until then 503 (or no answer yet).
    let mut ready = String::new();
    wait_for("/readyz 200", || {
        let (code, body) = curl(&ns, "http://127.0.0.1:19466/readyz");
        assert!(matches!(code, 0 | 200 | 503), "{code} {body}");
        ready = body;
        code == 200
    });
    for check in ["programs_attached", "resolver_listening", "policies_loaded"] {
        assert!(ready.contains(&format!("{check} ok")), "{ready}");
    }
    assert_eq!(curl(&ns, "http://127.0.0.1:19466/healthz").0, 200);
    let (code, metrics) = curl(&ns, "http://127.0.0.1:19466/metrics");
    assert_eq!(code, 200);
    let file = run.state_dir.join("metrics.txt");
    std::fs::write(&file, &metrics).unwrap();
    let out = Command::new(python)
        .arg(agent_sidecar_test_support::mcp::python_script(
            "metrics_check.py",
        ))
        .arg(&file)
        .arg(&run.agent_id)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{metrics}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["violations"],
        serde_json::json!([]),
        "{report:#}\n{metrics}"
    );
    let fams = &report["families"];
    for (name, kind) in [
        ("agent_sidecar_build_info", "gauge"),
        ("agent_sidecar_process_cpu_seconds", "counter"),
        ("agent_sidecar_process_resident_memory_bytes", "gauge"),
        ("agent_sidecar_ready", "gauge"),
        ("agent_sidecar_quarantined", "gauge"),
        ("agent_sidecar_kernel_map_entries", "gauge"),
        ("agent_sidecar_kernel_map_capacity", "gauge"),
        ("agent_sidecar_kernel_decisions", "counter"),
        ("agent_sidecar_allowlist_entries", "gauge"),
        (
            "agent_sidecar_policy_last_reload_timestamp_seconds",
            "gauge",
        ),
        ("agent_sidecar_audit_failing", "gauge"),
    ] {
        assert_eq!(fams[name]["type"], kind, "{name}: {report:#}");
    }
    let value = |name: &str, labels: &str| {
        let sep = if labels.is_empty() { "" } else { "," };
        let key = format!("{name}{{agent_id={}{sep}{labels}}}", run.agent_id);
        report["values"][&key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} not in {report:#}"))
    };
    assert_eq!(value("agent_sidecar_quarantined", ""), 0.0);
    assert_eq!(
        value("agent_sidecar_kernel_map_capacity", "map=ALLOW4_PORT"),
        131_072.0
    );
    assert_eq!(
        value("agent_sidecar_kernel_map_capacity", "map=EXACT"),
        131_136.0
    );
    // The CIDR:PORT rule is in the trie; the sidecar's own listeners are
    // in the exact map.
    assert!(value("agent_sidecar_kernel_map_entries", "map=ALLOW4_PORT") >= 1.0);
    assert!(value("agent_sidecar_kernel_map_entries", "map=EXACT") >= 1.0);
    assert_eq!(
        value(
            "agent_sidecar_build_info",
            &format!("version={}", env!("CARGO_PKG_VERSION"))
        ),
        1.0
    );
    assert!(value("agent_sidecar_process_resident_memory_bytes", "") > 1e6);
    // A scraper's keep-alive connection stays open while the run ends: the
    // teardown still removes the enforcement.
    let mut keep_alive = KillOnDrop(
        command_in(
            &ns,
            None,
            Path::new("python3"),
            &[
                "-c",
                "import socket, sys, time\n\
                 s = socket.create_connection(('127.0.0.1', 19466))\n\
                 s.sendall(b'GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
                 s.recv(1)\n\
                 print('connected', flush=True)\n\
                 time.sleep(60)",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(keep_alive.0.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "connected");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sidecar.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = sidecar.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    drop(keep_alive);
    let mut log = String::new();
    use std::io::Read as _;
    sidecar
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(!log.contains("leaving it pinned"), "{log}");
    assert!(!run.pin_dir().exists(), "the enforcement stays pinned");
}

/// A child killed (and reaped) when dropped, so that a failing test leaves
/// no sidecar behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
