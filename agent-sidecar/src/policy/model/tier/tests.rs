use super::*;

#[test]
fn order_is_least_to_most_restrictive() {
    let mut sorted = Tier::ALL;
    sorted.sort();
    assert_eq!(sorted, Tier::ALL);
    assert!(Tier::Deny > Tier::Halt);
    assert_eq!(Tier::Approval.max(Tier::Supervised), Tier::Approval);
}

#[test]
fn yaml_and_json_forms_round_trip() {
    for t in Tier::ALL {
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Tier>(&json).unwrap(), t);
        let yaml = serde_saphyr::to_string(&t).unwrap();
        assert_eq!(crate::yaml::from_str::<Tier>(&yaml).unwrap(), t);
    }
    assert_eq!(serde_json::to_string(&Tier::Approval).unwrap(), "3");
    assert_eq!(serde_json::to_string(&Tier::Deny).unwrap(), "\"deny\"");
    assert_eq!(
        crate::yaml::from_str::<Tier>("'2'").unwrap(),
        Tier::Supervised
    );
}

#[test]
fn bad_tiers_say_what_is_allowed() {
    for bad in ["0", "5", "-1", "block", "2.5"] {
        let e = crate::yaml::from_str::<Tier>(bad).unwrap_err().to_string();
        assert!(e.contains("1, 2, 3, 4 or deny"), "{bad}: {e}");
    }
}

#[test]
fn display_names_the_tier() {
    assert_eq!(Tier::Approval.to_string(), "tier 3 (approval required)");
    assert_eq!(Tier::Deny.to_string(), "deny");
}
