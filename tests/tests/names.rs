//! Name-based egress end to end: `agent-sidecar run` with name rules, a local
//! authoritative DNS server for the test zone, HTTP/HTTPS servers with a test
//! CA, and real clients (curl, Python `requests`, `dig`, `getent`) inside the
//! governed cgroup. The legitimate servers live on 198.51.100.1, the
//! attacker's on 198.51.100.2 (public addresses, so the rebinding guard lets
//! them through); nothing is allowlisted by address.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use agent_sidecar_test_support::{
    ca::TestCa,
    dns::{Authority, Zone},
    web::WebServer,
};
use agent_sidecar_tests::{NetNs, TcpServer, command_in, privileged, sidecar_bin, unique};

const LEGIT: &str = "198.51.100.1";
const EVIL: &str = "198.51.100.2";

struct World {
    ns: NetNs,
    ca: TestCa,
    dns: Authority,
    legit_https: WebServer,
    evil_https: WebServer,
    legit_http: WebServer,
    evil_http: WebServer,
    state_dir: PathBuf,
}

impl World {
    fn new() -> Self {
        let ns = NetNs::new();
        ns.add_address(&format!("{LEGIT}/32"));
        ns.add_address(&format!("{EVIL}/32"));
        let ca = TestCa::new();
        let names = [
            "api.allowed.test",
            "a.wild.test",
            "x.y.wild.test",
            "deep.any.test",
            "evil.test",
            "dns.google",
        ];
        let (cert, key) = ca.issue("legit", &names);
        let (ecert, ekey) = ca.issue("evil", &names);
        let legit_https = WebServer::https(&ns, &format!("{LEGIT}:443"), "legit", &cert, &key);
        let evil_https = WebServer::https(&ns, &format!("{EVIL}:443"), "evil", &ecert, &ekey);
        let legit_http = WebServer::http(&ns, &format!("{LEGIT}:80"), "legit-http");
        let evil_http = WebServer::http(&ns, &format!("{EVIL}:80"), "evil-http");
        let dns = Authority::start_in(
            &ns,
            &format!("{LEGIT}:53"),
            Zone::from_addrs(
                &[
                    ("api.allowed.test", LEGIT),
                    ("a.wild.test", LEGIT),
                    ("x.y.wild.test", LEGIT),
                    ("deep.any.test", LEGIT),
                    ("db.allowed.test", LEGIT),
                    ("evil.test", EVIL),
                    ("rebind.allowed.test", "10.77.0.1"),
                    ("dns.google", LEGIT),
                ],
                2,
            ),
        );
        let state_dir = std::env::temp_dir().join(unique("names-run"));
        std::fs::create_dir_all(&state_dir).unwrap();
        World {
            ns,
            ca,
            dns,
            legit_https,
            evil_https,
            legit_http,
            evil_http,
            state_dir,
        }
    }

    /// `agent-sidecar run` with `allow` rules and the test upstream, running
    /// `argv` as the agent.
    fn run(&self, allow: &[&str], extra: &[&str], argv: &[&str]) -> Output {
        let agent_id = unique("names");
        let upstream = format!("{LEGIT}:53");
        let mut args: Vec<&str> = vec![
            "run",
            "--agent-id",
            &agent_id,
            "--state-dir",
            self.state_dir.to_str().unwrap(),
            "--upstream-dns",
            &upstream,
        ];
        for a in allow {
            args.push("--allow");
            args.push(a);
        }
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(argv);
        command_in(&self.ns, None, &sidecar_bin(), &args)
            .output()
            .expect("run agent-sidecar")
    }

