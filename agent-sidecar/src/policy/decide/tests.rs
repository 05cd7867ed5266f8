use proptest::prelude::*;

use super::*;
use crate::policy::{
    action::{AgentIdentity, Attributes, Money},
    test_support::{AGENT, BASE, TEAM, action, compile, set},
};

fn money(v: f64) -> Option<Money> {
    Some(Money {
        value: v,
        currency: None,
    })
}

fn pay(amount: f64) -> Attributes {
    Attributes {
        amount: money(amount),
        ..Default::default()
    }
}

fn ids(d: &Decision) -> Vec<&str> {
    d.rules.iter().map(|r| r.id.as_ref()).collect()
}

#[test]
fn the_highest_tier_of_any_dimension_wins() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let d = s.decide(&action("bot", "prod", "erp", "pay", pay(100.0)));
    assert_eq!(d.tier, Tier::Autonomous, "{}", d.reason);
    let d = s.decide(&action("bot", "prod", "erp", "pay", pay(2_000.0)));
    assert_eq!((d.tier, ids(&d)), (Tier::Supervised, vec!["pay.medium"]));
    // The team's threshold is lower than the base's.
    let d = s.decide(&action("bot", "prod", "erp", "pay", pay(30_000.0)));
    assert_eq!((d.tier, ids(&d)), (Tier::Approval, vec!["fin.pay"]));
    let d = s.decide(&action("bot", "prod", "erp", "pay", pay(60_000.0)));
    assert_eq!(
        (d.tier, ids(&d)),
        (Tier::Approval, vec!["pay.large", "fin.pay"])
    );
    // $200 touching 50,000 customer records is not tier 1.
    let bulk = Attributes {
        amount: money(200.0),
        records: Some(50_000),
        ..Default::default()
    };
    let d = s.decide(&action("bot", "prod", "crm", "export", bulk));
    assert_eq!((d.tier, ids(&d)), (Tier::Halt, vec!["pii.scale"]));
    assert!(
        d.reason.contains("records >= 10000 (is 50000)"),
        "{}",
        d.reason
    );
}

#[test]
fn unknown_things_fall_to_the_default_tier() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let cases = [
        (
            action("bot", "prod", "mail", "send", Attributes::default()),
            "tool `mail` is not declared",
        ),
        (
            action("bot", "prod", "erp", "delete", Attributes::default()),
            "tool `erp` has no action `delete`",
        ),
        (
            action("ghost", "prod", "erp", "read", Attributes::default()),
            "agent `ghost` is not declared",
        ),
        (
            action("bot", "qa", "erp", "read", Attributes::default()),
            "environment `qa` is not one of [dev, staging, prod]",
        ),
    ];
    for (a, why) in cases {
        let d = s.decide(&a);
        assert_eq!(d.tier, Tier::Approval, "{why}: {}", d.reason);
        assert_eq!(ids(&d), ["defaults.unknown"], "{why}");
        assert!(d.reason.contains(why), "{}", d.reason);
        assert_eq!(d.rules[0].level.as_ref(), "built-in");
    }
}

#[test]
fn the_default_tier_is_configurable() {
    let base = BASE.replace(
        "label: test-1\n",
        "label: test-1\ndefaults: { unknown: 4, action: 2 }\n",
    );
    let s = set(&[("org.yaml", &base)]);
    let d = s.decide(&action(
        "anyone",
        "prod",
        "erp",
        "read",
        Attributes::default(),
    ));
    assert_eq!(d.tier, Tier::Halt);
    assert_eq!(d.rules[0].source.as_ref(), "p/org.yaml:5:22");
    // `read` sets tier 1 itself, but `defaults.action` is a floor for every action.
    let s2 = set(&[
        ("org.yaml", &base),
        ("bot.yaml", "kind: agent\nid: bot\nowner: o\npurpose: p\n"),
    ]);
    let d = s2.decide(&action("bot", "prod", "erp", "read", Attributes::default()));
    assert_eq!(
        (d.tier, ids(&d)),
        (Tier::Supervised, vec!["defaults.action"])
    );
}

#[test]
fn missing_declared_attributes_fail_closed() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let d = s.decide(&action("bot", "prod", "erp", "pay", Attributes::default()));
    assert_eq!(
        (d.tier, ids(&d)),
        (Tier::Approval, vec!["defaults.missing_attribute"])
    );
    assert!(
        d.reason.contains("missing from the request: amount"),
        "{}",
        d.reason
    );
    // `records` has a declared default, `reversibility` a constant: not missing.
    assert!(!d.reason.contains("records"), "{}", d.reason);
}

#[test]
fn deny_ranks_above_tier_four() {
    let agent = format!(
        "{AGENT}rules:\n  - id: bot.no-export\n    when: {{ tool: crm, action: export }}\n    tier: deny\n"
    );
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", &agent)]);
    let bulk = Attributes {
        records: Some(50_000),
        ..Default::default()
    };
    let d = s.decide(&action("bot", "prod", "crm", "export", bulk));
    assert_eq!((d.tier, ids(&d)), (Tier::Deny, vec!["bot.no-export"]));
}

