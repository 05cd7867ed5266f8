use super::*;
use std::io::Write as _;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect(s)
}

#[test]
fn upstream_values() {
    assert_eq!(parse_upstream("10.0.0.2").unwrap(), addr("10.0.0.2:53"));
    assert_eq!(
        parse_upstream(" 10.0.0.2:5353 ").unwrap(),
        addr("10.0.0.2:5353")
    );
    assert_eq!(
        parse_upstream("2001:db8::53").unwrap(),
        addr("[2001:db8::53]:53")
    );
    assert_eq!(
        parse_upstream("[2001:db8::53]:54").unwrap(),
        addr("[2001:db8::53]:54")
    );
    for (bad, needle) in [
        ("", "empty"),
        ("dns.example", "host names"),
        ("10.0.0.2:0", "port 0"),
    ] {
        let msg = parse_upstream(bad).expect_err(bad).to_string();
        assert!(
            msg.contains(needle) && msg.contains("write IP or IP:PORT"),
            "{msg}"
        );
    }
}

#[test]
fn refusal_modes() {
    assert_eq!(
        "nxdomain".parse::<RefusalMode>().unwrap(),
        RefusalMode::NxDomain
    );
    assert_eq!(
        "REFUSED".parse::<RefusalMode>().unwrap(),
        RefusalMode::Refused
    );
    let msg = "drop".parse::<RefusalMode>().unwrap_err().to_string();
    assert!(msg.contains("`drop`") && msg.contains("nxdomain"), "{msg}");
}

#[test]
fn resolv_conf_nameservers() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%1\noptions ndots:2"
    )
    .unwrap();
    let servers = upstreams_from_resolv_conf(file.path()).unwrap();
    assert_eq!(servers[0], addr("10.0.0.2:53"));
    assert_eq!(
        servers[1],
        SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 1))
    );
    std::fs::write(file.path(), "search example.com\n").unwrap();
    let msg = upstreams_from_resolv_conf(file.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no nameserver") && msg.contains("--upstream-dns"),
        "{msg}"
    );
    let msg = upstreams_from_resolv_conf(Path::new("/nonexistent/resolv.conf"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cannot read"), "{msg}");
}

#[test]
fn validation_catches_unusable_settings() {
    let ok = DnsConfig::new("a", vec![addr("127.0.0.1:0")], vec![addr("10.0.0.2:53")]);
    ok.validate().unwrap();
    let no_listen = DnsConfig {
        listen: vec![],
        ..ok.clone()
    };
    assert!(matches!(no_listen.validate(), Err(ConfigError::NoListen)));
    let no_up = DnsConfig {
        upstreams: vec![],
        ..ok.clone()
    };
    assert!(matches!(no_up.validate(), Err(ConfigError::NoUpstream(_))));
    let looped = DnsConfig {
        upstreams: vec![addr("127.0.0.1:0")],
        ..ok.clone()
    };
    assert!(matches!(
        looped.validate(),
        Err(ConfigError::UpstreamLoop(_))
    ));
    let zero = DnsConfig {
        upstream_timeout: Duration::ZERO,
        ..ok
    };
    assert!(matches!(
        zero.validate(),
        Err(ConfigError::Zero("upstream_timeout"))
    ));
}
