use std::time::Duration;

use super::*;

#[test]
fn more_specific_documents_override_field_by_field() {
    let base: DetectionSection = crate::yaml::from_str(
        "learning: 3days\ndetectors:\n  new_tool: {response: raise_tier, raise_for: 30m}\n  rate_surge: {threshold: 8}\n",
    )
    .unwrap();
    let agent: DetectionSection =
        crate::yaml::from_str("detectors:\n  new_tool: {response: quarantine}\n").unwrap();
    let mut p = DetectionPolicy::default();
    p.apply(&base);
    p.apply(&agent);
    assert_eq!(p.learning, Duration::from_secs(3 * 86_400));
    let t = p.detector(DetectorKind::NewTool);
    assert_eq!(t.response, Response::Quarantine);
    assert_eq!(t.raise_for, Duration::from_secs(1800));
    assert_eq!(p.detector(DetectorKind::RateSurge).threshold, 8.0);
    assert_eq!(p.detector(DetectorKind::RateSurge).min, 30.0);
}

#[test]
fn unknown_detectors_fields_and_bad_durations_are_refused() {
    for bad in [
        "detectors:\n  rate_spike: {threshold: 3}\n",
        "detectors:\n  rate_surge: {treshold: 3}\n",
        "learning: a week\n",
    ] {
        let r: Result<DetectionSection, _> = crate::yaml::from_str(bad);
        assert!(r.is_err(), "accepted {bad:?}");
    }
}

#[test]
fn negative_or_non_finite_thresholds_keep_the_default() {
    let s: DetectionSection =
        crate::yaml::from_str("detectors:\n  rate_surge: {threshold: -1, min: .nan}\n").unwrap();
    let mut p = DetectionPolicy::default();
    p.apply(&s);
    assert_eq!(p.detector(DetectorKind::RateSurge).threshold, 6.0);
    assert_eq!(p.detector(DetectorKind::RateSurge).min, 30.0);
}
