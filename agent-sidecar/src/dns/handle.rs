//! The synchronous part of answering one query: parse, decide, build the
//! local answer or, once upstream answered, filter and encode. No I/O, no
//! clock, no shared state, so it can be fuzzed ([`super::handle_query_bytes`]).

use std::net::IpAddr;

use hickory_proto::{
    op::{Edns, Header, Message, MessageType, ResponseCode},
    rr::{
        RData, Record,
        rdata::{A, AAAA},
    },
    serialize::binary::BinDecodable,
};

use super::{
    config::RefusalMode,
    decide::{QueryPlan, Question, RefuseReason, decide},
    events::{DnsDecision, DroppedAddress},
    filter::{Filtered, filter},
};
use crate::egress::{NameAllowlist, NameRule};

/// Largest UDP payload the resolver sends or advertises (the DNS flag day
/// 2020 value: no IP fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// UDP answer limit for clients without EDNS.
const CLASSIC_UDP_LIMIT: usize = 512;
/// TCP answer limit (the 2-byte length prefix).
pub const TCP_LIMIT: usize = u16::MAX as usize;

/// The policy inputs of the pipeline.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// The agent's name allowlist.
    pub allowlist: &'a NameAllowlist,
    /// How names that are not allowlisted are answered.
    pub refusal: RefusalMode,
    /// TTL cap, seconds.
    pub max_ttl: u32,
}

/// What happened to a query, for events and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOutcome {
    /// The decision.
    pub decision: DnsDecision,
    /// The question, when there was exactly one.
    pub question: Option<Question>,
    /// Why it was refused.
    pub reason: Option<RefuseReason>,
    /// The response code sent, `None` when nothing was sent.
    pub rcode: Option<ResponseCode>,
    /// The matching rule (as written, with its source).
    pub rule: Option<String>,
    /// Addresses in the answer with their TTLs.
    pub kept: Vec<(IpAddr, u32)>,
    /// Addresses the rebinding guard removed.
    pub dropped: Vec<DroppedAddress>,
    /// How long the answer may be cached.
    pub ttl: Option<u32>,
}

impl QueryOutcome {
    pub(crate) fn local(
        decision: DnsDecision,
        question: Option<Question>,
        rcode: Option<ResponseCode>,
    ) -> Self {
        QueryOutcome {
            decision,
            question,
            reason: None,
            rcode,
            rule: None,
            kept: Vec::new(),
            dropped: Vec::new(),
            ttl: None,
        }
    }
}

/// An answer ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Wire bytes; `None`: send nothing (unreadable packet).
    pub bytes: Option<Vec<u8>>,
    /// What happened.
    pub outcome: QueryOutcome,
}

/// A query that must be resolved upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The client's query.
    pub query: Message,
    /// Its question.
    pub question: Question,
    /// The most specific matching rule.
    pub rule: NameRule,
    /// Largest answer the client accepts over its transport.
    pub limit: usize,
}

/// The result of the local step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Answered locally.
    Reply(Reply),
    /// To be resolved upstream, then [`finish`]ed.
    Forward(Pending),
}

/// Parses and decides one query that arrived over UDP (`tcp == false`) or
/// TCP.
pub fn begin(policy: &Policy<'_>, bytes: &[u8], tcp: bool) -> Step {
    let query = match Message::from_vec(bytes) {
        Ok(query) if query.message_type() == MessageType::Query => query,
        // A response sent to a server: never answer it (no reflection loops).
        Ok(_) => return Step::Reply(malformed(None)),
        Err(_) => return Step::Reply(malformed(Header::from_bytes(bytes).ok())),
    };
    let limit = if tcp { TCP_LIMIT } else { udp_limit(&query) };
    match decide(&query, policy.allowlist, policy.refusal) {
        QueryPlan::Forward { question, rule } => Step::Forward(Pending {
            query,
            question,
            rule: rule.clone(),
            limit,
        }),
        QueryPlan::Refuse {
            question,
            rcode,
            reason,
        } => {
            let response = response_to(&query, rcode);
            Step::Reply(Reply {
                bytes: encode(&response, limit),
                outcome: QueryOutcome {
                    reason: Some(reason),
                    ..QueryOutcome::local(DnsDecision::Refused, question, Some(rcode))
                },
            })
        }
    }
}

