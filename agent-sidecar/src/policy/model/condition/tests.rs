use super::*;

fn r(lo: Option<(f64, bool)>, hi: Option<(f64, bool)>) -> Range {
    let b = |(value, inclusive)| Bound { value, inclusive };
    Range {
        lo: lo.map(b),
        hi: hi.map(b),
    }
}

#[test]
fn ranges_contain_their_bounds_as_written() {
    let gt500 = r(Some((500.0, false)), None);
    assert!(!gt500.contains(500.0) && gt500.contains(500.01));
    let band = r(Some((500.0, true)), Some((10_000.0, true)));
    assert!(band.contains(500.0) && band.contains(10_000.0) && !band.contains(10_000.5));
    assert!(r(Some((5.0, false)), Some((5.0, true))).is_empty());
    assert!(!r(Some((5.0, true)), Some((5.0, true))).is_empty());
}

#[test]
fn range_within_respects_strictness() {
    let gt25k = r(Some((25_000.0, false)), None);
    let gt50k = r(Some((50_000.0, false)), None);
    let gte50k = r(Some((50_000.0, true)), None);
    assert!(gt50k.within(&gt25k));
    assert!(!gt25k.within(&gt50k));
    assert!(gt50k.within(&gte50k));
    assert!(!gte50k.within(&gt50k));
    assert!(!r(None, Some((1.0, true))).within(&gt25k));
}

/// Every value set over a 4-class universe.
fn universe() -> impl Iterator<Item = u64> {
    0..16u64
}

fn preds() -> Vec<SetPred> {
    (1..16u64)
        .flat_map(|m| [SetPred::Any(m), SetPred::All(m)])
        .collect()
}

#[test]
fn set_implication_is_exact_on_a_small_universe() {
    for a in preds() {
        for b in preds() {
            let truth = universe().all(|v| !a.matches(v) || b.matches(v));
            assert_eq!(a.implies(b), truth, "{a:?} => {b:?}");
        }
    }
}

#[test]
fn conditions_imply_only_within_their_scope() {
    let pay = Condition {
        tool: Some(0),
        action: Some(1),
        amount: Some(r(Some((50_000.0, false)), None)),
        ..Default::default()
    };
    let tool_wide = Condition {
        tool: Some(0),
        amount: Some(r(Some((25_000.0, false)), None)),
        ..Default::default()
    };
    assert!(pay.implies(&tool_wide));
    assert!(!tool_wide.implies(&pay));
    let other_tool = Condition {
        tool: Some(1),
        ..Default::default()
    };
    assert!(!pay.implies(&other_tool));
    assert!(pay.implies(&Condition::default()));
    let with_records = Condition {
        records: Some(r(Some((1.0, true)), None)),
        ..Default::default()
    };
    assert!(
        !pay.implies(&with_records),
        "an untested attribute is not implied"
    );
}

#[test]
fn absent_values_fail_their_tests() {
    let c = Condition {
        records: Some(r(Some((10.0, true)), None)),
        sensitivity: Some(SetPred::Any(1)),
        ..Default::default()
    };
    let mut v = Values {
        records: Some(20.0),
        ..Default::default()
    };
    assert!(!c.matches(&v));
    v.sensitivity = Some(0b11);
    assert!(c.matches(&v));
    assert!(Condition::default().matches(&Values::default()));
}

#[test]
fn numbers_print_without_noise() {
    assert_eq!(num(50_000.0), "50000");
    assert_eq!(num(32_400.000_000_000_004), "32400");
    assert_eq!(num(12.5), "12.5");
    assert_eq!(num(0.126), "0.13");
}
