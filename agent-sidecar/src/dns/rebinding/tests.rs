use super::*;

fn c(s: &str) -> Option<BlockedRange> {
    classify(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
}

#[test]
fn public_addresses_pass() {
    for ip in [
        "93.184.216.34",
        "8.8.8.8",
        "203.0.113.7",
        "172.32.0.1",
        "100.128.0.1",
        "2001:db8::1",
        "2606:4700::1111",
    ] {
        assert_eq!(c(ip), None, "{ip}");
    }
}

#[test]
fn internal_addresses_are_blocked_with_their_range() {
    use BlockedRange::*;
    for (ip, range) in [
        ("10.0.0.5", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("100.64.0.1", SharedAddressSpace),
        ("100.127.255.255", SharedAddressSpace),
        ("127.0.0.1", Loopback),
        ("127.1.2.3", Loopback),
        ("::1", Loopback),
        ("169.254.1.1", LinkLocal),
        ("fe80::1", LinkLocal),
        ("0.0.0.0", Unspecified),
        ("::", Unspecified),
        ("224.0.0.1", Multicast),
        ("ff02::1", Multicast),
        ("fc00::1", UniqueLocal),
        ("fd12:3456::1", UniqueLocal),
        ("fec0::1", UniqueLocal),
        ("169.254.169.254", Metadata),
        ("fd00:ec2::254", Metadata),
        ("100.100.100.200", Metadata),
        ("0.1.2.3", Reserved),
        ("255.255.255.255", Reserved),
        ("240.0.0.1", Reserved),
        ("198.18.0.1", Reserved),
        ("192.0.0.8", Reserved),
    ] {
        assert_eq!(c(ip), Some(range), "{ip}");
    }
}

#[test]
fn ipv6_forms_of_ipv4_are_judged_as_ipv4() {
    assert_eq!(c("::ffff:10.0.0.5"), Some(BlockedRange::Private));
    assert_eq!(c("::ffff:169.254.169.254"), Some(BlockedRange::Metadata));
    assert_eq!(c("64:ff9b::127.0.0.1"), Some(BlockedRange::Loopback));
    assert_eq!(c("::10.0.0.5"), Some(BlockedRange::Private));
    assert_eq!(c("::ffff:93.184.216.34"), None);
    assert_eq!(c("64:ff9b::8.8.8.8"), None);
}
