//! The allow/deny matrix on the real kernel: each test has its own network
//! namespace and agent cgroup with the real programs attached; a probe
//! inside the cgroup is the agent, the same probe outside is the control.

use agent_sidecar_test_support::dns::{Authority, Zone};
use agent_sidecar_tests::{Agent, NetNs, TcpServer, UdpServer, privileged, write_file};

#[test]
fn tcp_reaches_exactly_the_allowlist_v4_v6_and_mapped() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let ok4 = TcpServer::start(&ns, "10.77.0.1:8080");
    let ok6 = TcpServer::start(&ns, "[fd77::1]:8080");
    let deny4 = TcpServer::start(&ns, "10.77.0.2:8080");
    let deny6 = TcpServer::start(&ns, "[fd77::2]:8080");
    let lo1 = TcpServer::start(&ns, "127.0.0.1:9000");
    let lo2 = TcpServer::start(&ns, "127.0.0.2:8080");
    let lo6 = TcpServer::start(&ns, "[::1]:9000");
    let mut agent = Agent::start(&["10.77.0.1:8080", "[fd77::1]:8080 tcp"]);

    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).ok());
    assert!(agent.probe(&ns, &["tcp", "[fd77::1]:8080"]).ok());
    assert!(
        agent.probe(&ns, &["tcp-mapped", "10.77.0.1:8080"]).ok(),
        "v4-mapped uses the IPv4 rule"
    );
    assert_eq!(ok4.count(), 2);
    assert_eq!(ok6.count(), 1);

    let cases: [(&[&str], &str, &str); 6] = [
        (&["tcp", "10.77.0.2:8080"], "connect4", "10.77.0.2:8080"),
        (&["tcp", "[fd77::2]:8080"], "connect6", "[fd77::2]:8080"),
        (
            &["tcp-mapped", "10.77.0.2:8080"],
            "connect6",
            "10.77.0.2:8080",
        ),
        (&["tcp", "127.0.0.1:9000"], "connect4", "127.0.0.1:9000"),
        (&["tcp", "127.0.0.2:8080"], "connect4", "127.0.0.2:8080"),
        (&["tcp", "[::1]:9000"], "connect6", "[::1]:9000"),
    ];
    for (args, hook, dst) in cases {
        let r = agent.probe(&ns, args);
        assert!(r.denied(), "{args:?} must be refused with EPERM: {r:?}");
        let e = agent.expect_event(dst, |e| {
            e.hook == hook && e.destination.map(|d| d.to_string()).as_deref() == Some(dst)
        });
        assert_eq!(
            (e.reason, e.protocol.as_str(), e.comm.as_str()),
            ("not_allowlisted", "tcp", "egress-probe")
        );
        assert!(e.pid > 0);
        assert_eq!(e.cgroup_id, agent.enforcer().cgroup().id().unwrap());
    }
    for s in [&deny4, &deny6, &lo1, &lo2, &lo6] {
        assert_eq!(s.count(), 0, "nothing reached {}", s.addr);
    }
    // The control process outside the cgroup reaches everything.
    for (args, server) in [
        (["tcp", "10.77.0.2:8080"], &deny4),
        (["tcp", "[fd77::2]:8080"], &deny6),
        (["tcp", "127.0.0.1:9000"], &lo1),
        (["tcp", "127.0.0.2:8080"], &lo2),
        (["tcp", "[::1]:9000"], &lo6),
    ] {
        assert!(Agent::control(&ns, &args).ok(), "control {args:?}");
        assert_eq!(server.count(), 1, "control reached {}", server.addr);
    }
}

