use super::*;
use crate::egress::{EgressRule, NameRule, Protocols, RuleSource};

fn list(targets: &[&str]) -> Allowlist {
    let mut l = Allowlist::new();
    for (i, t) in targets.iter().enumerate() {
        l.push(EgressRule {
            target: t.parse().unwrap(),
            protocols: Protocols::Any,
            source: RuleSource::Flag(i + 1),
        });
    }
    l
}

fn names(rules: &[&str]) -> NameAllowlist {
    let mut l = NameAllowlist::default();
    for r in rules {
        l.push(NameRule::parse(r, crate::egress::Breadth::Strict).unwrap());
    }
    l
}

fn listener(addr: &str) -> [PrivateListener; 1] {
    [PrivateListener {
        what: "metrics",
        addr: addr.parse().unwrap(),
        flag: "--metrics-listen",
    }]
}

fn refuses(l: &[PrivateListener], rules: &[&str]) -> bool {
    match check(l, &list(rules), &NameAllowlist::default(), &[]) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("sidecar's metrics") && m.contains("--metrics-listen"),
                "{m}"
            );
            true
        }
        Ok(()) => false,
    }
}

#[test]
fn every_address_spelling_of_a_loopback_listener_is_refused() {
    let l = listener("127.0.0.1:9464");
    for rule in [
        "127.0.0.1:9464",
        "127.0.0.1",
        "127.0.0.2",
        "127.9.9.9/32",
        "127.0.0.0/8",
        "0.0.0.0/0",
        "0.0.0.0",
        "[::ffff:127.0.0.1]:9464",
        "::ffff:127.0.0.1",
        "::ffff:0:0/96",
        "10.1.2.3:9464",
        "[::1]:9464",
    ] {
        assert!(refuses(&l, &[rule]), "{rule} must be refused");
    }
    for rule in ["10.0.0.0/8", "127.0.0.1:9465", "::1", "192.0.2.1:443"] {
        assert!(
            !refuses(&l, &[rule]),
            "{rule} does not reach 127.0.0.1:9464"
        );
    }
}

#[test]
fn an_unspecified_listener_is_reached_through_every_local_address() {
    for bind in ["0.0.0.0:9901", "[::]:9901"] {
        let l = listener(bind);
        for rule in ["127.0.0.0/8", "::1", "::/0", "0.0.0.0/0", "127.3.4.5"] {
            assert!(refuses(&l, &[rule]), "{bind}: {rule} must be refused");
        }
        assert!(!refuses(&l, &["192.0.2.0/24:443"]));
    }
    let l = listener("[::1]:9901");
    assert!(refuses(&l, &["::1"]));
    assert!(refuses(&l, &["::/127"]));
    assert!(!refuses(&l, &["127.0.0.1"]));
}

#[test]
fn name_rules_and_static_hosts_that_reach_a_listener_are_refused() {
    let l = listener("127.0.0.1:9901");
    let check_names = |rules: &[&str], hosts: &[StaticHost]| {
        check(&l, &Allowlist::new(), &names(rules), hosts).is_err()
    };
    let x = StaticHost {
        name: "x.example.test".into(),
        addr: "127.0.0.1".parse().unwrap(),
    };
    let mapped = StaticHost {
        name: "x.example.test".into(),
        addr: "::ffff:127.0.0.7".parse().unwrap(),
    };
    assert!(check_names(&["x.example.test:9901"], &[]));
    assert!(check_names(&["*.example.test:9901"], &[]));
    assert!(check_names(&["x.example.test"], std::slice::from_ref(&x)));
    assert!(check_names(&["*.example.test"], &[mapped]));
    assert!(!check_names(
        &["x.example.test:443"],
        std::slice::from_ref(&x)
    ));
    assert!(!check_names(&["x.example.test"], &[]));
    let mut private = names(&["db.internal"]);
    let mut rules: Vec<NameRule> = private.rules().to_vec();
    rules[0].allow_private = true;
    private = NameAllowlist::default();
    for r in rules {
        private.push(r);
    }
    assert!(check(&l, &Allowlist::new(), &private, &[]).is_err());
}
