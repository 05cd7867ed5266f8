use super::*;

#[test]
fn formats_fixed_width_utc_with_nanoseconds() {
    assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000000Z");
    let t = Timestamp(1_709_210_096_789_000_001);
    assert_eq!(t.to_rfc3339(), "2024-02-29T12:34:56.789000001Z");
    assert_eq!(t.to_compact(), "20240229T123456.789000001Z");
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        "\"2024-02-29T12:34:56.789000001Z\""
    );
}

#[test]
fn parses_what_it_writes_and_general_rfc3339() {
    for n in [
        0i64,
        1,
        999_999_999,
        1_709_210_096_789_000_001,
        4_102_444_799_999_999_999,
        -86_400_000_000_000,
    ] {
        let t = Timestamp(n);
        assert_eq!(Timestamp::parse(&t.to_rfc3339()), Some(t), "{n}");
        let back: Timestamp = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
    assert_eq!(
        Timestamp::parse("2024-02-29T13:34:56.789+01:00"),
        Some(Timestamp(1_709_210_096_789_000_000))
    );
    assert_eq!(Timestamp::parse("yesterday"), None);
    // Records accept the canonical form only.
    assert!(serde_json::from_str::<Timestamp>("\"2024-02-29T12:34:56Z\"").is_err());
}

#[test]
fn text_order_is_time_order() {
    let a = Timestamp(1_000_000_000_000_000_000).to_rfc3339();
    let b = Timestamp(1_000_000_000_000_000_001).to_rfc3339();
    assert!(a < b);
}

#[test]
fn the_fast_text_matches_the_general_formatter_at_the_extremes() {
    use time::OffsetDateTime;
    for ns in [
        0i64,
        1,
        -1,
        999_999_999,
        1_764_000_000_123_456_789,
        i64::MIN,
        i64::MAX,
    ] {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap();
        let want = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.nanosecond()
        );
        assert_eq!(Timestamp(ns).to_rfc3339(), want);
        assert_eq!(Timestamp::parse(&want), Some(Timestamp(ns)));
    }
}