#[test]
fn cidr_rules_match_by_prefix_port_and_protocol() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let a = TcpServer::start(&ns, "10.77.0.2:8080");
    let b = TcpServer::start(&ns, "10.77.0.2:9090");
    let c = TcpServer::start(&ns, "[fd77::2]:443");
    let d = TcpServer::start(&ns, "[fd77::2]:444");
    let udp_only = TcpServer::start(&ns, "10.77.0.1:5353");
    let mut agent = Agent::start(&["10.77.0.0/24:8080", "fd77::/64:443", "10.77.0.1:5353 udp"]);
    assert!(agent.probe(&ns, &["tcp", "10.77.0.2:8080"]).ok());
    assert!(agent.probe(&ns, &["tcp", "10.77.0.2:9090"]).denied());
    assert!(agent.probe(&ns, &["tcp", "[fd77::2]:443"]).ok());
    assert!(agent.probe(&ns, &["tcp", "[fd77::2]:444"]).denied());
    assert!(
        agent.probe(&ns, &["tcp", "10.77.0.1:5353"]).denied(),
        "a UDP-only rule does not allow TCP"
    );
    assert_eq!(
        (a.count(), b.count(), c.count(), d.count(), udp_only.count()),
        (1, 0, 1, 0, 0)
    );
    agent.expect_event("port mismatch", |e| {
        e.destination.is_some_and(|d| d.port() == 9090)
    });

    // Any-port CIDR, applied live.
    let mut list = agent_sidecar_tests::allowlist(&["10.77.0.0/30"]);
    list.extend(agent_sidecar_tests::allowlist(&["fd77::/64:443"]));
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .update_allowlist(&list)
        .unwrap();
    assert!(
        agent.probe(&ns, &["tcp", "10.77.0.2:9090"]).ok(),
        "rule added live"
    );
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:5353"]).ok());
}

#[test]
fn udp_unconnected_and_connected_are_refused_and_never_arrive() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let allowed = UdpServer::start(&ns, "10.77.0.1:5353");
    let v4 = UdpServer::start(&ns, "10.77.0.2:5353");
    let v6 = UdpServer::start(&ns, "[fd77::2]:5353");
    let mut agent = Agent::start(&["10.77.0.1:5353 udp"]);

    assert!(
        agent
            .probe(&ns, &["udp-send", "10.77.0.1:5353", "allowed-send"])
            .ok()
    );
    assert!(
        agent
            .probe(&ns, &["udp-connect", "10.77.0.1:5353", "allowed-conn"])
            .ok()
    );
    assert!(allowed.got("allowed-send") && allowed.got("allowed-conn"));

    for (mode, addr, hook, server) in [
        ("udp-send", "10.77.0.2:5353", "sendmsg4", &v4),
        ("udp-connect", "10.77.0.2:5353", "connect4", &v4),
        ("udp-send", "[fd77::2]:5353", "sendmsg6", &v6),
        ("udp-connect", "[fd77::2]:5353", "connect6", &v6),
    ] {
        let payload = format!("agent-{mode}-{addr}");
        let r = agent.probe(&ns, &[mode, addr, &payload]);
        assert!(r.denied(), "{mode} {addr}: {r:?}");
        assert!(!server.got(&payload), "{mode} {addr}: the datagram arrived");
        agent.expect_event(addr, |e| e.hook == hook && e.protocol == "udp");
        let control = format!("control-{mode}-{addr}");
        assert!(Agent::control(&ns, &[mode, addr, &control]).ok());
        assert!(server.got(&control), "control {mode} {addr} arrived");
    }
}

#[test]
fn tcp_fast_open_is_refused() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    ns.sysctl("net.ipv4.tcp_fastopen", "3");
    let server = TcpServer::start(&ns, "10.77.0.2:8080");
    let mut agent = Agent::start(&["10.77.0.1:8080"]);
    let r = agent.probe(&ns, &["tfo", "10.77.0.2:8080"]);
    assert!(r.denied(), "{r:?}");
    assert_eq!(server.count(), 0);
    agent.expect_event("tfo", |e| {
        e.hook == "connect4" && e.destination.is_some_and(|d| d.port() == 8080)
    });
    assert!(Agent::control(&ns, &["tfo", "10.77.0.2:8080"]).ok());
    assert_eq!(server.count(), 1);
}

