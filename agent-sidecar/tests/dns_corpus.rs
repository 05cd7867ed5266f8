//! The DNS fuzz target's seed corpus (`fuzz/corpus/dns_query/`) as a
//! regression test: every file runs through the same function as the fuzz
//! target (`dns::handle::handle_fuzz_input`), so CI exercises it without
//! nightly. The generated seeds are checked against the committed files;
//! regenerate them with `DNS_CORPUS_WRITE=1 cargo test -p agent-sidecar --test dns_corpus`.
//! Files found by fuzzing that made the function fail can be added to the
//! directory under any other name and are replayed too.

use std::{net::IpAddr, path::PathBuf, str::FromStr};

use agent_sidecar::dns::handle::{handle_fuzz_input, join_fuzz_input, split_fuzz_input};
use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{
            CNAME, HTTPS, SVCB,
            svcb::{Alpn, EchConfigList, IpHint, SvcParamKey, SvcParamValue},
        },
    },
};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dns_query")
}

fn name(s: &str) -> Name {
    Name::from_str(s).expect(s)
}

fn query(qname: &str, qtype: RecordType, id: u16) -> Message {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(name(qname), qtype));
    m.set_edns(Edns::new());
    m
}

fn answer(q: &Message, records: Vec<Record>) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_response_code(ResponseCode::NoError);
    m.add_queries(q.queries().iter().cloned());
    m.add_answers(records);
    m.to_vec().expect("encode")
}

fn addr(owner: &str, ip: &str) -> Record {
    let rdata = match ip.parse::<IpAddr>().expect(ip) {
        IpAddr::V4(v4) => RData::A(v4.into()),
        IpAddr::V6(v6) => RData::AAAA(v6.into()),
    };
    Record::from_rdata(name(owner), 60, rdata)
}

/// The generated seeds: real queries with upstream answers, refusals and
/// malformed input.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let q = query("allowed.test.", RecordType::A, 1);
    seeds.push((
        "allowed_a",
        join_fuzz_input(
            &q.to_vec().unwrap(),
            &answer(&q, vec![addr("allowed.test.", "203.0.113.1")]),
        ),
    ));
    let q = query("allowed.test.", RecordType::A, 2);
    let rebind = answer(
        &q,
        vec![
            addr("allowed.test.", "10.0.0.5"),
            addr("allowed.test.", "169.254.169.254"),
        ],
    );
    seeds.push(("rebinding", join_fuzz_input(&q.to_vec().unwrap(), &rebind)));
    let q = query("x.wild.test.", RecordType::AAAA, 3);
    let chain = answer(
        &q,
        vec![
            Record::from_rdata(
                name("x.wild.test."),
                60,
                RData::CNAME(CNAME(name("edge.cdn.test."))),
            ),
            addr("edge.cdn.test.", "2001:db8::1"),
            addr("stray.test.", "2001:db8::2"),
        ],
    );
    seeds.push(("cname_chain", join_fuzz_input(&q.to_vec().unwrap(), &chain)));
    let q = query("a.b.deep.test.", RecordType::HTTPS, 4);
    let params = vec![
        (
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(Alpn(vec!["h2".into(), "h3".into()])),
        ),
        (
            SvcParamKey::Ipv4Hint,
            SvcParamValue::Ipv4Hint(IpHint(vec![hickory_proto::rr::rdata::A::new(10, 0, 0, 1)])),
        ),
        (
            SvcParamKey::EchConfigList,
            SvcParamValue::EchConfigList(EchConfigList(vec![0xfe, 0x0d])),
        ),
    ];
    let https = answer(
        &q,
        vec![
            Record::from_rdata(
                name("a.b.deep.test."),
                60,
                RData::HTTPS(HTTPS(SVCB::new(1, name("."), params.clone()))),
            ),
            Record::from_rdata(
                name("a.b.deep.test."),
                60,
                RData::HTTPS(HTTPS(SVCB::new(2, name("evil.test."), params))),
            ),
        ],
    );
    seeds.push(("https_hints", join_fuzz_input(&q.to_vec().unwrap(), &https)));
    let q = query("lan.test.", RecordType::A, 5);
    seeds.push((
        "allow_private",
        join_fuzz_input(
            &q.to_vec().unwrap(),
            &answer(&q, vec![addr("lan.test.", "192.168.1.10")]),
        ),
    ));
    let q = query("denied.example.", RecordType::A, 6);
    seeds.push(("denied", join_fuzz_input(&q.to_vec().unwrap(), &[])));
    let q = query("denied.example.", RecordType::ANY, 7);
    seeds.push(("denied_any", join_fuzz_input(&q.to_vec().unwrap(), &[])));
    let mut q = query("allowed.test.", RecordType::A, 8);
    q.set_op_code(OpCode::Update);
    seeds.push(("not_a_query", join_fuzz_input(&q.to_vec().unwrap(), &[])));
    let q = query("allowed.test.", RecordType::A, 9);
    let mut bytes = q.to_vec().unwrap();
    bytes.truncate(bytes.len() - 4);
    seeds.push(("truncated_question", join_fuzz_input(&bytes, &[])));
    seeds.push(("short_header", join_fuzz_input(&[0x12, 0x34, 0x01], &[])));
    let q = query("allowed.test.", RecordType::A, 10);
    seeds.push((
        "garbage_upstream",
        join_fuzz_input(&q.to_vec().unwrap(), b"\x00\x0a\x81\x80\xff\xff\xff"),
    ));
    seeds
}

