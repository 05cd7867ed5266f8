use super::*;

#[test]
fn names_are_lowercased_and_trailing_dot_dropped() {
    assert_eq!(
        classify_host("API.Allowed.Test."),
        HostKind::Name("api.allowed.test".into())
    );
}

#[test]
fn ip_literals_in_every_spelling() {
    for raw in [
        "10.0.0.1",
        "::1",
        "[::1]",
        "[2001:db8::1]",
        "127.1",
        "0x7f.1",
    ] {
        assert_eq!(classify_host(raw), HostKind::IpLiteral, "{raw}");
    }
}

#[test]
fn invalid_names() {
    let long = "a".repeat(254);
    for raw in [
        "",
        ".",
        "a..b",
        "a b",
        "evil\0.test",
        long.as_str(),
        "exa mple",
    ] {
        assert_eq!(classify_host(raw), HostKind::Invalid, "{raw:?}");
    }
}

#[test]
fn host_port_split() {
    assert_eq!(split_host_port("a.test"), Some(("a.test", None)));
    assert_eq!(split_host_port("a.test:8080"), Some(("a.test", Some(8080))));
    assert_eq!(split_host_port("[::1]:443"), Some(("[::1]", Some(443))));
    assert_eq!(split_host_port("[::1]"), Some(("[::1]", None)));
    assert_eq!(split_host_port("a.test:x"), None);
    assert_eq!(split_host_port("[::1]x"), None);
}