/// Filters an upstream answer for a pending query.
pub fn finish(policy: &Policy<'_>, pending: &Pending, upstream: &Message) -> (Reply, Filtered) {
    let filtered = filter(
        upstream,
        &pending.question,
        &pending.rule,
        policy.allowlist,
        policy.max_ttl,
    );
    (reply_from_filtered(pending, &filtered, 0), filtered)
}

/// The answer to `pending` built from a filtered answer whose TTLs are
/// lowered by `age` seconds (a cached answer).
pub fn reply_from_filtered(pending: &Pending, filtered: &Filtered, age: u32) -> Reply {
    let mut response = response_to(&pending.query, filtered.rcode);
    let aged = |r: &hickory_proto::rr::Record| {
        let mut r = r.clone();
        r.set_ttl(r.ttl().saturating_sub(age));
        r
    };
    response.add_answers(filtered.answers.iter().map(aged));
    response.add_name_servers(filtered.authority.iter().map(aged));
    let decision = if filtered.dropped.is_empty() {
        DnsDecision::Allowed
    } else {
        DnsDecision::RebindingDropped
    };
    Reply {
        bytes: encode(&response, pending.limit),
        outcome: QueryOutcome {
            decision,
            question: Some(pending.question.clone()),
            reason: None,
            rcode: Some(filtered.rcode),
            rule: Some(describe(&pending.rule)),
            kept: filtered
                .kept
                .iter()
                .map(|&(ip, ttl)| (ip, ttl.saturating_sub(age)))
                .collect(),
            dropped: filtered
                .dropped
                .iter()
                .map(|&(addr, range)| DroppedAddress { addr, range })
                .collect(),
            ttl: filtered.cache_ttl().map(|t| t.saturating_sub(age)),
        },
    }
}

/// The answer to `pending` from a static host (`--static-host`): `addrs`
/// (those of the query's type, see
/// [`StaticHosts::answer`](super::StaticHosts::answer)) as A and AAAA
/// records with `ttl`, NOERROR with no records when there are none of that
/// type. Built locally: nothing is asked upstream and the rebinding guard
/// does not apply (the operator gave the addresses).
pub fn static_reply(pending: &Pending, addrs: &[IpAddr], ttl: u32) -> Reply {
    let mut response = response_to(&pending.query, ResponseCode::NoError);
    response.add_answers(addrs.iter().map(|ip| {
        let rdata = match *ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        Record::from_rdata(pending.question.name.clone(), ttl, rdata)
    }));
    Reply {
        bytes: encode(&response, pending.limit),
        outcome: QueryOutcome {
            rule: Some(describe(&pending.rule)),
            kept: addrs.iter().map(|&ip| (ip, ttl)).collect(),
            ttl: Some(ttl),
            ..QueryOutcome::local(
                DnsDecision::Allowed,
                Some(pending.question.clone()),
                Some(ResponseCode::NoError),
            )
        },
    }
}

/// SERVFAIL for a pending query whose upstream failed.
pub fn upstream_failed(pending: &Pending) -> Reply {
    let response = response_to(&pending.query, ResponseCode::ServFail);
    Reply {
        bytes: encode(&response, pending.limit),
        outcome: QueryOutcome {
            rule: Some(describe(&pending.rule)),
            ..QueryOutcome::local(
                DnsDecision::UpstreamError,
                Some(pending.question.clone()),
                Some(ResponseCode::ServFail),
            )
        },
    }
}

/// A pending query refused locally after all (its budget is spent): the
/// name never leaves the sidecar.
pub fn refused_locally(pending: &Pending, rcode: ResponseCode, reason: RefuseReason) -> Reply {
    let response = response_to(&pending.query, rcode);
    Reply {
        bytes: encode(&response, pending.limit),
        outcome: QueryOutcome {
            reason: Some(reason),
            rule: Some(describe(&pending.rule)),
            ..QueryOutcome::local(
                DnsDecision::Refused,
                Some(pending.question.clone()),
                Some(rcode),
            )
        },
    }
}