#[test]
fn overlays_apply_in_their_environment_only() {
    let overlay = "kind: overlay\nenvironment: prod\ndefaults: { missing_attribute: 4 }\nrules:\n  - id: prod.pay\n    when: { tool: erp, action: pay }\n    tier: 2\n";
    let s = set(&[("org.yaml", BASE), ("prod.yaml", overlay)]);
    let d = s.decide(&action("x", "prod", "erp", "pay", pay(10.0)));
    assert!(
        ids(&d).contains(&"defaults.unknown"),
        "unknown agent: {}",
        d.reason
    );
    let bot = "kind: agent\nid: bot\nowner: o\npurpose: p\n";
    let s = set(&[
        ("org.yaml", BASE),
        ("prod.yaml", overlay),
        ("bot.yaml", bot),
    ]);
    assert_eq!(
        s.decide(&action("bot", "prod", "erp", "pay", pay(10.0)))
            .tier,
        Tier::Supervised
    );
    assert_eq!(
        s.decide(&action("bot", "dev", "erp", "pay", pay(10.0)))
            .tier,
        Tier::Autonomous
    );
    let d = s.decide(&action("bot", "prod", "erp", "pay", Attributes::default()));
    assert_eq!(
        (d.tier, d.rules[0].level.as_ref()),
        (Tier::Halt, "overlay prod")
    );
}

#[test]
fn decisions_serialize_for_the_audit_record() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let d = s.decide(&action("bot", "prod", "erp", "pay", pay(30_000.0)));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["tier"], 3);
    assert_eq!(json["rules"][0]["id"], "fin.pay");
    assert_eq!(json["rules"][0]["level"], "team fin");
    assert_eq!(json["rules"][0]["source"], "p/fin.yaml:4:5");
    assert_eq!(json["policy_version"]["label"], "test-1");
    assert_eq!(json["policy_version"]["hash"].as_str().unwrap().len(), 64);
    let back: Decision = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

fn attributes() -> impl Strategy<Value = Attributes> {
    (
        proptest::option::of(-1_000.0..200_000.0f64),
        proptest::option::of(0u64..100_000),
        proptest::option::of(proptest::sample::subsequence(
            vec!["pii", "public", "secret"],
            0..3,
        )),
    )
        .prop_map(|(amount, records, sens)| Attributes {
            amount: amount.and_then(money),
            records,
            sensitivity: sens.map(|v| v.into_iter().map(str::to_string).collect()),
            ..Default::default()
        })
}

fn actions() -> impl Strategy<Value = Action> {
    (
        proptest::sample::select(vec!["bot", "ghost"]),
        proptest::sample::select(vec!["prod", "dev", "qa"]),
        proptest::sample::select(vec![
            ("erp", "pay"),
            ("erp", "read"),
            ("crm", "export"),
            ("erp", "nope"),
            ("x", "y"),
        ]),
        attributes(),
    )
        .prop_map(|(agent, env, (tool, act), attrs)| action(agent, env, tool, act, attrs))
}

/// A random team document: rules on the ERP payment and the CRM export
/// with random thresholds and tiers, random defaults, sometimes an override.
fn child_team() -> impl Strategy<Value = String> {
    let tier = proptest::sample::select(vec!["1", "2", "3", "4", "deny"]);
    let rule = (
        proptest::sample::select(vec![
            "{ tool: erp, action: pay, amount: { gt: T } }",
            "{ amount: { gte: T } }",
            "{ records: { gte: T } }",
            "{ tool: crm }",
        ]),
        0u32..100_000,
        tier.clone(),
        proptest::bool::ANY,
    );
    (
        proptest::collection::vec(rule, 0..5),
        proptest::option::of(tier.clone()),
        proptest::option::of(tier),
    )
        .prop_map(|(rules, unknown, missing)| {
            let mut t = String::from("kind: team\nname: fin\ndefaults:\n");
            if let Some(u) = unknown {
                t.push_str(&format!("  unknown: {u}\n"));
            }
            if let Some(m) = missing {
                t.push_str(&format!("  missing_attribute: {m}\n"));
            }
            t.push_str("rules:\n");
            for (i, (when, threshold, tier, override_large)) in rules.into_iter().enumerate() {
                t.push_str(&format!(
                    "  - id: r{i}\n    when: {}\n    tier: {tier}\n",
                    when.replace('T', &threshold.to_string())
                ));
                if override_large && when.contains("action: pay") {
                    t.push_str("    overrides: pay.large\n");
                }
            }
            t
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever a child document says, if the set compiles, no action is
    /// decided lower than without the child's rules and defaults.
    #[test]
    fn no_child_lowers_a_tier(team in child_team(), actions in proptest::collection::vec(actions(), 16)) {
        let parent = set(&[("org.yaml", BASE), ("fin.yaml", "kind: team\nname: fin\n"), ("bot.yaml", AGENT)]);
        if let Ok(child) = compile(&[("org.yaml", BASE), ("fin.yaml", &team), ("bot.yaml", AGENT)]) {
            for a in &actions {
                let (p, c) = (parent.decide(a), child.decide(a));
                prop_assert!(c.tier >= p.tier, "{team}\n{a:?}\nparent: {}\nchild: {}", p.reason, c.reason);
            }
        }
    }

    /// The same action always gets the same decision, from the same set and
    /// from a set compiled again from the same files.
    #[test]
    fn decisions_are_deterministic(a in actions()) {
        let files = [("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)];
        let (s1, s2) = (set(&files), set(&files));
        let d = s1.decide(&a);
        prop_assert_eq!(&d, &s1.decide(&a));
        prop_assert_eq!(&d, &s2.decide(&a));
        prop_assert_eq!(d, s1.explain(&a).decision);
    }
}

#[test]
fn an_identity_is_filled_from_the_set() {
    let s = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    assert_eq!(
        s.identity("bot", "prod"),
        AgentIdentity {
            id: "bot".into(),
            environment: "prod".into(),
            owner: Some("jane@acme.example".into()),
            team: Some("fin".into()),
            purpose: Some("pays vendors".into()),
        }
    );
    assert_eq!(s.identity("ghost", "dev").owner, None);
}