#[test]
fn raw_and_icmp_sockets_are_refused_even_for_root() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    // Let everybody open ICMP "ping" sockets, so only the hook can refuse them.
    ns.sysctl("net.ipv4.ping_group_range", "0 2147483647");
    let mut agent = Agent::start(&[]);
    let mut kinds = vec!["raw4", "raw6", "icmp"];
    if agent.enforcer().lsm_guard() {
        // cgroup/sock_create does not run for AF_PACKET or other families;
        // the BPF-LSM guard does. Without it, agents under `run` still
        // cannot open them (their seccomp filter; no CAP_NET_RAW): see
        // run_cli.rs.
        kinds.extend(["packet", "netlink"]);
        if Agent::control(&ns, &["socket", "vsock"]).ok() {
            kinds.push("vsock");
        }
    }
    for kind in kinds.iter().copied() {
        let r = agent.probe(&ns, &["socket", kind]);
        assert!(r.denied(), "socket {kind} inside the cgroup: {r:?}");
        let control = Agent::control(&ns, &["socket", kind]);
        assert!(control.ok(), "control socket {kind}: {control:?}");
    }
    agent.expect_event("raw", |e| {
        e.hook == "sock_create" && e.sock_type == 3 && e.family == 2
    });
    if kinds.contains(&"packet") {
        agent.expect_event("packet", |e| {
            e.hook == "lsm_socket_create" && e.family == 17
        });
        agent.expect_event("netlink", |e| {
            e.hook == "lsm_socket_create" && e.family == 16
        });
    }
    assert!(
        agent.probe(&ns, &["socket", "unix"]).ok(),
        "Unix sockets stay available"
    );
}

#[test]
fn children_and_grandchildren_are_governed() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let allowed = TcpServer::start(&ns, "10.77.0.1:8080");
    let denied = TcpServer::start(&ns, "10.77.0.2:8080");
    let mut agent = Agent::start(&["10.77.0.1:8080"]);
    for depth in ["0", "1", "2"] {
        assert!(
            agent
                .probe(&ns, &["chain", depth, "tcp", "10.77.0.2:8080"])
                .denied(),
            "depth {depth}"
        );
        assert!(
            agent
                .probe(&ns, &["chain", depth, "tcp", "10.77.0.1:8080"])
                .ok(),
            "depth {depth}"
        );
    }
    assert_eq!((allowed.count(), denied.count()), (3, 0));
    agent.expect_event("descendant", |e| {
        e.destination
            .is_some_and(|d| d.to_string() == "10.77.0.2:8080")
    });
}

#[test]
fn egress_hook_drops_established_traffic_once_its_rule_is_gone() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let server = TcpServer::start(&ns, "10.77.0.1:8080");
    let mut agent = Agent::start(&["10.77.0.1:8080"]);
    let go = std::env::temp_dir().join(agent_sidecar_tests::unique("go"));
    let procs = agent.procs();
    let mut child = agent_sidecar_tests::command_in(
        &ns,
        Some(&procs),
        &agent_sidecar_tests::probe_bin(),
        &[
            "tcp-hold",
            "10.77.0.1:8080",
            go.to_str().unwrap(),
            "after-revocation",
        ],
    )
    .spawn()
    .unwrap();
    // Connected under the old allowlist; now revoke the rule and send.
    std::thread::sleep(std::time::Duration::from_millis(200));
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .update_allowlist(&agent_sidecar_tests::allowlist(&[]))
        .unwrap();
    write_file(&go, "");
    let _ = child.wait();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let got = server.accepted.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        1,
        "the connection was accepted before revocation"
    );
    assert!(
        got[0].is_empty(),
        "no byte crossed after revocation: {:?}",
        String::from_utf8_lossy(&got[0])
    );
    agent.expect_event("skb drop", |e| {
        e.hook == "egress" && e.destination.is_some_and(|d| d.port() == 8080)
    });
    assert!(agent.enforcer().counters().skb_dropped > 0);
    let _ = std::fs::remove_file(go);
}

#[test]
fn quarantine_denies_everything_until_released() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let _server = TcpServer::start(&ns, "10.77.0.1:8080");
    let mut agent = Agent::start(&["10.77.0.1:8080"]);
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .set_quarantine(true)
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).denied());
    agent.expect_event("quarantine", |e| e.reason == "quarantined");
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .set_quarantine(false)
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).ok());
}