    fn curl(&self, allow: &[&str], curl_args: &[&str]) -> (i32, String, String) {
        let ca = self.ca.ca_file();
        let mut argv = vec![
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            ca.to_str().unwrap(),
        ];
        argv.extend_from_slice(curl_args);
        let out = self.run(allow, &[], &argv);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

#[test]
fn curl_reaches_allowlisted_names_only_with_and_without_the_proxy() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let allow = ["api.allowed.test:443", "api.allowed.test:80"];

    // Through the explicit proxy (run sets HTTPS_PROXY) and transparently.
    let (code, body, err) = w.curl(&allow, &["https://api.allowed.test/via-proxy"]);
    assert_eq!((code, body.trim()), (0, "legit"), "{err}");
    let (code, body, err) = w.curl(
        &allow,
        &["--noproxy", "*", "https://api.allowed.test/transparent"],
    );
    assert_eq!((code, body.trim()), (0, "legit"), "{err}");
    let (code, body, err) = w.curl(&allow, &["--noproxy", "*", "http://api.allowed.test/plain"]);
    assert_eq!((code, body.trim()), (0, "legit-http"), "{err}");

    // A name that is not allowlisted: no address (NXDOMAIN), and refused by
    // the proxy even when curl is told the address.
    let (code, _, err) = w.curl(&allow, &["--noproxy", "*", "https://evil.test/"]);
    assert_eq!(code, 6, "evil.test must not resolve: {err}");
    let (code, body, err) = w.curl(&allow, &["https://evil.test/"]);
    assert_ne!(code, 0, "the proxy refuses evil.test: {body} {err}");
    let evil_resolve = format!("evil.test:443:{EVIL}");
    let (code, _, err) = w.curl(
        &allow,
        &[
            "--noproxy",
            "*",
            "--resolve",
            &evil_resolve,
            "https://evil.test/",
        ],
    );
    assert_eq!(
        code, 35,
        "a TLS alert for an SNI that is not allowed: {err}"
    );
    assert!(
        !w.dns.was_asked("evil.test"),
        "a refused name never goes upstream"
    );

    // --resolve pinning the attacker's address for an allowed name: the
    // sidecar dials what it resolved itself, the legitimate server.
    let pinned = format!("api.allowed.test:443:{EVIL}");
    let (code, body, err) = w.curl(
        &allow,
        &[
            "--noproxy",
            "*",
            "--resolve",
            &pinned,
            "https://api.allowed.test/pinned",
        ],
    );
    assert_eq!((code, body.trim()), (0, "legit"), "{err}");
    let pinned80 = format!("api.allowed.test:80:{EVIL}");
    let (code, body, err) = w.curl(
        &allow,
        &[
            "--noproxy",
            "*",
            "--resolve",
            &pinned80,
            "http://api.allowed.test/pinned",
        ],
    );
    assert_eq!((code, body.trim()), (0, "legit-http"), "{err}");
    assert!(
        w.evil_https.requests().is_empty(),
        "{:?}",
        w.evil_https.requests()
    );
    assert!(
        w.evil_http.requests().is_empty(),
        "{:?}",
        w.evil_http.requests()
    );
    assert_eq!(w.legit_https.requests().len(), 3);
    assert_eq!(w.legit_http.requests().len(), 2);
}

#[test]
fn python_requests_and_dig_see_only_allowlisted_names() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let allow = ["api.allowed.test:443"];
    let ca = w.ca.ca_file();
    let script = format!(
        "import requests, sys\n\
         r = requests.get('https://api.allowed.test/py', verify='{}', timeout=5)\n\
         print(r.status_code, r.text.strip())\n\
         try:\n    requests.get('https://evil.test/', verify='{}', timeout=5)\n    print('evil reached')\n\
         except requests.exceptions.RequestException as e:\n    print('evil refused')\n",
        ca.display(),
        ca.display()
    );
    let out = w.run(&allow, &[], &["python3", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("200 legit"), "{text}");
    assert!(text.contains("evil refused"), "{text}");

    // dig asking a resolver of its own choice: intercepted.
    let out = w.run(
        &allow,
        &[],
        &["dig", "@9.9.9.9", "+short", "api.allowed.test"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), LEGIT);
    let out = w.run(&allow, &[], &["dig", "@9.9.9.9", "evil.test"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("NXDOMAIN"));
    let out = w.run(&allow, &[], &["getent", "hosts", "api.allowed.test"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(LEGIT));
}

#[test]
fn wildcards_rebinding_doh_and_learned_addresses() {
    if !privileged() {
        return;
    }
    let w = World::new();
    // One label / any depth.
    let (code, _, err) = w.curl(&["*.wild.test:443"], &["https://a.wild.test/"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = w.curl(
        &["*.wild.test:443"],
        &["--noproxy", "*", "https://x.y.wild.test/"],
    );
    assert_ne!(code, 0, "*. is exactly one label");
    let (code, _, err) = w.curl(&["**.any.test:443"], &["https://deep.any.test/"]);
    assert_eq!(code, 0, "{err}");

    // Rebinding: an allowed name answering a private address is dropped.
    let out = w.run(
        &["rebind.allowed.test:443"],
        &[],
        &["dig", "+short", "rebind.allowed.test"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "private answer dropped"
    );

    // DoH endpoint under a wildcard: refused unless named exactly.
    let (code, _, _) = w.curl(
        &["**.google:443"],
        &["--noproxy", "*", "https://dns.google/dns-query"],
    );
    assert_ne!(code, 0, "known DoH endpoints need an exact rule");
    let (code, _, err) = w.curl(
        &["dns.google:443"],
        &["--noproxy", "*", "https://dns.google/dns-query"],
    );
    assert_eq!(code, 0, "named exactly: {err}");

    // A non-HTTP name rule: its resolved address is allowed in the kernel on
    // that port only.
    let db = TcpServer::start(&w.ns, &format!("{LEGIT}:5432"));
    let other = TcpServer::start(&w.ns, &format!("{LEGIT}:5433"));
    let probe = agent_sidecar_tests::probe_bin();
    let script = format!(
        "getent hosts db.allowed.test && {p} tcp {LEGIT}:5432 && {p} tcp {LEGIT}:5433",
        p = probe.display()
    );
    let out = w.run(&["db.allowed.test:5432"], &[], &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"ok\":true"), "{text}");
    assert_eq!(db.count(), 1, "{text}");
    assert_eq!(other.count(), 0, "{text}");
    let _ = Path::new("/");
}

#[test]
fn name_rules_from_a_policy_file_with_a_rebinding_exemption() {
    if !privileged() {
        return;
    }
    let w = World::new();
    let policy = w.state_dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\negress:\n  names:\n    - api.allowed.test:443\n    - name: rebind.allowed.test\n      ports: [443]\n      allow_private: true\n",
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let out = w.run(
        &[],
        &["--policy", policy],
        &["dig", "+short", "rebind.allowed.test"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "10.77.0.1",
        "allow_private keeps the private answer"
    );
    let ca = w.ca.ca_file();
    let out = w.run(
        &[],
        &["--policy", policy],
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            ca.to_str().unwrap(),
            "https://api.allowed.test/file",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "legit");
}