/// FORMERR when the header could be read, otherwise nothing.
fn malformed(header: Option<Header>) -> Reply {
    let bytes = header
        .filter(|h| h.message_type() == MessageType::Query)
        .and_then(|h| {
            Message::error_msg(h.id(), h.op_code(), ResponseCode::FormErr)
                .to_vec()
                .ok()
        });
    let rcode = bytes.as_ref().map(|_| ResponseCode::FormErr);
    Reply {
        bytes,
        outcome: QueryOutcome::local(DnsDecision::Malformed, None, rcode),
    }
}

/// A response skeleton for `query`: same id, opcode, question and RD/CD
/// flags, RA set, EDNS when the query had it.
fn response_to(query: &Message, rcode: ResponseCode) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(query.checking_disabled())
        .set_response_code(rcode);
    response.add_queries(query.queries().iter().cloned());
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// The largest UDP answer `query`'s sender accepts.
fn udp_limit(query: &Message) -> usize {
    match query.extensions() {
        Some(edns) => usize::from(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD)),
        None => CLASSIC_UDP_LIMIT,
    }
}

/// Wire bytes of `response`, or of its truncated form (TC set, no records)
/// when it does not fit in `limit`.
fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

/// A rule as events show it: `pattern[:ports] (source)`.
pub fn describe(rule: &NameRule) -> String {
    match &rule.source {
        Some(source) => format!("{rule} ({source})"),
        None => rule.to_string(),
    }
}

/// Answers `query` given `upstream_answer`: the whole pipeline without I/O,
/// cache or sinks, for fuzzing and regression tests. Returns the bytes to
/// send (`None`: drop). The upstream answer is only used when the query is
/// forwarded; one that does not parse, or whose rcode is an error, gives
/// SERVFAIL as the live resolver does.
pub fn handle_query_bytes(
    allowlist: &NameAllowlist,
    refusal: RefusalMode,
    query: &[u8],
    upstream_answer: &[u8],
) -> Option<Vec<u8>> {
    let policy = Policy {
        allowlist,
        refusal,
        max_ttl: 300,
    };
    match begin(&policy, query, false) {
        Step::Reply(reply) => reply.bytes,
        Step::Forward(pending) => match Message::from_vec(upstream_answer) {
            Ok(answer)
                if matches!(
                    answer.response_code(),
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) =>
            {
                finish(&policy, &pending, &answer).0.bytes
            }
            _ => upstream_failed(&pending).bytes,
        },
    }
}

/// The fuzz target's entry point: `data` is a 2-byte big-endian query
/// length, the query, then the upstream answer (all of it optional: short
/// input is split as far as it goes). Runs [`handle_query_bytes`] with a
/// fixed allowlist (`allowed.test`, `*.wild.test`, `**.deep.test`, private
/// addresses allowed for `lan.test`) in both refusal modes.
pub fn handle_fuzz_input(data: &[u8]) -> [Option<Vec<u8>>; 2] {
    let (query, upstream) = split_fuzz_input(data);
    let allowlist = fuzz_allowlist();
    [RefusalMode::NxDomain, RefusalMode::Refused]
        .map(|mode| handle_query_bytes(&allowlist, mode, query, upstream))
}

/// Splits fuzz input into (query, upstream answer).
pub fn split_fuzz_input(data: &[u8]) -> (&[u8], &[u8]) {
    match data {
        [hi, lo, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
            rest.split_at(len)
        }
        _ => (data, &[]),
    }
}

/// Joins a query and an upstream answer into one fuzz input.
pub fn join_fuzz_input(query: &[u8], upstream: &[u8]) -> Vec<u8> {
    let len = u16::try_from(query.len()).unwrap_or(u16::MAX);
    let mut data = len.to_be_bytes().to_vec();
    data.extend_from_slice(&query[..usize::from(len)]);
    data.extend_from_slice(upstream);
    data
}

fn fuzz_allowlist() -> NameAllowlist {
    use crate::egress::{Breadth, NamePattern};
    let mut list = NameAllowlist::new();
    for (pattern, allow_private) in [
        ("allowed.test", false),
        ("*.wild.test", false),
        ("**.deep.test", false),
        ("lan.test", true),
    ] {
        if let Ok(pattern) = NamePattern::parse(pattern, Breadth::Forced) {
            list.push(NameRule {
                allow_private,
                ..NameRule::new(pattern)
            });
        }
    }
    list
}

#[cfg(test)]
mod tests;