#[test]
fn sidecar_endpoints_and_single_address_rules_survive_allowlist_updates() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let sidecar = TcpServer::start(&ns, "10.77.0.1:9000");
    let any_port = TcpServer::start(&ns, "10.77.0.2:7001");
    let mut agent = Agent::start(&[]);
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:9000"]).denied());

    let enforcer = agent.enforcer.as_mut().unwrap();
    enforcer
        .allow_sidecar_endpoint("10.77.0.1:9000".parse().unwrap(), 6)
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:9000"]).ok());
    assert!(
        agent
            .probe(&ns, &["udp-connect", "10.77.0.1:9000", "x"])
            .denied(),
        "the endpoint is TCP only"
    );

    // A bare address allows every port of it; the sidecar endpoint stays.
    let enforcer = agent.enforcer.as_mut().unwrap();
    enforcer
        .update_allowlist(&agent_sidecar_tests::allowlist(&["10.77.0.2"]))
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "10.77.0.2:7001"]).ok());
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:9000"]).ok());

    // Removing every rule leaves the sidecar endpoint in place.
    let enforcer = agent.enforcer.as_mut().unwrap();
    enforcer
        .update_allowlist(&agent_sidecar_tests::allowlist(&[]))
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "10.77.0.2:7001"]).denied());
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:9000"]).ok());
    assert_eq!((sidecar.count(), any_port.count()), (3, 1));

    // Quarantine refuses the sidecar too.
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .set_quarantine(true)
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:9000"]).denied());
}

#[test]
fn revoking_a_cidr_rule_invalidates_the_cached_trie_verdicts() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let server = TcpServer::start(&ns, "10.77.0.1:8080");
    let mut agent = Agent::start(&["10.77.0.0/24:8080"]);
    // Twice: the second connect is decided by the trie cache.
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).ok());
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).ok());
    // Adding a rule keeps the cache valid.
    let enforcer = agent.enforcer.as_mut().unwrap();
    enforcer
        .update_allowlist(&agent_sidecar_tests::allowlist(&[
            "10.77.0.0/24:8080",
            "10.99.0.0/16",
        ]))
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).ok());
    // Removing the covering rule must refuse the cached destination.
    let enforcer = agent.enforcer.as_mut().unwrap();
    enforcer
        .update_allowlist(&agent_sidecar_tests::allowlist(&["10.99.0.0/16"]))
        .unwrap();
    let r = agent.probe(&ns, &["tcp", "10.77.0.1:8080"]);
    assert!(
        r.denied(),
        "a revoked CIDR must not be served from the cache: {r:?}"
    );
    assert_eq!(server.count(), 3);
}

#[test]
fn intercepted_dns_and_https_reach_the_sidecar_whatever_address_the_agent_chose() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    // The "sidecar": a DNS responder and an HTTPS listener on loopback.
    let dns = Authority::start_in(
        &ns,
        "127.0.0.1:5353",
        Zone::from_addrs(&[("api.example.test", "192.0.2.10")], 60),
    );
    let https = TcpServer::start(&ns, "127.0.0.1:8443");
    let https6 = TcpServer::start(&ns, "[::1]:8443");
    // Nothing is allowlisted: only interception makes these work.
    let mut agent = Agent::start(&[]);
    let enforcer = agent.enforcer.as_mut().unwrap();
    let v6_dns = "[::1]:5353".parse().unwrap();
    enforcer
        .intercept(17, 53, "127.0.0.1:5353".parse().unwrap(), v6_dns)
        .unwrap();
    enforcer
        .intercept(
            6,
            443,
            "127.0.0.1:8443".parse().unwrap(),
            "[::1]:8443".parse().unwrap(),
        )
        .unwrap();

    // Real dig, asking a resolver the agent chose itself: the answer comes
    // back from the sidecar but seems to come from 10.77.0.2:53, as dig
    // requires.
    let procs = agent.procs();
    let out = agent_sidecar_tests::command_in(
        &ns,
        Some(&procs),
        std::path::Path::new("dig"),
        &["@10.77.0.2", "+tries=1", "+time=2", "api.example.test", "A"],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dig failed: {text}");
    assert!(text.contains("192.0.2.10"), "answer missing: {text}");
    assert!(
        text.contains("SERVER: 10.77.0.2#53"),
        "the reply must seem to come from the chosen resolver: {text}"
    );
    assert!(
        !text.contains("unexpected source"),
        "dig saw the sidecar's address: {text}"
    );
    assert!(
        dns.was_asked("api.example.test"),
        "the query reached the sidecar"
    );

    // TCP to port 443 of any address (IPv4, IPv6, v4-mapped) lands on the
    // sidecar listener of that family; port 8443 elsewhere is not intercepted.
    assert!(agent.probe(&ns, &["tcp", "203.0.113.9:443"]).ok());
    assert!(agent.probe(&ns, &["tcp-mapped", "203.0.113.9:443"]).ok());
    assert!(agent.probe(&ns, &["tcp", "[2001:db8::9]:443"]).ok());
    assert_eq!((https.count(), https6.count()), (2, 1));
    assert!(agent.probe(&ns, &["tcp", "203.0.113.9:8443"]).denied());

    // Quarantine stops intercepted traffic too.
    agent
        .enforcer
        .as_mut()
        .unwrap()
        .set_quarantine(true)
        .unwrap();
    assert!(agent.probe(&ns, &["tcp", "203.0.113.9:443"]).denied());
}

