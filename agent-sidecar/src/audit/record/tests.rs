use super::*;
use crate::audit::{
    hash::leaf_hash,
    store::segment::{peek_link, peek_seq_time},
    test_support::entry,
};

fn record(i: u64) -> AuditRecord {
    AuditRecord::from_entry(
        entry(i),
        i,
        "0190a5f2-8c3e-7a11-9d2b-4b1c0e6f8a90".into(),
        Timestamp(1_780_000_000_123_456_789),
        Hash::default(),
        Retention {
            class: "standard".into(),
            expires_at: Timestamp(1_814_560_000_123_456_789),
        },
    )
}

#[test]
fn the_line_is_serde_json_of_the_fields_in_order_without_whitespace() {
    let r = record(3);
    let line = String::from_utf8(r.to_line()).unwrap();
    assert!(
        line.starts_with(
            "{\"v\":1,\"seq\":3,\"id\":\"0190a5f2-8c3e-7a11-9d2b-4b1c0e6f8a90\",\"time\":\"2026-05-28T20:26:40.123456789Z\",\"prev\":\"0000"
        ),
        "{line}"
    );
    assert!(!line.contains(' ') || line.contains("invoice reconciliation"));
    assert!(!line.contains('\n'));
    let kind = line.find("\"kind\"").unwrap();
    let agent = line.find("\"agent\"").unwrap();
    let retention = line.find("\"retention\"").unwrap();
    assert!(kind < agent && agent < retention);
    assert_eq!(line.as_bytes(), serde_json::to_vec(&r).unwrap());
    assert_eq!(
        peek_seq_time(line.as_bytes()),
        Some((3, Timestamp(1_780_000_000_123_456_789)))
    );
}

#[test]
fn lines_round_trip_byte_for_byte() {
    for i in 0..20 {
        let r = record(i);
        let line = r.to_line();
        let back = AuditRecord::parse(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.to_line(), line);
    }
}

#[test]
fn absent_parts_are_left_out_and_unknown_fields_refused() {
    let mut r = record(0);
    r.trace = None;
    r.input = None;
    r.detail = None;
    let line = String::from_utf8(r.to_line()).unwrap();
    assert!(!line.contains("\"trace\"") && !line.contains("\"input\"") && !line.contains("null"));
    let extra = line.replacen("{\"v\":1,", "{\"v\":1,\"admin\":true,", 1);
    assert!(AuditRecord::parse(extra.as_bytes()).is_err());
    let bad_kind = line.replace("\"tool_call\"", "\"coffee\"");
    assert!(AuditRecord::parse(bad_kind.as_bytes()).is_err());
}

#[test]
fn kinds_serialize_snake_case() {
    for (k, s) in [
        (RecordKind::ToolCall, "tool_call"),
        (RecordKind::ApprovalExpired, "approval_expired"),
        (RecordKind::CompensationTriggered, "compensation_triggered"),
        (RecordKind::KernelDeny, "kernel_deny"),
        (RecordKind::SidecarStopped, "sidecar_stopped"),
        (RecordKind::DetectionResponse, "detection_response"),
    ] {
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{s}\""));
        assert_eq!(k.as_str(), s);
    }
}

#[test]
fn the_chain_prefix_reads_what_a_full_parse_reads_and_nothing_else_passes() {
    for i in 0..20 {
        let mut r = record(i);
        r.prev = leaf_hash(format!("record {i}").as_bytes());
        let line = r.to_line();
        assert_eq!(
            peek_link(&line),
            Some((r.seq, r.prev, r.kind.as_str())),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }
    let line = String::from_utf8(record(7).to_line()).unwrap();
    // Another layout (whitespace, other field order, a cut hash) is not
    // read from the prefix: the verifier parses such lines whole.
    for other in [
        line.replacen("\"seq\":7,", "\"seq\": 7,", 1),
        line.replacen("\"prev\":\"0", "\"prev\":\"", 1),
        line.replacen(",\"kind\":", ",\"kinds\":", 1),
        line[..line.find("\"kind\"").unwrap() + 9].to_string(),
    ] {
        assert_eq!(peek_link(other.as_bytes()), None, "{other}");
    }
}
