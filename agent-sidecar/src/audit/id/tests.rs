use super::*;

#[test]
fn ids_are_uuid_v7_with_the_time_in_front() {
    let mut rng = rand::rng();
    let t = Timestamp(1_700_000_000_123_456_789);
    let id = record_id(t, &mut rng);
    assert_eq!(id.len(), 36);
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    // 1_700_000_000_123 ms = 0x018bcfe5687b.
    assert_eq!(format!("{}{}", parts[0], parts[1]), "018bcfe5687b");
    assert!(parts[2].starts_with('7'), "version 7: {id}");
    assert!(
        matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
        "variant: {id}"
    );
    assert_ne!(record_id(t, &mut rng), id);
}
