use super::*;
use crate::policy::Tier;

fn v(tier: Tier, rules: &[&str]) -> Verdict {
    Verdict {
        tier,
        rules: rules.iter().map(|r| r.to_string()).collect(),
    }
}

#[test]
fn the_report_groups_equal_changes_and_keeps_a_few_examples() {
    let mut r = ShadowReport::new("aaaa", "bbbb");
    let up = Difference {
        active: v(Tier::Autonomous, &["defaults.action"]),
        candidate: v(Tier::Approval, &["pay-over-500"]),
    };
    let renamed = Difference {
        active: v(Tier::Approval, &["old-id"]),
        candidate: v(Tier::Approval, &["new-id"]),
    };
    r.add("r0", "a", None);
    for i in 0..7 {
        r.add(
            &format!("r{}", i + 1),
            if i % 2 == 0 { "a" } else { "b" },
            Some(up.clone()),
        );
    }
    r.add("r9", "c", Some(renamed.clone()));
    let r = r.finish();
    assert_eq!((r.actions, r.differing), (9, 8));
    assert_eq!(r.changes.len(), 2);
    let first = &r.changes[0];
    assert_eq!((first.kind, first.count), ("tier", 7));
    assert_eq!(first.agents.get("a"), Some(&4));
    assert_eq!(first.agents.get("b"), Some(&3));
    assert_eq!(first.examples, ["r1", "r2", "r3", "r4", "r5"]);
    assert_eq!((r.changes[1].kind, r.changes[1].count), ("rules", 1));
    let text = r.to_string();
    assert!(
        text.contains("tier x7: tier 1 [defaults.action] -> tier 3 [pay-over-500]"),
        "{text}"
    );
    assert!(text.contains("9 actions decided, 8 would differ"), "{text}");
}
