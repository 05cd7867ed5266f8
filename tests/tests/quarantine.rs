//! A quarantine cuts the agent's open connections on the real kernel:
//! established TCP (IPv4 and IPv6) and connected UDP sockets are destroyed,
//! the peers see a reset, and nothing the agent wrote after the quarantine
//! reaches them, neither while enforcement is attached nor after the agent
//! exits and enforcement is removed.

use std::{
    process::Child,
    time::{Duration, Instant},
};

use agent_sidecar_tests::{
    Agent, NetNs, TcpServer, UdpServer, command_in, privileged, probe_bin, unique, write_file,
};

/// Starts `egress-probe ARGS` inside the agent's cgroup.
fn spawn_probe(agent: &Agent, ns: &NetNs, args: &[&str]) -> Child {
    let procs = agent.procs();
    command_in(ns, Some(&procs), &probe_bin(), args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn probe")
}

/// Waits until the agent's cgroup holds `n` sockets.
fn wait_for_sockets(agent: &mut Agent, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let socks = agent.enforcer.as_mut().unwrap().sockets().expect("list");
        if socks.len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent opened {} of {n} sockets: {socks:?}",
            socks.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn quarantine_resets_open_connections_and_nothing_written_after_it_leaves() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let idle = Duration::from_secs(6);
    let tcp4 = TcpServer::with_idle_timeout(&ns, "10.77.0.1:8080", idle);
    let tcp6 = TcpServer::with_idle_timeout(&ns, "[fd77::1]:8080", idle);
    let udp = UdpServer::start(&ns, "10.77.0.1:5300");
    let mut agent = Agent::start(&["10.77.0.1:8080", "[fd77::1]:8080", "10.77.0.1:5300"]);
    let go = std::env::temp_dir().join(unique("go"));
    let go_path = go.to_str().unwrap();
    let probes = [
        spawn_probe(
            &agent,
            &ns,
            &["tcp-hold", "10.77.0.1:8080", go_path, "leak-v4"],
        ),
        spawn_probe(
            &agent,
            &ns,
            &["tcp-hold", "[fd77::1]:8080", go_path, "leak-v6"],
        ),
        spawn_probe(
            &agent,
            &ns,
            &["udp-hold", "10.77.0.1:5300", go_path, "leak-udp"],
        ),
    ];
    wait_for_sockets(&mut agent, 3);

    agent
        .enforcer
        .as_mut()
        .unwrap()
        .set_quarantine(true)
        .expect("quarantine");
    let left = agent.enforcer.as_mut().unwrap().sockets().expect("list");
    assert!(left.is_empty(), "quarantine left sockets open: {left:?}");

    // The agent writes into its connections after the halt.
    write_file(&go, "");
    for probe in probes {
        let out = probe.wait_with_output().expect("probe");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_ne!(
            out.status.code(),
            Some(0),
            "a write after the quarantine must fail: {stdout}"
        );
    }
    for server in [&tcp4, &tcp6] {
        let ended = server.wait_ended(1, Duration::from_secs(3));
        assert_eq!(ended.len(), 1, "{}: the connection was reset", server.addr);
        assert_eq!(
            ended[0],
            (Vec::new(), "reset"),
            "{}: the peer sees a reset and no byte",
            server.addr
        );
    }
    assert!(!udp.got("leak-udp"), "no datagram after the quarantine");

    // The agent is gone and enforcement is removed: still nothing arrives.
    drop(agent);
    std::thread::sleep(Duration::from_secs(2));
    for server in [&tcp4, &tcp6] {
        let got = server.accepted.lock().unwrap().clone();
        assert_eq!(got, vec![Vec::<u8>::new()], "{}", server.addr);
    }
    assert!(!udp.got("leak-udp"));
    let _ = std::fs::remove_file(go);
}

#[test]
fn data_the_hooks_held_back_never_leaves_after_the_teardown() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let server = TcpServer::with_idle_timeout(&ns, "10.77.0.1:8080", Duration::from_secs(5));
    let mut agent = Agent::start(&["10.77.0.1:8080"]);
    let go = std::env::temp_dir().join(unique("go"));
    let probe = spawn_probe(
        &agent,
        &ns,
        &[
            "tcp-hold",
            "10.77.0.1:8080",
            go.to_str().unwrap(),
            "held-back",
        ],
    );
    wait_for_sockets(&mut agent, 1);
    // The rule goes; the agent writes (the kernel queues the bytes, the
    // egress hook drops every transmission) and exits.
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .update_allowlist(&agent_sidecar_tests::allowlist(&[]))
        .unwrap();
    write_file(&go, "");
    let out = probe.wait_with_output().expect("probe");
    assert_eq!(out.status.code(), Some(0), "the write was queued");
    std::thread::sleep(Duration::from_millis(300));
    let orphans = agent.enforcer.as_mut().unwrap().sockets().expect("list");
    assert!(
        orphans.iter().any(|s| s.unsent > 0),
        "the exited agent's socket still holds the bytes: {orphans:?}"
    );

    // Enforcement is removed: the queued bytes must not be retransmitted.
    drop(agent);
    let ended = server.wait_ended(1, Duration::from_secs(8));
    assert_eq!(ended.len(), 1);
    assert!(
        ended[0].0.is_empty(),
        "bytes held back by the hooks left after the teardown: {:?}",
        String::from_utf8_lossy(&ended[0].0)
    );
    let _ = std::fs::remove_file(go);
}
