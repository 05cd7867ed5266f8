//! Egress grants on the real kernel: a destination refused, requested,
//! approved (connect works), then expired by the timer: the open
//! connection to it is cut and the next connect refused, while a grant for
//! another port never opens anything.

use std::{
    process::Child,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agent_sidecar::grants::{
    GrantBounds, GrantKind, GrantRequest, GrantStore, egress::KernelGrants, run_expiry,
};
use agent_sidecar_tests::{
    Agent, NetNs, TcpServer, command_in, privileged, probe_bin, unique, write_file,
};

fn request(target: &str, ttl: u64) -> GrantRequest {
    GrantRequest {
        agent: "agent".into(),
        kind: GrantKind::Egress,
        target: target.into(),
        purpose: "incident 42".into(),
        ttl_secs: ttl,
        requested_by: "agent".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_grant_opens_a_destination_until_its_expiry_cuts_it() {
    assert!(privileged(), "needs root and a BPF-capable kernel");
    let ns = NetNs::new();
    let server = TcpServer::with_idle_timeout(&ns, "10.77.0.1:8080", Duration::from_secs(20));
    let mut agent = Agent::start(&[]);
    assert!(
        agent.probe(&ns, &["tcp", "10.77.0.1:8080"]).denied(),
        "refused before any grant"
    );

    let dir = std::env::temp_dir().join(unique("grants"));
    let bounds = GrantBounds {
        kinds: vec![GrantKind::Egress],
        targets: vec!["10.77.0.1:8080".into(), "10.77.0.1:8081".into()],
        max_ttl: Duration::from_secs(60),
        approvers: vec![],
        never: vec![],
    };
    let (store, _) = GrantStore::open(&dir, bounds).unwrap();
    assert!(
        store.request(request("10.77.0.1:8080", 61)).is_err(),
        "TTL above the max"
    );
    let g = store.request(request("10.77.0.1:8080", 3)).unwrap();
    assert!(
        store.approve(&g.id, "agent", "mine").is_err(),
        "self-approval"
    );
    let other = store.request(request("10.77.0.1:8081", 30)).unwrap();

    let enforcer = Arc::new(Mutex::new(agent.enforcer.take().unwrap()));
    let kernel = Arc::new(KernelGrants::new(
        agent_sidecar::egress::Allowlist::new(),
        Arc::downgrade(&enforcer),
    ));
    store.approve(&other.id, "lead@example.test", "").unwrap();
    kernel.apply(&store.in_force(), &[]).unwrap();
    agent.enforcer = None;
    let procs = || enforcer.lock().unwrap().cgroup().procs_writer().unwrap();
    let probe = |args: &[&str]| {
        let p = procs();
        command_in(&ns, Some(&p), &probe_bin(), args)
            .output()
            .unwrap()
    };
    assert_ne!(
        probe(&["tcp", "10.77.0.1:8080"]).status.code(),
        Some(0),
        "a grant for port 8081 does not open 8080"
    );

    store.approve(&g.id, "lead@example.test", "ok").unwrap();
    kernel.apply(&store.in_force(), &[]).unwrap();
    assert_eq!(
        probe(&["tcp", "10.77.0.1:8080"]).status.code(),
        Some(0),
        "granted"
    );

    // An open connection, then the timer expires the grant.
    let go = std::env::temp_dir().join(unique("go"));
    let p = procs();
    let held: Child = command_in(
        &ns,
        Some(&p),
        &probe_bin(),
        &[
            "tcp-hold",
            "10.77.0.1:8080",
            go.to_str().unwrap(),
            "after-expiry",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while enforcer.lock().unwrap().sockets().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the held connection never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (k, s) = (kernel.clone(), store.clone());
    let expired = Arc::new(Mutex::new(Vec::new()));
    let seen = expired.clone();
    let timer = tokio::spawn(run_expiry(
        store.clone(),
        Duration::from_millis(200),
        move |g| {
            seen.lock().unwrap().push(g.id.clone());
            k.apply(&s.in_force(), std::slice::from_ref(g)).unwrap();
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(6);
    while !expired.lock().unwrap().contains(&g.id) {
        assert!(Instant::now() < deadline, "the grant never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write_file(&go, "");
    let out = held.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "the open connection was cut");
    let ended = server.wait_ended(2, Duration::from_secs(5));
    assert!(
        ended.iter().all(|(bytes, _)| bytes.is_empty()),
        "nothing written after the expiry arrived: {ended:?}"
    );
    assert_ne!(
        probe(&["tcp", "10.77.0.1:8080"]).status.code(),
        Some(0),
        "refused after expiry"
    );
    assert!(
        store.revoke(&g.id, "lead@example.test", "").is_err(),
        "expired stays expired"
    );
    timer.abort();
    drop(kernel);
    let enf = Arc::try_unwrap(enforcer)
        .ok()
        .unwrap()
        .into_inner()
        .unwrap();
    enf.teardown().unwrap();
    let _ = std::fs::remove_file(go);
    let _ = std::fs::remove_dir_all(dir);
}
