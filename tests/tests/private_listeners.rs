//! The sidecar's own listeners (admin API, metrics) are unreachable from the
//! agent whatever a rule says: the kernel refuses their ports before any
//! allowlist map (every address spelling, learned addresses, reloads), and
//! `run` refuses a policy whose rules would reach them.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use agent_sidecar_common::PROTO_TCP;
use agent_sidecar_tests::{
    Agent, NetNs, TcpServer, command_in, privileged, probe_bin, sidecar_bin, unique,
};

#[test]
fn private_listener_ports_are_refused_whatever_the_allowlist_says() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    // Dual-stack on every address: reachable through any local spelling.
    let private = TcpServer::start(&ns, "[::]:19501");
    let other = TcpServer::start(&ns, "127.0.0.1:19502");
    let mut agent =
        Agent::start_with_private(&["0.0.0.0/0", "::/0"], &["[::]:19501".parse().unwrap()]);
    let spellings: [&[&str]; 10] = [
        &["tcp", "127.0.0.1:19501"],
        &["tcp", "127.0.0.2:19501"],
        &["tcp", "127.255.1.9:19501"],
        &["tcp", "0.0.0.0:19501"],
        &["tcp", "10.77.0.1:19501"],
        &["tcp", "[::1]:19501"],
        &["tcp", "[::]:19501"],
        &["tcp", "[fd77::1]:19501"],
        &["tcp", "[::ffff:127.0.0.1]:19501"],
        &["tcp-mapped", "10.77.0.2:19501"],
    ];
    let refused_all = |agent: &Agent, when: &str| {
        for args in spellings {
            let r = agent.probe(&ns, args);
            assert!(r.denied(), "{when}: {args:?} must be refused: {r:?}");
        }
    };
    refused_all(&agent, "allow-all rules");
    let e = agent.expect_event("private listener", |e| {
        e.destination.is_some_and(|d| d.port() == 19501)
    });
    assert_eq!(e.reason, "private_listener");

    // A destination learned from a DNS answer, then a reload that names
    // the listener outright: still refused.
    let enforcer = agent.enforcer.as_mut().unwrap();
    for ip in ["127.0.0.1", "::1", "10.77.0.1"] {
        enforcer
            .learn(
                ip.parse().unwrap(),
                None,
                PROTO_TCP,
                0,
                Duration::from_secs(60),
            )
            .unwrap();
    }
    refused_all(&agent, "learned addresses");
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .update_allowlist(&agent_sidecar_tests::allowlist(&[
            "127.0.0.1:19501",
            "[::1]:19501",
            "127.0.0.0/8",
        ]))
        .unwrap();
    refused_all(&agent, "reloaded allowlist");
    assert_eq!(private.count(), 0, "the agent never reached the listener");

    // Other ports stay governed by the allowlist; the listener is up.
    assert!(agent.probe(&ns, &["tcp", "127.0.0.1:19502"]).ok());
    assert_eq!(other.count(), 1);
    assert!(Agent::control(&ns, &["tcp", "127.0.0.1:19501"]).ok());
}

/// A running `agent-sidecar run`, stopped with SIGTERM (it then tears its
/// enforcement down) however the test ends.
struct Sidecar(Option<std::process::Child>);

impl Sidecar {
    fn stop(mut self) -> Output {
        let child = self.0.take().expect("running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        child.wait_with_output().expect("sidecar exits")
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            let _ = Sidecar(Some(child)).stop();
        }
    }
}

