//! `agent-sidecar serve` on the real kernel, in a pod-shaped cgroup tree
//! laid out as the kubelet's systemd driver does (a pod slice with an
//! agent container scope and a sidecar container scope): the agent's
//! containers are governed, a container created later is governed from
//! birth, the sidecar's own container reaches what the agent may not, and
//! killing and restarting the sidecar under a connect loop from the agent
//! leaves no moment in which a denied address is reached.

use std::{
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use agent_sidecar_tests::{
    NetNs, TcpServer, command_in, in_ns, privileged, probe_bin, sidecar_bin, unique,
};

const POD_UID: &str = "3f1c2a9e-7b4d-4e8a-9c11-0d5e6f7a8b9c";
const ALLOWED: &str = "10.77.0.1:8080";
const DENIED: &str = "10.77.0.2:8080";
const UPSTREAM: &str = "10.77.0.2:9090";
const METRICS: &str = "127.0.0.1:9464";

/// A kubelet-shaped tree under a test root of the host's cgroup v2 mount,
/// removed (bottom-up) when dropped.
struct PodTree {
    root: PathBuf,
    pod: PathBuf,
}

impl PodTree {
    fn new() -> Self {
        let cg = agent_sidecar::kernel::preflight::cgroup2_mount().unwrap();
        let root = cg.join(unique("astpod"));
        let pod = root
            .join("kubepods.slice/kubepods-besteffort.slice")
            .join(format!(
                "kubepods-besteffort-pod{}.slice",
                POD_UID.replace('-', "_")
            ));
        fs::create_dir_all(&pod).unwrap();
        PodTree { root, pod }
    }

    fn container(&self, id: &str) -> PathBuf {
        let dir = self.pod.join(format!("cri-containerd-{id}.scope"));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn procs(dir: &Path) -> fs::File {
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .unwrap()
    }
}

impl Drop for PodTree {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            let _ = fs::write(d.join("cgroup.kill"), "1");
        }
        for d in dirs.iter().rev() {
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

struct Serve {
    state_dir: PathBuf,
    instance: String,
}

impl Serve {
    fn spawn(&self, ns: &NetNs, tree: &PodTree, own: &Path, log: &Path) -> Child {
        let procs = PodTree::procs(own);
        let args = [
            "serve",
            "--pod-uid",
            POD_UID,
            "--pod-name",
            &self.instance,
            "--agent-id",
            "reviewer",
            "--owner",
            "alice@example.com",
            "--host-cgroupfs",
            tree.root.to_str().unwrap(),
            "--sidecar-cgroup",
            own.file_name().unwrap().to_str().unwrap(),
            "--allow",
            ALLOWED,
            "--allow",
            "web.test:8081",
            "--static-host",
            "web.test=10.77.0.1",
            "--allow",
            "slow.test:8082",
            "--static-host",
            "slow.test=10.77.0.1",
            "--static-host",
            "evil.test=10.77.0.2",
            "--upstream-dns",
            "10.77.0.2:53",
            "--metrics-listen",
            METRICS,
            "--state-dir",
            self.state_dir.to_str().unwrap(),
            "--drain-grace",
            "2s",
        ];
        let mut cmd = command_in(ns, Some(&procs), &sidecar_bin(), &args);
        cmd.stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap());
        cmd.spawn().expect("spawn serve")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new(sidecar_bin())
            .args([
                "teardown",
                "--agent-id",
                &self.instance,
                "--state-dir",
                self.state_dir.to_str().unwrap(),
            ])
            .output();
        let _ = fs::remove_dir_all(&self.state_dir);
    }
}

fn probe(ns: &NetNs, cgroup: &Path, args: &[&str]) -> i32 {
    let procs = PodTree::procs(cgroup);
    command_in(ns, Some(&procs), &probe_bin(), args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("probe")
        .code()
        .unwrap_or(-1)
}

/// `GET /readyz` on the sidecar's metrics listener: the status code.
fn readyz(ns: &NetNs) -> Option<u16> {
    in_ns(ns, || {
        let mut s = std::net::TcpStream::connect(METRICS).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_whitespace().nth(1)?.parse().ok()
    })
}

fn wait_ready(ns: &NetNs, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(ns) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "serve never became ready: {}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_governs_the_pods_containers_and_a_restart_opens_no_window() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let allowed = TcpServer::start(&ns, ALLOWED);
    let denied = TcpServer::start(&ns, DENIED);
    let upstream = TcpServer::start(&ns, UPSTREAM);
    let mut web = command_in(
        &ns,
        None,
        Path::new("python3"),
        &["-m", "http.server", "8081", "--bind", "10.77.0.1"],
    )
    .current_dir(std::env::temp_dir())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("python3 http.server");
    // Answers after 1.5 s: a call in flight when the sidecar is told to stop.
    let slow_server = [
        "import http.server, time",
        "class H(http.server.BaseHTTPRequestHandler):",
        "    def do_GET(self):",
        "        time.sleep(1.5)",
        "        self.send_response(200)",
        "        self.send_header('Content-Length', '4')",
        "        self.end_headers()",
        "        self.wfile.write(b'slow')",
        "http.server.HTTPServer(('10.77.0.1', 8082), H).serve_forever()",
    ]
    .join("\n");
    let mut slow = command_in(&ns, None, Path::new("python3"), &["-c", &slow_server])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slow server");
    for url in ["http://10.77.0.1:8081/", "http://10.77.0.1:8082/"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !command_in(
            &ns,
            None,
            Path::new("curl"),
            &["-s", "-o", "/dev/null", url],
        )
        .status()
        .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "{url} did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let tree = PodTree::new();
    let agent = tree.container("agent0");
    let side = tree.container("side0");
    let serve = Serve {
        state_dir: std::env::temp_dir().join(unique("ast-serve")),
        instance: unique("reviewer-pod"),
    };
    let log = serve.state_dir.with_extension("log");
    fs::create_dir_all(&serve.state_dir).unwrap();
    let mut sidecar = serve.spawn(&ns, &tree, &side, &log);
    wait_ready(&ns, &log);

    // The agent container: allowed reached, denied refused by the kernel.
    assert_eq!(probe(&ns, &agent, &["tcp", ALLOWED]), 0);
    assert_eq!(probe(&ns, &agent, &["tcp", DENIED]), 1);
    assert_eq!(probe(&ns, &agent, &["tcp", UPSTREAM]), 1);
    // The sidecar's own container reaches its upstream.
    assert_eq!(probe(&ns, &side, &["tcp", UPSTREAM]), 0);
    // Through the sidecar's proxy (the pod's HTTP_PROXY): a name the
    // policy allows is reached by the sidecar on the agent's behalf, with
    // a real client; another name is refused by the proxy.
    let curl = |url: &str| {
        let out = command_in(
            &ns,
            Some(&PodTree::procs(&agent)),
            Path::new("curl"),
            &[
                "-s",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--proxy",
                "http://127.0.0.1:15001",
                url,
            ],
        )
        .output()
        .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("http://web.test:8081/"), "200");
    assert_eq!(curl("http://evil.test:8080/"), "403");
    // A container created after serve started (a restart) is governed
    // from its first connect: nothing had to notice it.
    let late = tree.container("agent1");
    assert_eq!(probe(&ns, &late, &["tcp", DENIED]), 1);
    assert_eq!(probe(&ns, &late, &["tcp", ALLOWED]), 0);
    // A child cgroup of the sidecar's container is not exempt.
    let nested = side.join("nested");
    fs::create_dir_all(&nested).unwrap();
    assert_eq!(probe(&ns, &nested, &["tcp", DENIED]), 1);

    // A connect loop from the agent while the sidecar is killed and
    // restarted (as a new container, with a new cgroup), then drained.
    let results = serve.state_dir.with_extension("loop");
    let stop = serve.state_dir.with_extension("stop");
    let p = probe_bin();
    let script = format!(
        "while [ ! -e {stop} ]; do {p} tcp {DENIED} >/dev/null 2>&1; echo $? >> {res}; done",
        stop = stop.display(),
        p = p.display(),
        res = results.display()
    );
    let mut looping = command_in(
        &ns,
        Some(&PodTree::procs(&agent)),
        Path::new("/bin/sh"),
        &["-c", &script],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sidecar.kill().unwrap(); // SIGKILL: a crash
    let _ = sidecar.wait();
    assert_eq!(readyz(&ns), None, "the dead sidecar serves nothing");
    std::thread::sleep(Duration::from_millis(500));
    let side1 = tree.container("side1");
    let log1 = serve.state_dir.with_extension("log1");
    let mut sidecar = serve.spawn(&ns, &tree, &side1, &log1);
    wait_ready(&ns, &log1);
    let restarted = fs::read_to_string(&log1).unwrap();
    assert!(
        restarted.contains("replacing stale pinned enforcement"),
        "{restarted}"
    );
    // The new sidecar container is exempt, the old one no longer is.
    assert_eq!(probe(&ns, &side1, &["tcp", UPSTREAM]), 0);
    assert_eq!(probe(&ns, &side, &["tcp", DENIED]), 1);
    std::thread::sleep(Duration::from_millis(300));
    // SIGTERM while a call is in flight through the proxy: the call
    // finishes within the drain grace, then serve exits 0 and leaves the
    // programs attached.
    let in_flight = command_in(
        &ns,
        Some(&PodTree::procs(&agent)),
        Path::new("curl"),
        &[
            "-s",
            "-m",
            "10",
            "-w",
            " %{http_code}",
            "--proxy",
            "http://127.0.0.1:15001",
            "http://slow.test:8082/",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let term_at = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sidecar.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = sidecar.wait().unwrap();
    let drained_in = term_at.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        fs::read_to_string(&log1).unwrap_or_default()
    );
    let call = in_flight.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&call.stdout),
        "slow 200",
        "the call in flight at SIGTERM finished"
    );
    eprintln!("drained in {drained_in:?} with a call in flight");
    assert!(
        drained_in < Duration::from_secs(2) + Duration::from_millis(900),
        "{drained_in:?}"
    );
    assert_eq!(readyz(&ns), None, "no longer serving");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        probe(&ns, &agent, &["tcp", DENIED]),
        1,
        "still denied after the drain"
    );
    fs::write(&stop, "").unwrap();
    let _ = looping.wait();

    let codes = fs::read_to_string(&results).unwrap();
    let attempts = codes.lines().count();
    let reached = codes.lines().filter(|l| *l == "0").count();
    let refused = codes.lines().filter(|l| *l == "1").count();
    eprintln!("connect loop: {attempts} attempts, {refused} refused, {reached} reached");
    assert!(
        attempts >= 20,
        "the loop ran through the restart: {attempts}"
    );
    assert_eq!(reached, 0, "a denied address was reached: {codes}");
    assert_eq!(refused, attempts, "every attempt refused by the kernel");
    assert_eq!(denied.count(), 0, "the denied server saw no connection");
    assert!(allowed.count() >= 2 && upstream.count() >= 2);
    for server in [&mut web, &mut slow] {
        let _ = server.kill();
        let _ = server.wait();
    }
    for f in [&log, &log1, &results, &stop] {
        let _ = fs::remove_file(f);
    }
}

/// A quarantine at a pod's cgroup: the sockets of every governed
/// container (each carries its own container's cgroup id, not the pod's)
/// are found and destroyed; the sidecar's own are spared.
#[test]
fn the_sockets_of_every_governed_container_are_destroyed_and_the_sidecars_spared() {
    use agent_sidecar::kernel::{Enforcer, EnforcerConfig};
    use agent_sidecar_tests::allowlist;
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let server = TcpServer::with_idle_timeout(&ns, ALLOWED, Duration::from_secs(5));
    let tree = PodTree::new();
    let agent = tree.container("agent0");
    let late = tree.container("agent1");
    let side = tree.container("side0");
    let state_dir = std::env::temp_dir().join(unique("ast-podsock"));
    let mut config = EnforcerConfig::new(&unique("podsock"));
    config.state_dir = state_dir.clone();
    config.cgroup = Some(tree.pod.clone());
    config.exempt_cgroups = vec![side.clone()];
    let mut enforcer =
        Enforcer::start(&config, &allowlist(&[ALLOWED])).unwrap_or_else(|e| panic!("{e}"));
    let go = state_dir.with_extension("go");
    let hold = |dir: &Path, msg: &str| {
        command_in(
            &ns,
            Some(&PodTree::procs(dir)),
            &probe_bin(),
            &["tcp-hold", ALLOWED, go.to_str().unwrap(), msg],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    };
    let mut holders = vec![
        hold(&agent, "from-agent0"),
        hold(&late, "from-agent1"),
        hold(&side, "from-sidecar"),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    while enforcer.sockets().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the agents' sockets never showed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        enforcer.sockets().unwrap().len(),
        2,
        "both agent containers' sockets, not the sidecar's"
    );
    let report = enforcer.destroy_sockets().unwrap();
    assert_eq!(report.destroyed, 2, "{report:?}");
    fs::write(&go, "").unwrap();
    for h in &mut holders {
        let _ = h.wait();
    }
    let mut ended = server.wait_ended(3, Duration::from_secs(8));
    ended.sort();
    let delivered: Vec<String> = ended
        .iter()
        .filter(|(data, _)| !data.is_empty())
        .map(|(data, _)| String::from_utf8_lossy(data).into_owned())
        .collect();
    assert_eq!(delivered, ["from-sidecar"], "{ended:?}");
    enforcer.teardown().unwrap();
    let _ = fs::remove_file(&go);
    let _ = fs::remove_dir_all(&state_dir);
}