#[test]
fn learned_destinations_expire_for_new_connections_but_not_for_established_ones() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let server =
        TcpServer::with_idle_timeout(&ns, "10.77.0.1:8080", std::time::Duration::from_secs(5));
    let mut agent = Agent::start(&[]);
    let enforcer = agent.enforcer.as_mut().unwrap();
    let ttl = std::time::Duration::from_millis(800);
    let ip = "10.77.0.1".parse().unwrap();
    assert!(enforcer.learn(ip, Some(8080), 6, 7, ttl).unwrap());
    assert!(agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).ok());

    // A connection established before the expiry...
    let go = std::env::temp_dir().join(agent_sidecar_tests::unique("go"));
    let procs = agent.procs();
    let mut held = agent_sidecar_tests::command_in(
        &ns,
        Some(&procs),
        &agent_sidecar_tests::probe_bin(),
        &[
            "tcp-hold",
            "10.77.0.1:8080",
            go.to_str().unwrap(),
            "after-expiry",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // ...while new ones are refused once the lifetime has passed.
    let r = agent.probe(&ns, &["tcp", "10.77.0.1:8080"]);
    assert!(r.denied(), "expired for new connections: {r:?}");
    agent.expect_event("expired", |e| e.reason == "expired" && e.hook == "connect4");
    write_file(&go, "");
    assert!(held.wait().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = server.accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "both connections closed: {got:?}");
    assert!(
        got.iter().any(|c| c == b"after-expiry"),
        "the established connection kept working: {got:?}"
    );

    // In use: kept. Idle past the limit: removed.
    let enforcer = agent.enforcer.as_mut().unwrap();
    let idle = std::time::Duration::from_secs(30);
    assert_eq!(enforcer.forget_expired(idle).unwrap(), 0);
    assert_eq!(
        enforcer.forget_expired(std::time::Duration::ZERO).unwrap(),
        1
    );
    // Re-learning brings it back; a static rule is never turned into a learned one.
    assert!(enforcer.learn(ip, Some(8080), 6, 7, ttl).unwrap());
    enforcer
        .update_allowlist(&agent_sidecar_tests::allowlist(&["10.77.0.1:8080"]))
        .unwrap();
    assert!(!enforcer.learn(ip, Some(8080), 6, 7, ttl).unwrap());

    // A learned "every port" address never opens DNS over TLS.
    let _dot = TcpServer::start(&ns, "10.77.0.2:853");
    let _other = TcpServer::start(&ns, "10.77.0.2:8853");
    let enforcer = agent.enforcer.as_mut().unwrap();
    let ip2 = "10.77.0.2".parse().unwrap();
    assert!(
        enforcer
            .learn(ip2, None, 6, 7, std::time::Duration::from_secs(30))
            .unwrap()
    );
    assert!(agent.probe(&ns, &["tcp", "10.77.0.2:8853"]).ok());
    assert!(agent.probe(&ns, &["tcp", "10.77.0.2:853"]).denied());
    let _ = std::fs::remove_file(go);
}
