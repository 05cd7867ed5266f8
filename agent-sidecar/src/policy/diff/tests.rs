use super::*;
use crate::policy::test_support::{AGENT, BASE, TEAM, set};

#[test]
fn rule_level_changes_are_listed() {
    let old = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let team = TEAM
        .replace("tier: 3", "tier: 4")
        .replace("name: fin\n", "name: fin\ndefaults: { unknown: 4 }\n")
        + "  - id: fin.bulk\n    when: { records: { gte: 500 } }\n    tier: 3\n";
    let base = BASE.replace("label: test-1", "label: test-2");
    let new = set(&[
        ("org.yaml", &base),
        ("fin.yaml", &team),
        ("bot.yaml", AGENT),
    ]);
    let d = diff(&old, &new);
    let items: Vec<(&str, &str)> = d
        .changes
        .iter()
        .map(|c| match c {
            Change::Added { item, .. } => ("+", item.as_str()),
            Change::Removed { item, .. } => ("-", item.as_str()),
            Change::Changed { item, .. } => ("~", item.as_str()),
        })
        .collect();
    assert_eq!(
        items,
        [
            ("+", "defaults.unknown of team fin"),
            ("~", "label"),
            ("+", "rule fin.bulk"),
            ("~", "rule fin.pay"),
        ]
    );
    let text = d.to_string();
    assert!(text.contains("~ rule fin.pay  [p/fin.yaml:5:5]\n    - tier 3 (approval required) when action erp.pay, amount > 25000 USD (team fin)\n    + tier 4"), "{text}");
    assert!(text.ends_with("2 added, 0 removed, 2 changed\n"), "{text}");
    let back = diff(&new, &old);
    assert_eq!(back.changes.len(), 4);
    assert!(back.to_string().contains("- rule fin.bulk"), "{back}");
}

#[test]
fn moving_a_rule_within_its_file_is_no_change() {
    let old = set(&[("org.yaml", BASE)]);
    let new = set(&[("org.yaml", &format!("# a comment\n\n{BASE}"))]);
    assert_ne!(old.version().hash, new.version().hash);
    let d = diff(&old, &new);
    assert!(d.is_empty(), "{d}");
    assert!(d.to_string().contains("no rule-level changes"));
}

#[test]
fn a_changed_redaction_changes_the_action() {
    let old = set(&[("org.yaml", BASE), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let base = BASE.replace(
        "    http: { host: erp.example }\n",
        "    http: { host: erp.example }\n    redact: { body: { /iban: hash } }\n",
    );
    assert_ne!(base, BASE, "the fixture has the erp tool");
    let new = set(&[("org.yaml", &base), ("fin.yaml", TEAM), ("bot.yaml", AGENT)]);
    let d = diff(&old, &new);
    let text = d.to_string();
    assert!(
        text.contains("~ action erp.pay") && text.contains("redact [body /iban hash]"),
        "{text}"
    );
    // Attribute sources alone are no redaction entry.
    assert!(!diff(&old, &old).to_string().contains("redact ["));
}
