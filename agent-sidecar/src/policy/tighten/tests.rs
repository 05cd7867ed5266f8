use super::*;
use crate::policy::test_support::{AGENT, BASE, TEAM, one_problem, set};

fn entry(text: &str, protocol: Protocols) -> AllowEntry {
    AllowEntry {
        target: text.parse().unwrap(),
        protocol,
        description: None,
    }
}

#[test]
fn egress_entries_are_within_when_network_port_and_protocol_are() {
    let any = Protocols::Any;
    let cases = [
        ("10.1.2.3:443", any, "10.0.0.0/8:443", any, true),
        ("10.1.0.0/16:443", any, "10.0.0.0/8", any, true),
        ("10.1.2.3:443", Protocols::Tcp, "10.0.0.0/8:443", any, true),
        ("10.1.2.3:443", any, "10.0.0.0/8:443", Protocols::Tcp, false),
        ("10.1.2.3", any, "10.0.0.0/8:443", any, false),
        ("10.1.2.3:80", any, "10.0.0.0/8:443", any, false),
        ("11.0.0.1:443", any, "10.0.0.0/8:443", any, false),
        ("[2001:db8::1]:443", any, "2001:db8::/32", any, true),
        ("[2001:db8::1]:443", any, "0.0.0.0/0", any, false),
    ];
    for (child, cp, parent, pp, within) in cases {
        assert_eq!(
            entry_within(&entry(child, cp), &entry(parent, pp)),
            within,
            "{child} in {parent}"
        );
    }
}

#[test]
fn children_may_tighten() {
    let team = "kind: team\nname: fin\ndefaults: { unknown: 4, missing_attribute: 3 }\nrules:\n  - id: fin.pay\n    overrides: pay.large\n    when: { tool: erp, action: pay, amount: { gte: 20000 } }\n    tier: 4\negress:\n  allow:\n    - 10.1.0.0/16:443\n    - target: 192.168.1.1:22\n      protocol: tcp\n";
    let s = set(&[("org.yaml", BASE), ("fin.yaml", team), ("bot.yaml", AGENT)]);
    let egress = s.egress_allowlist("bot").unwrap();
    assert_eq!(egress.rules().len(), 2);
    assert_eq!(
        egress.rules()[0].source.to_string(),
        "p/fin.yaml: egress.allow[1]"
    );
}

#[test]
fn a_lower_default_names_both_places() {
    let team = "kind: team\nname: fin\ndefaults: { action: 1, missing_attribute: 2 }\n";
    let e = one_problem(&[("org.yaml", BASE), ("fin.yaml", team)]);
    assert!(e.starts_with("p/fin.yaml:3:43: error: `defaults.missing_attribute: 2` lowers the parent's default (3)"), "{e}");
    assert!(e.contains("--> p/org.yaml"), "{e}");
    // Below an agent's team's default, not only the base's.
    let team = "kind: team\nname: fin\ndefaults: { unknown: 4 }\n";
    let agent = format!("{AGENT}defaults: {{ unknown: 3 }}\n");
    let e = one_problem(&[("org.yaml", BASE), ("fin.yaml", team), ("bot.yaml", &agent)]);
    assert!(
        e.contains("--> p/fin.yaml:3:22: team fin sets `defaults.unknown: 4`"),
        "{e}"
    );
}

