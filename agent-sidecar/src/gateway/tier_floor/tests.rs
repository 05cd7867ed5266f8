use std::sync::Arc;

use super::*;
use crate::policy::PolicyVersion;

fn decision(tier: Tier) -> Decision {
    Decision {
        tier,
        rules: vec![DecidingRule {
            id: "r1".into(),
            level: "base acme".into(),
            source: "base.yaml:1:1".into(),
        }],
        policy_version: PolicyVersion {
            hash: Arc::from("0".repeat(64)),
            label: "t".into(),
        },
        reason: "rule r1".into(),
        quarantine: false,
    }
}

#[test]
fn a_floor_raises_lower_tiers_until_it_ends() {
    let f = TierFloor::default();
    assert_eq!(f.apply(decision(Tier::Autonomous)).tier, Tier::Autonomous);
    f.raise(Tier::Approval, now_ms() + 60_000, "new_tool alert alr_1");
    let d = f.apply(decision(Tier::Autonomous));
    assert_eq!(d.tier, Tier::Approval);
    assert_eq!(&*d.rules[0].id, FLOOR_RULE);
    assert!(d.reason.contains("alr_1"), "{}", d.reason);
    // A stricter decision stands.
    assert_eq!(f.apply(decision(Tier::Halt)).tier, Tier::Halt);
    assert_eq!(&*f.apply(decision(Tier::Halt)).rules[0].id, "r1");
    // A lower floor raised later does not loosen it.
    f.raise(Tier::Supervised, now_ms() + 1, "other");
    assert_eq!(f.apply(decision(Tier::Autonomous)).tier, Tier::Approval);
}

#[test]
fn an_ended_floor_changes_nothing() {
    let f = TierFloor::default();
    f.raise(Tier::Approval, now_ms().saturating_sub(1), "old");
    assert_eq!(f.apply(decision(Tier::Autonomous)).tier, Tier::Autonomous);
    assert!(f.current().is_none());
}
