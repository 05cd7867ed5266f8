//! The policy decision for one query: forward it upstream (the name is
//! allowlisted) or answer it locally, without the name ever leaving the
//! sidecar.

use hickory_proto::{
    op::{Message, OpCode, ResponseCode},
    rr::{DNSClass, Name, RecordType},
};
use serde::Serialize;

use super::config::RefusalMode;
use crate::egress::{NameAllowlist, NameRule, name::canonical_name};

/// The question of a query in the forms the resolver needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The name as asked (case preserved).
    pub name: Name,
    /// Lowercase ASCII, no trailing dot: what the allowlist and cache use.
    pub canonical: String,
    /// The query type.
    pub qtype: RecordType,
    /// The query class.
    pub qclass: DNSClass,
}

impl Question {
    /// The question of a parsed query, if it has exactly one.
    pub fn of(query: &Message) -> Option<Question> {
        match query.queries() {
            [q] => Some(Question {
                name: q.name().clone(),
                canonical: name_key(q.name()),
                qtype: q.query_type(),
                qclass: q.query_class(),
            }),
            _ => None,
        }
    }
}

/// The canonical form of a DNS name: lowercase ASCII (punycode), no
/// trailing dot; what the allowlist, the cache and the CNAME-chain check
/// compare.
pub(crate) fn name_key(name: &Name) -> String {
    let ascii = name.to_ascii();
    canonical_name(&ascii)
        .map(|c| c.into_owned())
        .unwrap_or_else(|| ascii.trim_end_matches('.').to_ascii_lowercase())
}

/// Why a query was answered locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// The name matches no rule.
    NotAllowlisted,
    /// An HTTPS, SVCB or ANY query for a name that matches no rule.
    ServiceQueryNotAllowlisted,
    /// Not a standard query (NOTIFY, UPDATE, ...): NOTIMP.
    NotAQuery,
    /// Zero or several questions: FORMERR.
    QuestionCount,
    /// A class other than IN: REFUSED.
    NotInternetClass,
    /// AXFR, IXFR or other zone-management types: REFUSED.
    ZoneTransfer,
    /// An allowlisted name asked for a record type that is never forwarded
    /// (see [`FORWARDED_TYPES`]): REFUSED.
    QueryType,
    /// The agent's budget of forwarded queries or distinct names per minute
    /// is spent (see [`super::budget`]).
    BudgetExceeded,
}

/// The record types forwarded upstream for an allowlisted name: what
/// `getaddrinfo`, curl, Python, Node and browsers ask to reach a host over
/// HTTP(S) or TCP. Every other type (TXT, MX, SRV, NULL, unassigned
/// numbers...) is refused, so the agent cannot choose 16 bits of every
/// query nor have records of its choosing returned to it.
pub const FORWARDED_TYPES: [RecordType; 5] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::HTTPS,
    RecordType::SVCB,
];

/// What to do with a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryPlan<'a> {
    /// Resolve upstream; `rule` is the most specific rule for the name.
    Forward {
        /// The question.
        question: Question,
        /// The matching rule.
        rule: &'a NameRule,
    },
    /// Answer locally with `rcode` and no records.
    Refuse {
        /// The question, when there is exactly one.
        question: Option<Question>,
        /// The response code to answer with.
        rcode: ResponseCode,
        /// Why.
        reason: RefuseReason,
    },
}

/// Decides one parsed query.
pub fn decide<'a>(
    query: &Message,
    allowlist: &'a NameAllowlist,
    refusal: RefusalMode,
) -> QueryPlan<'a> {
    let refuse = |question, rcode, reason| QueryPlan::Refuse {
        question,
        rcode,
        reason,
    };
    let question = Question::of(query);
    if query.op_code() != OpCode::Query {
        return refuse(question, ResponseCode::NotImp, RefuseReason::NotAQuery);
    }
    let Some(question) = question else {
        return refuse(None, ResponseCode::FormErr, RefuseReason::QuestionCount);
    };
    if question.qclass != DNSClass::IN {
        return refuse(
            Some(question),
            ResponseCode::Refused,
            RefuseReason::NotInternetClass,
        );
    }
    if matches!(
        question.qtype,
        RecordType::AXFR | RecordType::IXFR | RecordType::OPT | RecordType::TSIG | RecordType::SIG
    ) {
        return refuse(
            Some(question),
            ResponseCode::Refused,
            RefuseReason::ZoneTransfer,
        );
    }
    match allowlist.find(&question.canonical) {
        Some(_) if !FORWARDED_TYPES.contains(&question.qtype) => refuse(
            Some(question),
            ResponseCode::Refused,
            RefuseReason::QueryType,
        ),
        Some(rule) => QueryPlan::Forward { question, rule },
        None if matches!(
            question.qtype,
            RecordType::HTTPS | RecordType::SVCB | RecordType::ANY
        ) =>
        {
            refuse(
                Some(question),
                ResponseCode::Refused,
                RefuseReason::ServiceQueryNotAllowlisted,
            )
        }
        None => {
            let rcode = match refusal {
                RefusalMode::NxDomain => ResponseCode::NXDomain,
                RefusalMode::Refused => ResponseCode::Refused,
            };
            refuse(Some(question), rcode, RefuseReason::NotAllowlisted)
        }
    }
}

#[cfg(test)]
mod tests;
