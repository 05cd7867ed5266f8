use super::*;
use crate::dns::test_support::{addr_record, allowlist, query, response};
use hickory_proto::rr::RecordType;

fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("valid response")
}

fn run(query_msg: &Message, upstream: &[u8], refusal: RefusalMode) -> Option<Message> {
    let list = allowlist(&["api.example.com", "*.example.org"], false, false);
    handle_query_bytes(&list, refusal, &query_msg.to_vec().unwrap(), upstream).map(|b| parse(&b))
}

#[test]
fn denied_name_is_answered_locally_with_the_question_echoed() {
    let q = query("evil.example.net.", RecordType::A);
    let r = run(&q, &[], RefusalMode::NxDomain).expect("answer");
    assert_eq!(r.id(), 0x1234);
    assert_eq!(r.message_type(), MessageType::Response);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert!(r.recursion_available() && r.recursion_desired());
    assert_eq!(r.queries(), q.queries());
    assert!(r.answers().is_empty());
    assert!(r.extensions().is_some(), "EDNS echoed");
    let refused = run(&q, &[], RefusalMode::Refused).unwrap();
    assert_eq!(refused.response_code(), ResponseCode::Refused);
}

#[test]
fn allowed_name_gets_the_filtered_upstream_answer() {
    let q = query("api.example.com.", RecordType::A);
    let upstream = response(
        &q,
        ResponseCode::NoError,
        vec![
            addr_record("api.example.com.", "203.0.113.7", 60),
            addr_record("api.example.com.", "10.0.0.5", 60),
        ],
    );
    let r = run(&q, &upstream.to_vec().unwrap(), RefusalMode::NxDomain).unwrap();
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert_eq!(r.answers().len(), 1);
    assert_eq!(
        r.answers()[0].data(),
        &hickory_proto::rr::RData::A("203.0.113.7".parse().unwrap())
    );
}

#[test]
fn unusable_upstream_answers_give_servfail() {
    let q = query("api.example.com.", RecordType::A);
    let servfail = response(&q, ResponseCode::ServFail, vec![])
        .to_vec()
        .unwrap();
    for upstream in [servfail.as_slice(), b"garbage".as_slice(), &[]] {
        let r = run(&q, upstream, RefusalMode::NxDomain).unwrap();
        assert_eq!(r.response_code(), ResponseCode::ServFail);
    }
}

#[test]
fn unreadable_packets_are_dropped_and_readable_headers_get_formerr() {
    let list = allowlist(&["api.example.com"], false, false);
    let mut bad = query("api.example.com.", RecordType::A).to_vec().unwrap();
    bad.truncate(bad.len() - 3);
    let formerr =
        parse(&handle_query_bytes(&list, RefusalMode::NxDomain, &bad, &[]).expect("formerr"));
    assert_eq!(formerr.response_code(), ResponseCode::FormErr);
    assert_eq!(formerr.id(), 0x1234);
    for dropped in [&b""[..], &[0x12, 0x34, 1], &[0u8; 11]] {
        assert_eq!(
            handle_query_bytes(&list, RefusalMode::NxDomain, dropped, &[]),
            None
        );
    }
    // A response sent to the server is never answered.
    let mut reflected = query("api.example.com.", RecordType::A);
    reflected.set_message_type(MessageType::Response);
    assert_eq!(
        handle_query_bytes(
            &list,
            RefusalMode::NxDomain,
            &reflected.to_vec().unwrap(),
            &[]
        ),
        None
    );
    let mut garbage_response = [0xffu8; 20];
    garbage_response[2] = 0x80;
    assert_eq!(
        handle_query_bytes(&list, RefusalMode::NxDomain, &garbage_response, &[]),
        None
    );
}

#[test]
fn oversized_udp_answers_are_truncated() {
    let mut q = query("api.example.com.", RecordType::A);
    q.set_edns(Edns::new()); // max payload defaults to 512 in a fresh Edns? use explicit:
    q.extensions_mut().as_mut().unwrap().set_max_payload(512);
    let many: Vec<_> = (0..60)
        .map(|i| addr_record("api.example.com.", &format!("203.0.113.{i}"), 60))
        .collect();
    let upstream = response(&q, ResponseCode::NoError, many).to_vec().unwrap();
    let r = run(&q, &upstream, RefusalMode::NxDomain).unwrap();
    assert!(r.truncated());
    assert!(r.answers().is_empty());
    // Over TCP the same answer fits.
    let list = allowlist(&["api.example.com"], false, false);
    let policy = Policy {
        allowlist: &list,
        refusal: RefusalMode::NxDomain,
        max_ttl: 300,
    };
    let Step::Forward(pending) = begin(&policy, &q.to_vec().unwrap(), true) else {
        panic!("forwarded")
    };
    let (reply, _) = finish(&policy, &pending, &parse(&upstream));
    let r = parse(&reply.bytes.unwrap());
    assert!(!r.truncated());
    assert_eq!(r.answers().len(), 60);
}

#[test]
fn outcome_reports_rule_addresses_and_rebinding() {
    let list: NameAllowlist = [NameRule {
        source: Some(crate::egress::RuleSource::Flag(3)),
        ..NameRule::parse("*.example.org:443", crate::egress::Breadth::Strict).unwrap()
    }]
    .into_iter()
    .collect();
    let policy = Policy {
        allowlist: &list,
        refusal: RefusalMode::NxDomain,
        max_ttl: 300,
    };
    let q = query("www.example.org.", RecordType::A);
    let Step::Forward(pending) = begin(&policy, &q.to_vec().unwrap(), false) else {
        panic!("forwarded")
    };
    let upstream = response(
        &q,
        ResponseCode::NoError,
        vec![
            addr_record("www.example.org.", "203.0.113.7", 60),
            addr_record("www.example.org.", "127.0.0.1", 60),
        ],
    );
    let (reply, _) = finish(&policy, &pending, &upstream);
    assert_eq!(reply.outcome.decision, DnsDecision::RebindingDropped);
    assert_eq!(
        reply.outcome.rule.as_deref(),
        Some("*.example.org:443 (--allow #3)")
    );
    assert_eq!(
        reply.outcome.kept,
        vec![("203.0.113.7".parse().unwrap(), 60)]
    );
    assert_eq!(reply.outcome.ttl, Some(60));
    let failed = upstream_failed(&pending);
    assert_eq!(failed.outcome.decision, DnsDecision::UpstreamError);
}

#[test]
fn fuzz_input_split_and_join_round_trip() {
    let data = join_fuzz_input(b"query", b"answer");
    assert_eq!(split_fuzz_input(&data), (&b"query"[..], &b"answer"[..]));
    assert_eq!(
        split_fuzz_input(&[0xff, 0xff, 1, 2]),
        (&[1u8, 2][..], &[][..])
    );
    assert_eq!(split_fuzz_input(&[7]), (&[7u8][..], &[][..]));
    let q = query("x.wild.test.", RecordType::A);
    let up = response(
        &q,
        ResponseCode::NoError,
        vec![addr_record("x.wild.test.", "203.0.113.1", 5)],
    );
    let [nx, refused] = handle_fuzz_input(&join_fuzz_input(
        &q.to_vec().unwrap(),
        &up.to_vec().unwrap(),
    ));
    assert_eq!(parse(&nx.unwrap()).answers().len(), 1);
    assert_eq!(parse(&refused.unwrap()).answers().len(), 1);
}
