use super::*;
use crate::dns::test_support::{
    addr_record, allowlist, cname_record, name, query, response, soa_record,
};
use hickory_proto::rr::rdata::svcb::{Alpn, EchConfigList, IpHint};
use hickory_proto::rr::rdata::{A, AAAA};

fn run(list: &NameAllowlist, qname: &str, qtype: RecordType, answers: Vec<Record>) -> Filtered {
    let q = query(qname, qtype);
    let question = Question::of(&q).unwrap();
    let rule = list.find(&question.canonical).expect("allowlisted").clone();
    filter(
        &response(&q, ResponseCode::NoError, answers),
        &question,
        &rule,
        list,
        300,
    )
}

fn ips(f: &Filtered) -> Vec<String> {
    f.kept.iter().map(|(ip, _)| ip.to_string()).collect()
}

#[test]
fn public_addresses_pass_and_ttls_are_capped() {
    let list = allowlist(&["api.example.com"], false, false);
    let f = run(
        &list,
        "api.example.com.",
        RecordType::A,
        vec![
            addr_record("api.example.com.", "203.0.113.7", 86_400),
            addr_record("api.example.com.", "203.0.113.8", 30),
        ],
    );
    assert_eq!(ips(&f), ["203.0.113.7", "203.0.113.8"]);
    assert_eq!(f.kept[0].1, 300);
    assert_eq!(f.cache_ttl(), Some(30));
    assert!(f.dropped.is_empty());
}

#[test]
fn rebinding_guard_drops_internal_addresses_unless_allowed() {
    let answers = || {
        vec![
            addr_record("api.example.com.", "10.0.0.5", 60),
            addr_record("api.example.com.", "169.254.169.254", 60),
            addr_record("api.example.com.", "203.0.113.7", 60),
        ]
    };
    let strict = allowlist(&["api.example.com"], false, false);
    let f = run(&strict, "api.example.com.", RecordType::A, answers());
    assert_eq!(ips(&f), ["203.0.113.7"]);
    assert_eq!(
        f.dropped,
        vec![
            ("10.0.0.5".parse().unwrap(), BlockedRange::Private),
            ("169.254.169.254".parse().unwrap(), BlockedRange::Metadata),
        ]
    );
    let exempt = allowlist(&["api.example.com"], true, false);
    let f = run(&exempt, "api.example.com.", RecordType::A, answers());
    assert_eq!(f.kept.len(), 3);
    assert!(f.dropped.is_empty());
}

#[test]
fn all_addresses_dropped_leaves_an_empty_noerror_with_the_cnames() {
    let list = allowlist(&["api.example.com"], false, false);
    let f = run(
        &list,
        "api.example.com.",
        RecordType::AAAA,
        vec![
            cname_record("api.example.com.", "edge.cdn.test.", 60),
            addr_record("edge.cdn.test.", "::ffff:127.0.0.1", 60),
            addr_record("edge.cdn.test.", "fd00:ec2::254", 60),
        ],
    );
    assert_eq!(f.rcode, ResponseCode::NoError);
    assert!(f.kept.is_empty());
    assert_eq!(f.dropped.len(), 2);
    assert_eq!(f.answers.len(), 1);
    assert_eq!(f.answers[0].record_type(), RecordType::CNAME);
}

#[test]
fn cname_chain_to_unlisted_cdn_is_followed_and_strays_are_dropped() {
    let list = allowlist(&["www.example.com"], false, false);
    let f = run(
        &list,
        "www.example.com.",
        RecordType::A,
        vec![
            cname_record("www.example.com.", "www.example.com.cdn.test.", 60),
            cname_record("www.example.com.cdn.test.", "edge7.cdn.test.", 60),
            addr_record("edge7.cdn.test.", "203.0.113.9", 20),
            // Not in the chain: an injected record for another name.
            addr_record("bank.example.net.", "203.0.113.66", 60),
            // Wrong type for the question.
            addr_record("edge7.cdn.test.", "2001:db8::9", 60),
        ],
    );
    assert_eq!(ips(&f), ["203.0.113.9"]);
    assert_eq!(f.answers.len(), 3);
    assert_eq!(f.removed, 2);
}

#[test]
fn cname_loops_and_long_chains_terminate() {
    let list = allowlist(&["a.example.com"], false, false);
    let f = run(
        &list,
        "a.example.com.",
        RecordType::A,
        vec![
            cname_record("a.example.com.", "b.example.com.", 60),
            cname_record("b.example.com.", "a.example.com.", 60),
        ],
    );
    assert!(f.kept.is_empty());
    let mut chain = Vec::new();
    for i in 0..40 {
        let owner = if i == 0 {
            "a.example.com.".to_string()
        } else {
            format!("c{i}.test.")
        };
        chain.push(cname_record(&owner, &format!("c{}.test.", i + 1), 60));
    }
    chain.push(addr_record("c40.test.", "203.0.113.1", 60));
    let f = run(&list, "a.example.com.", RecordType::A, chain);
    assert!(f.kept.is_empty(), "chains longer than {MAX_CHAIN} are cut");
}

