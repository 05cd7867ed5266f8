use super::*;
use ipnet::Ipv6Net;
use proptest::prelude::*;

fn t(s: &str) -> Target {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn accepts_every_documented_form() {
    assert_eq!(t("10.0.0.5:443").to_string(), "10.0.0.5:443");
    assert_eq!(t("[2001:db8::1]:443").to_string(), "[2001:db8::1]:443");
    assert_eq!(t("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(t("10.0.0.0/8:5432").to_string(), "10.0.0.0/8:5432");
    assert_eq!(t("2001:db8::/32").to_string(), "2001:db8::/32");
    assert_eq!(t("[2001:db8::/32]:443").to_string(), "[2001:db8::/32]:443");
    assert_eq!(t("2001:db8::/32:443"), t("[2001:db8::/32]:443"));
    assert_eq!(t("192.0.2.1").to_string(), "192.0.2.1/32");
    assert_eq!(t("::1").to_string(), "::1/128");
    assert_eq!(t(" 10.0.0.5:443 "), t("10.0.0.5:443"));
}

#[test]
fn v4_mapped_targets_become_ipv4() {
    assert_eq!(t("[::ffff:10.1.2.3]:80"), t("10.1.2.3:80"));
    assert_eq!(t("::ffff:10.0.0.0/104"), t("10.0.0.0/8"));
}

#[test]
fn rejects_malformed_targets_with_the_fix() {
    for (input, needle) in [
        ("", "empty"),
        ("10.0.0.5:0", "out of range"),
        ("10.0.0.5:70000", "out of range"),
        ("10.0.0.5:http", "not a port"),
        ("10.0.0.1/8", "did you mean `10.0.0.0/8`"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("example.com:443", "host names"),
        ("[2001:db8::1:443", "closing"),
        ("[2001:db8::1]443", "unexpected"),
        ("300.1.1.1:80", "not an IP"),
    ] {
        let e = input.parse::<Target>().expect_err(input);
        let msg = e.to_string();
        assert!(msg.contains(needle), "{input}: {msg}");
        assert!(
            msg.contains("write IP:PORT"),
            "{input}: error must say how to fix: {msg}"
        );
    }
}

proptest! {
    #[test]
    fn display_round_trips(a in any::<[u8; 4]>(), len in 0u8..=32, port in proptest::option::of(1u16..)) {
        let net = IpNet::V4(Ipv4Net::new(a.into(), len).unwrap().trunc());
        let target = Target { net, port };
        prop_assert_eq!(target.to_string().parse::<Target>().unwrap(), target);
    }

    #[test]
    fn display_round_trips_v6(a in any::<[u8; 16]>(), len in 0u8..=128, port in proptest::option::of(1u16..)) {
        let net = normalise(IpNet::V6(Ipv6Net::new(a.into(), len).unwrap().trunc()));
        let target = Target { net, port };
        prop_assert_eq!(target.to_string().parse::<Target>().unwrap(), target);
    }

    #[test]
    fn never_panics(s in ".{0,40}") {
        let _ = s.parse::<Target>();
    }
}