/// `agent-sidecar run` inside `ns` with a private state dir.
fn run(ns: &NetNs, extra: &[&str], argv: &[&str]) -> Output {
    let state_dir = std::env::temp_dir().join(unique("ast-private"));
    std::fs::create_dir_all(&state_dir).unwrap();
    let agent_id = unique("priv");
    let mut args: Vec<&str> = vec![
        "run",
        "--agent-id",
        &agent_id,
        "--state-dir",
        state_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(argv);
    let out = command_in(ns, None, &sidecar_bin(), &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run agent-sidecar");
    let _ = Command::new(sidecar_bin())
        .args(["teardown", "--agent-id", &agent_id, "--state-dir"])
        .arg(&state_dir)
        .output();
    let _ = std::fs::remove_dir_all(&state_dir);
    out
}

#[test]
fn run_refuses_every_rule_that_would_reach_the_metrics_listener() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let metrics = "--metrics-listen";
    let cases: [(&str, &[&str]); 12] = [
        ("127.0.0.1:19503", &["--allow", "127.0.0.1:19510"]),
        ("127.0.0.1:19503", &["--allow", "127.0.0.1:19503"]),
        ("127.0.0.1:19503", &["--allow", "127.0.0.0/8"]),
        ("127.0.0.1:19503", &["--allow", "127.0.0.9"]),
        ("127.0.0.1:19503", &["--allow", "[::ffff:127.0.0.1]:19503"]),
        ("127.0.0.1:19503", &["--allow", "0.0.0.0/0"]),
        ("0.0.0.0:19503", &["--allow", "10.77.0.1"]),
        ("0.0.0.0:19503", &["--allow", "::/0"]),
        ("[::1]:19503", &["--allow", "[::1]:19503"]),
        (
            "127.0.0.1:19503",
            &[
                "--static-host",
                "x.demo.test=127.0.0.1",
                "--allow",
                "x.demo.test:19503",
            ],
        ),
        (
            "127.0.0.1:19503",
            &[
                "--static-host",
                "x.demo.test=127.0.0.1",
                "--allow",
                "x.demo.test",
            ],
        ),
        (
            "127.0.0.1:19503",
            &[
                "--static-host",
                "x.demo.test=::ffff:127.0.0.1",
                "--allow",
                "*.demo.test",
            ],
        ),
    ];
    let probe = probe_bin();
    for (listen, rule) in cases {
        // The first case's rule is harmless: it checks the agent runs.
        let mut extra = vec![metrics, listen];
        extra.extend_from_slice(rule);
        let port = listen.rsplit(':').next().unwrap();
        let target = format!("127.0.0.1:{port}");
        let out = run(&ns, &extra, &[probe.to_str().unwrap(), "tcp", &target]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if rule[1] == "127.0.0.1:19510" {
            assert_eq!(
                out.status.code(),
                Some(1),
                "refused in the kernel: {stdout}{stderr}"
            );
            continue;
        }
        assert_eq!(
            out.status.code(),
            Some(125),
            "{listen} {rule:?}: {stdout}{stderr}"
        );
        assert!(
            stderr.contains("the sidecar's metrics") && stderr.contains("--metrics-listen"),
            "{listen} {rule:?}: {stderr}"
        );
        assert!(stdout.is_empty(), "the agent never started: {stdout}");
    }
}

#[test]
fn an_agent_under_run_reaches_the_metrics_listener_through_no_spelling() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let p = probe_bin();
    let p = p.to_str().unwrap();
    let spellings = [
        "127.0.0.1:19504",
        "127.0.0.2:19504",
        "0.0.0.0:19504",
        "10.77.0.1:19504",
        "[::1]:19504",
        "[::ffff:127.0.0.1]:19504",
        "[::]:19504",
    ];
    let script: Vec<String> = spellings.iter().map(|s| format!("{p} tcp {s}")).collect();
    let script = format!("{}; sleep 0.3", script.join("; "));
    let state_dir = std::env::temp_dir().join(unique("ast-private"));
    std::fs::create_dir_all(&state_dir).unwrap();
    let agent_id = unique("priv");
    let sidecar = Sidecar(Some(
        command_in(
            &ns,
            None,
            &sidecar_bin(),
            &[
                "run",
                "--agent-id",
                &agent_id,
                "--state-dir",
                state_dir.to_str().unwrap(),
                "--metrics-listen",
                "[::]:19504",
                "--allow",
                "10.77.0.2:8080",
                "--",
                "sh",
                "-c",
                &format!("{script}; while :; do sleep 0.05; done"),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    // The operator reads the metrics: every attempt was refused as a
    // private listener, none reached it.
    let want = format!(
        "agent_sidecar_egress_denied_total{{agent_id=\"{agent_id}\",hook=\"connect{{}}\",protocol=\"tcp\",reason=\"private_listener\"}}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = command_in(
            &ns,
            None,
            Path::new("curl"),
            &["-s", "http://127.0.0.1:19504/metrics"],
        )
        .output()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let count = |hook: &str| -> u64 {
            let key = want.replace("connect{}", hook);
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        if count("connect4") + count("connect6") == spellings.len() as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {} private_listener refusals: {text}",
            spellings.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = sidecar.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("\"errno\":1,").count(),
        spellings.len(),
        "every spelling refused with EPERM: {stdout}"
    );
    let _ = Command::new(sidecar_bin())
        .args(["teardown", "--agent-id", &agent_id, "--state-dir"])
        .arg(&state_dir)
        .output();
    let _ = std::fs::remove_dir_all(&state_dir);
}
