//! The test servers themselves work, checked with real clients outside any
//! governed cgroup, so a failure elsewhere is never a broken fixture.

use agent_sidecar_test_support::{
    ca::TestCa,
    dns::{Authority, Zone},
    web::WebServer,
};
use agent_sidecar_tests::{NetNs, command_in, privileged};
use std::path::Path;

#[test]
fn test_servers_answer_real_clients() {
    if !privileged() {
        return;
    }
    let ns = NetNs::new();
    let ca = TestCa::new();
    let (cert, key) = ca.issue("api", &["api.allowed.test"]);
    let https = WebServer::https(&ns, "10.77.0.1:443", "legit", &cert, &key);
    let http = WebServer::http(&ns, "[fd77::1]:80", "plain");
    let dns = Authority::start_in(
        &ns,
        "10.77.0.1:53",
        Zone::from_addrs(&[("api.allowed.test", "10.77.0.1")], 30),
    );

    let curl = |args: &[&str]| {
        let out = command_in(&ns, None, Path::new("curl"), args)
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ca_file = ca.ca_file();
    let body = curl(&[
        "-sS",
        "--cacert",
        ca_file.to_str().unwrap(),
        "--resolve",
        "api.allowed.test:443:10.77.0.1",
        "https://api.allowed.test/x",
    ]);
    assert_eq!(body.trim(), "legit");
    assert_eq!(https.requests(), ["api.allowed.test /x"]);
    assert_eq!(curl(&["-sS", "http://[fd77::1]/y"]).trim(), "plain");
    assert_eq!(http.requests().len(), 1);

    let out = command_in(
        &ns,
        None,
        Path::new("dig"),
        &["@10.77.0.1", "+short", "api.allowed.test"],
    )
    .output()
    .expect("dig");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "10.77.0.1");
    let out = command_in(&ns, None, Path::new("dig"), &["@10.77.0.1", "nope.test"])
        .output()
        .expect("dig");
    assert!(String::from_utf8_lossy(&out.stdout).contains("NXDOMAIN"));
    assert!(dns.was_asked("nope.test"));
}
