use super::*;
use std::time::Duration;

#[test]
fn rfc3339_formats_utc() {
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
    assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
    let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
    assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000Z");
}

#[test]
fn event_serialises_with_snake_case_decision() {
    let event = DnsEvent {
        time: rfc3339(UNIX_EPOCH),
        agent_id: "agent-1".into(),
        client: "127.0.0.1:5353".parse().unwrap(),
        transport: Transport::Udp,
        qname: Some("api.example.com".into()),
        qtype: Some("A".into()),
        decision: DnsDecision::RebindingDropped,
        reason: None,
        rcode: Some("NoError".into()),
        rule: Some("*.example.com".into()),
        answers: vec![],
        dropped: vec![DroppedAddress {
            addr: "10.0.0.5".parse().unwrap(),
            range: BlockedRange::Private,
        }],
        ttl: Some(60),
        cached: false,
        upstream: Some("127.0.0.1:53".into()),
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["decision"], "rebinding_dropped");
    assert_eq!(json["transport"], "udp");
    assert_eq!(json["dropped"][0]["range"], "private");
    assert_eq!(json["dropped"][0]["addr"], "10.0.0.5");
    let seen = std::sync::Mutex::new(Vec::new());
    let sink = |e: &DnsEvent| seen.lock().unwrap().push(e.decision);
    sink.event(&event);
    assert_eq!(*seen.lock().unwrap(), vec![DnsDecision::RebindingDropped]);
}

#[test]
fn decision_labels_are_distinct() {
    let labels: std::collections::HashSet<_> =
        DnsDecision::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(labels.len(), DnsDecision::ALL.len());
}