#[test]
fn seed_files_match_the_generated_seeds() {
    let dir = corpus_dir();
    let write = std::env::var_os("DNS_CORPUS_WRITE").is_some();
    for (file, bytes) in seeds() {
        let path = dir.join(file);
        if write {
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(&path, &bytes).expect("write seed");
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate with DNS_CORPUS_WRITE=1",
                path.display()
            )
        });
        assert_eq!(
            stored,
            bytes,
            "{} is stale; regenerate with DNS_CORPUS_WRITE=1",
            path.display()
        );
    }
}

#[test]
fn every_corpus_file_gets_a_well_formed_answer_or_none() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let (query, _) = split_fuzz_input(&data);
        for reply in handle_fuzz_input(&data).into_iter().flatten() {
            let message = Message::from_vec(&reply)
                .unwrap_or_else(|e| panic!("{}: reply does not parse: {e}", path.display()));
            assert_eq!(
                message.message_type(),
                MessageType::Response,
                "{}",
                path.display()
            );
            assert_eq!(
                &reply[..2],
                &query[..2],
                "{}: reply keeps the query id",
                path.display()
            );
        }
        count += 1;
    }
    assert!(count >= seeds().len(), "only {count} corpus files");
}

#[test]
fn seeds_get_the_documented_answers() {
    let rcode = |file: &str| {
        let data = std::fs::read(corpus_dir().join(file)).expect(file);
        handle_fuzz_input(&data)[0]
            .as_ref()
            .map(|b| Message::from_vec(b).expect("parse"))
    };
    let allowed = rcode("allowed_a").expect("answer");
    assert_eq!(allowed.answers().len(), 1);
    let rebinding = rcode("rebinding").expect("answer");
    assert_eq!(
        (rebinding.response_code(), rebinding.answers().len()),
        (ResponseCode::NoError, 0)
    );
    assert_eq!(rcode("allow_private").expect("answer").answers().len(), 1);
    let https = rcode("https_hints").expect("answer");
    assert_eq!(https.answers().len(), 1, "unlisted target dropped");
    assert_eq!(
        rcode("denied").expect("answer").response_code(),
        ResponseCode::NXDomain
    );
    assert_eq!(
        rcode("denied_any").expect("answer").response_code(),
        ResponseCode::Refused
    );
    assert_eq!(
        rcode("not_a_query").expect("answer").response_code(),
        ResponseCode::NotImp
    );
    assert_eq!(
        rcode("truncated_question").expect("answer").response_code(),
        ResponseCode::FormErr
    );
    assert!(rcode("short_header").is_none());
    assert_eq!(
        rcode("garbage_upstream").expect("answer").response_code(),
        ResponseCode::ServFail
    );
    assert_eq!(rcode("cname_chain").expect("answer").answers().len(), 2);
}
