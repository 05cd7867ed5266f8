use super::*;
use crate::dns::test_support::{addr_record, query, response};
use hickory_proto::rr::RecordType;

fn question(name: &str, qtype: RecordType) -> Question {
    Question::of(&query(name, qtype)).unwrap()
}

#[test]
fn upstream_query_carries_only_the_question() {
    let q = question("Api.Example.com.", RecordType::AAAA);
    let m = upstream_query(7, &q);
    assert_eq!(m.id(), 7);
    assert!(m.recursion_desired());
    assert_eq!(m.queries().len(), 1);
    assert!(
        m.queries()[0]
            .name()
            .to_ascii()
            .eq_ignore_ascii_case("api.example.com.")
    );
    assert_eq!(
        m.extensions().as_ref().map(|e| e.max_payload()),
        Some(MAX_UDP_PAYLOAD)
    );
    assert!(
        m.extensions()
            .as_ref()
            .is_some_and(|e| e.options().as_ref().is_empty())
    );
}

#[test]
fn answers_must_match_id_and_question() {
    let q = question("api.example.com.", RecordType::A);
    let sent = upstream_query(42, &q);
    let good = response(
        &sent,
        ResponseCode::NoError,
        vec![addr_record("api.example.com.", "203.0.113.1", 5)],
    );
    assert!(answer_to(&good.to_vec().unwrap(), 42, &q).is_some());
    assert!(
        answer_to(&good.to_vec().unwrap(), 43, &q).is_none(),
        "wrong id"
    );
    let other = question("evil.example.com.", RecordType::A);
    assert!(
        answer_to(&good.to_vec().unwrap(), 42, &other).is_none(),
        "wrong name"
    );
    let aaaa = question("api.example.com.", RecordType::AAAA);
    assert!(
        answer_to(&good.to_vec().unwrap(), 42, &aaaa).is_none(),
        "wrong type"
    );
    let mut case = good.clone();
    case.queries_mut()[0].set_name(crate::dns::test_support::name("API.EXAMPLE.COM."));
    assert!(
        answer_to(&case.to_vec().unwrap(), 42, &q).is_some(),
        "0x20 case differences are fine"
    );
    assert!(
        answer_to(&sent.to_vec().unwrap(), 42, &q).is_none(),
        "a query is not an answer"
    );
    assert!(answer_to(b"junk", 42, &q).is_none());
}

#[tokio::test]
async fn silent_and_missing_servers_give_the_last_error() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let up = UpstreamResolvers::new(vec![addr], Duration::from_millis(50), 2);
    let started = Instant::now();
    let err = up
        .resolve(&question("a.test.", RecordType::A))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "two rounds"
    );
    let none = UpstreamResolvers::new(vec![], Duration::from_millis(50), 1);
    assert!(matches!(
        none.resolve(&question("a.test.", RecordType::A)).await,
        Err(UpstreamError::NoServer)
    ));
}

#[test]
fn tcp_codec_bounds_frames() {
    use tokio_util::codec::Decoder as _;
    let mut codec = dns_tcp_codec(16);
    let mut buf = bytes::BytesMut::from(&[0u8, 17][..]);
    buf.extend_from_slice(&[0u8; 17]);
    assert!(codec.decode(&mut buf).is_err(), "over the limit");
    let mut codec = dns_tcp_codec(16);
    let mut buf = bytes::BytesMut::from(&[0u8, 3, 1, 2, 3][..]);
    assert_eq!(
        codec.decode(&mut buf).unwrap().unwrap().as_ref(),
        &[1, 2, 3]
    );
}