#[test]
fn a_rule_below_its_parent_names_both_rules() {
    let agent = format!(
        "{AGENT}rules:\n  - id: bot.cheap\n    when: {{ tool: erp, action: pay, amount: {{ gt: 30000, lt: 40000 }} }}\n    tier: 2\n"
    );
    let e = one_problem(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", &agent)]);
    assert!(e.contains("rule `bot.cheap` sets tier 2 (supervised) where parent rule `fin.pay` already demands tier 3"), "{e}");
    assert!(e.contains("--> p/fin.yaml:4:5"), "{e}");
    // A rule for a different range is fine.
    let agent = format!(
        "{AGENT}rules:\n  - id: bot.small\n    when: {{ tool: erp, action: pay, amount: {{ gt: 100 }} }}\n    tier: 2\n"
    );
    set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", &agent)]);
}

#[test]
fn overlays_may_not_lower_the_base() {
    let overlay = "kind: overlay\nenvironment: dev\nrules:\n  - id: dev.bulk\n    when: { sensitivity: { any_of: [pii] }, records: { gte: 20000 } }\n    tier: 1\n";
    let e = one_problem(&[("org.yaml", BASE), ("dev.yaml", overlay)]);
    assert!(
        e.contains("parent rule `pii.scale` already demands tier 4"),
        "{e}"
    );
}

#[test]
fn a_parent_without_egress_allows_its_children_nothing() {
    let base = BASE.split("egress:").next().unwrap().to_string();
    let team = "kind: team\nname: fin\negress:\n  allow: [10.0.0.1:443]\n";
    let e = one_problem(&[("org.yaml", &base), ("fin.yaml", team)]);
    assert!(
        e.contains("base acme declares no egress allowlist, so its children may allow nothing"),
        "{e}"
    );
}

fn name(text: &str) -> NameRule {
    NameRule::parse(text, crate::egress::Breadth::Strict).unwrap()
}

#[test]
fn name_rules_are_within_when_names_ports_protocols_and_exemptions_are() {
    let cases = [
        ("api.example.com:443", "**.example.com:443", true),
        ("a.b.example.com:443", "**.example.com:443", true),
        ("*.example.com:443", "**.example.com:443", true),
        ("**.eu.example.com:443", "**.example.com:443", true),
        ("**.example.com:443", "**.example.com:443", true),
        ("api.example.com:443", "*.example.com:443", true),
        ("a.b.example.com:443", "*.example.com:443", false),
        ("**.example.com:443", "*.example.com:443", false),
        ("*.eu.example.com:443", "*.example.com:443", false),
        ("example.com:443", "**.example.com:443", false),
        ("api.example.com:443", "api.example.com", true),
        ("api.example.com", "api.example.com:443", false),
        ("api.example.com:8443", "api.example.com:443", false),
        ("api.example.com:853", "api.example.com", false),
        (
            "api.example.com:443,8443",
            "api.example.com:443,8443,9443",
            true,
        ),
        ("api.evil.test:443", "**.example.com:443", false),
    ];
    for (child, parent, within) in cases {
        assert_eq!(
            name_within(&name(child), &name(parent)),
            within,
            "{child} in {parent}"
        );
    }
    let mut private = name("db.example.com:5432");
    private.allow_private = true;
    assert!(!name_within(&private, &name("**.example.com")));
    let mut parent = name("**.example.com");
    parent.allow_private = true;
    assert!(name_within(&private, &parent));
    let mut tcp = name("db.example.com:5432");
    tcp.protocols = Protocols::Tcp;
    assert!(name_within(&tcp, &name("**.example.com")));
    let mut udp_parent = name("**.example.com");
    udp_parent.protocols = Protocols::Udp;
    assert!(!name_within(&tcp, &udp_parent));
}

#[test]
fn egress_names_tighten_down_the_hierarchy_and_reach_the_agent() {
    let base = BASE.replace(
        "egress:\n",
        "egress:\n  names:\n    - \"**.example.com:443\"\n",
    );
    let team = "kind: team\nname: fin\negress:\n  allow: [10.1.0.0/16:443]\n  names:\n    - api.example.com:443\n    - name: ledger.example.com\n      ports: [443]\n      protocol: tcp\n";
    let s = set(&[("org.yaml", &base), ("fin.yaml", team), ("bot.yaml", AGENT)]);
    let names = s.egress_names("bot").unwrap();
    let shown: Vec<String> = names.iter().map(|r| r.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(
        names[1].source.as_ref().unwrap().to_string(),
        "p/fin.yaml: egress.names[2]"
    );
    let wider = "kind: team\nname: fin\negress:\n  allow: [10.1.0.0/16:443]\n  names:\n    - api.example.com\n";
    let e = one_problem(&[
        ("org.yaml", &base),
        ("fin.yaml", wider),
        ("bot.yaml", AGENT),
    ]);
    assert!(
        e.contains("egress name rule `api.example.com` is not within the name rules of its parent"),
        "{e}"
    );
    assert!(e.contains("fin.yaml:"), "{e}");
}
