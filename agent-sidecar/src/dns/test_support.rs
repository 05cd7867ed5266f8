//! Message builders shared by the resolver's unit tests.

use std::{net::IpAddr, str::FromStr};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME, SOA},
    },
};

use crate::egress::{Breadth, NameAllowlist, NameRule};

pub(crate) fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A recursive query for `qname`/`qtype` with id 0x1234 and EDNS.
pub(crate) fn query(qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(0x1234)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    m.add_query(Query::query(name(qname), qtype));
    m.set_edns(Edns::new());
    m
}

/// An upstream response to `query` with `answers`.
pub(crate) fn response(query: &Message, rcode: ResponseCode, answers: Vec<Record>) -> Message {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_response_code(rcode);
    m.add_queries(query.queries().iter().cloned());
    m.add_answers(answers);
    m
}

pub(crate) fn addr_record(owner: &str, ip: &str, ttl: u32) -> Record {
    let rdata = match ip.parse::<IpAddr>().expect(ip) {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name(owner), ttl, rdata)
}

pub(crate) fn cname_record(owner: &str, target: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}

pub(crate) fn soa_record(owner: &str, ttl: u32, minimum: u32) -> Record {
    let soa = SOA::new(
        name("ns.example."),
        name("hostmaster.example."),
        1,
        3600,
        600,
        86400,
        minimum,
    );
    Record::from_rdata(name(owner), ttl, RData::SOA(soa))
}

/// An allowlist from `HOST[:PORT]` texts (forced breadth), with the given
/// flags on every rule.
pub(crate) fn allowlist(rules: &[&str], allow_private: bool, learn: bool) -> NameAllowlist {
    rules
        .iter()
        .map(|s| NameRule {
            allow_private,
            learn,
            ..NameRule::parse(s, Breadth::Forced).expect(s)
        })
        .collect()
}
