//! `agent-sidecar run` end to end: the real binary, real clients (curl,
//! Python's http.server), signals, SIGKILL of the sidecar, stale state.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar_tests::{
    NetNs, TcpServer, command_in, privileged, probe_bin, sidecar_bin, unique,
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
    assert!(stdout.starts_with("65534\n65534\n"), "{stdout}");
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
    assert_eq!(deny["uid"], 65534);
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