fn https_record(
    owner: &str,
    priority: u16,
    target: &str,
    params: Vec<(SvcParamKey, SvcParamValue)>,
) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::HTTPS(HTTPS(SVCB::new(priority, name(target), params))),
    )
}

fn svcb_of(r: &Record) -> &SVCB {
    match r.data() {
        RData::HTTPS(HTTPS(s)) | RData::SVCB(s) => s,
        other => panic!("not svcb: {other:?}"),
    }
}

#[test]
fn https_hints_and_ech_are_stripped_and_unlisted_targets_dropped() {
    let list = allowlist(&["api.example.com", "alt.example.com"], false, false);
    let params = vec![
        (
            SvcParamKey::Mandatory,
            SvcParamValue::Mandatory(Mandatory(vec![SvcParamKey::Alpn, SvcParamKey::Ipv4Hint])),
        ),
        (
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
        ),
        (
            SvcParamKey::Ipv4Hint,
            SvcParamValue::Ipv4Hint(IpHint(vec![A::new(10, 0, 0, 5)])),
        ),
        (
            SvcParamKey::EchConfigList,
            SvcParamValue::EchConfigList(EchConfigList(vec![1, 2, 3])),
        ),
        (
            SvcParamKey::Ipv6Hint,
            SvcParamValue::Ipv6Hint(IpHint(vec![AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)])),
        ),
    ];
    let f = run(
        &list,
        "api.example.com.",
        RecordType::HTTPS,
        vec![
            https_record("api.example.com.", 1, ".", params.clone()),
            https_record("api.example.com.", 2, "alt.example.com.", params.clone()),
            https_record("api.example.com.", 3, "evil.example.net.", params),
        ],
    );
    assert_eq!(f.answers.len(), 2, "the unlisted target is dropped");
    assert_eq!(f.removed, 1);
    for record in &f.answers {
        let keys: Vec<SvcParamKey> = svcb_of(record)
            .svc_params()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(keys, vec![SvcParamKey::Mandatory, SvcParamKey::Alpn]);
        assert_eq!(
            svcb_of(record).svc_params()[0].1,
            SvcParamValue::Mandatory(Mandatory(vec![SvcParamKey::Alpn]))
        );
    }
    assert!(f.kept.is_empty(), "hints never count as addresses");
}

#[test]
fn alias_mode_to_unlisted_name_is_dropped() {
    let list = allowlist(&["api.example.com"], false, false);
    let q = query("api.example.com.", RecordType::SVCB);
    let question = Question::of(&q).unwrap();
    let rule = list.find("api.example.com").unwrap().clone();
    let alias = Record::from_rdata(
        name("api.example.com."),
        60,
        RData::SVCB(SVCB::new(0, name("elsewhere.test."), vec![])),
    );
    let f = filter(
        &response(&q, ResponseCode::NoError, vec![alias]),
        &question,
        &rule,
        &list,
        300,
    );
    assert!(f.answers.is_empty());
    assert_eq!(f.removed, 1);
}

#[test]
fn authority_keeps_only_soa_and_gives_the_negative_ttl() {
    let list = allowlist(&["api.example.com"], false, false);
    let q = query("api.example.com.", RecordType::AAAA);
    let question = Question::of(&q).unwrap();
    let rule = list.find("api.example.com").unwrap().clone();
    let mut upstream = response(&q, ResponseCode::NXDomain, vec![]);
    upstream.add_name_server(soa_record("example.com.", 900, 120));
    upstream.add_name_server(Record::from_rdata(
        name("example.com."),
        60,
        RData::NS(hickory_proto::rr::rdata::NS(name("ns.evil.test."))),
    ));
    upstream.add_additional(addr_record("ns.evil.test.", "10.0.0.1", 60));
    let f = filter(&upstream, &question, &rule, &list, 300);
    assert_eq!(f.rcode, ResponseCode::NXDomain);
    assert_eq!(f.authority.len(), 1);
    assert_eq!(f.authority[0].ttl(), 300);
    assert_eq!(f.cache_ttl(), Some(120));
}

#[test]
fn any_query_keeps_every_type_but_still_guards_addresses() {
    let list = allowlist(&["api.example.com"], false, false);
    let f = run(
        &list,
        "api.example.com.",
        RecordType::ANY,
        vec![
            addr_record("api.example.com.", "203.0.113.7", 60),
            addr_record("api.example.com.", "192.168.1.1", 60),
            addr_record("api.example.com.", "2001:db8::7", 60),
        ],
    );
    assert_eq!(ips(&f), ["203.0.113.7", "2001:db8::7"]);
    assert_eq!(f.dropped.len(), 1);
}
