//! Filtering of an upstream answer before it reaches the agent.
//!
//! - **CNAME chains.** Only the chain that starts at the queried name is
//!   kept; records for any other owner (out-of-chain or injected) are
//!   dropped. The names *inside* the chain need not be allowlisted: the
//!   queried name is, and its zone decides where it points (a CNAME to a
//!   CDN name is the common case). Allowing the CDN name itself would be
//!   far broader (`**.cloudfront.net` is every customer's distribution), and
//!   would add nothing, since the allowlisted zone could return the same
//!   addresses with A records. The chain's targets are still not resolvable
//!   on their own, and the final addresses still pass the rebinding guard.
//! - **Rebinding guard.** A/AAAA answers with an address in a
//!   [`BlockedRange`] are dropped unless the rule has `allow_private`. If
//!   every address is dropped the answer is NOERROR without addresses (the
//!   CNAMEs stay): a definitive "no address" the client caches, rather than
//!   a SERVFAIL it would retry.
//! - **HTTPS/SVCB.** `ipv4hint`, `ipv6hint` and `ech` parameters are
//!   removed (and from `mandatory`): hints would hand out addresses that
//!   never passed the rebinding guard, and Encrypted Client Hello would
//!   hide the real server name from the sidecar's SNI-based proxy. Records
//!   whose target name (alias or service) is neither `.` nor allowlisted
//!   are dropped, because the client would next resolve that name.
//! - **Sections.** Answer records of other types than asked are dropped
//!   (CNAME chain links excepted, everything kept for ANY); the authority
//!   section keeps only SOA records (negative caching); the additional
//!   section is emptied (glue would bypass every check above). DNSSEC
//!   records go with it: answers are modified, so signatures would not
//!   verify anyway.
//! - **TTL.** Every TTL is capped at `max_ttl`.

use std::net::IpAddr;

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{
        RData, Record, RecordType,
        rdata::{
            HTTPS, SVCB,
            svcb::{Mandatory, SvcParamKey, SvcParamValue},
        },
    },
};

use super::{
    decide::{Question, name_key as key},
    rebinding::{BlockedRange, classify},
};
use crate::egress::{NameAllowlist, NameRule};

/// Longest CNAME chain followed.
const MAX_CHAIN: usize = 16;

/// A filtered answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filtered {
    /// NOERROR or NXDOMAIN, as upstream said.
    pub rcode: ResponseCode,
    /// Kept answer records.
    pub answers: Vec<Record>,
    /// Kept authority records (SOA only).
    pub authority: Vec<Record>,
    /// Kept addresses with their (capped) TTL.
    pub kept: Vec<(IpAddr, u32)>,
    /// Addresses dropped by the rebinding guard.
    pub dropped: Vec<(IpAddr, BlockedRange)>,
    /// Records dropped for other reasons (out of chain, wrong type, HTTPS or
    /// SVCB target not allowlisted).
    pub removed: usize,
}

impl Filtered {
    /// The TTL the whole answer may be cached for: the smallest answer TTL,
    /// or for an answer without records the SOA's negative TTL; `None` when
    /// neither exists.
    pub fn cache_ttl(&self) -> Option<u32> {
        let answer_ttl = self.answers.iter().map(Record::ttl).min();
        answer_ttl.or_else(|| {
            self.authority
                .iter()
                .filter_map(|r| match r.data() {
                    RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
                    _ => None,
                })
                .min()
        })
    }
}

/// Filters `response` for `question`, matched by `rule`.
pub fn filter(
    response: &Message,
    question: &Question,
    rule: &NameRule,
    allowlist: &NameAllowlist,
    max_ttl: u32,
) -> Filtered {
    let chain = cname_chain(response.answers(), question);
    let mut out = Filtered {
        rcode: response.response_code(),
        answers: Vec::new(),
        authority: Vec::new(),
        kept: Vec::new(),
        dropped: Vec::new(),
        removed: 0,
    };
    for record in response.answers() {
        let owner = key(record.name());
        let Some(position) = chain.iter().position(|n| *n == owner) else {
            out.removed += 1;
            continue;
        };
        let mut record = record.clone();
        record.set_ttl(record.ttl().min(max_ttl));
        let wanted = question.qtype == RecordType::ANY || record.record_type() == question.qtype;
        match record.data() {
            RData::CNAME(target) => {
                let is_link = chain.get(position + 1) == Some(&key(target));
                if is_link || wanted {
                    out.answers.push(record);
                } else {
                    out.removed += 1;
                }
            }
            RData::A(a) if wanted => keep_address(&mut out, record.clone(), a.0.into(), rule),
            RData::AAAA(a) if wanted => keep_address(&mut out, record.clone(), a.0.into(), rule),
            RData::HTTPS(HTTPS(svcb)) if wanted => match sanitize_svcb(svcb, allowlist) {
                Some(clean) => {
                    record.set_data(RData::HTTPS(HTTPS(clean)));
                    out.answers.push(record);
                }
                None => out.removed += 1,
            },
            RData::SVCB(svcb) if wanted => match sanitize_svcb(svcb, allowlist) {
                Some(clean) => {
                    record.set_data(RData::SVCB(clean));
                    out.answers.push(record);
                }
                None => out.removed += 1,
            },
            _ if wanted && !record.record_type().is_dnssec() => out.answers.push(record),
            _ => out.removed += 1,
        }
    }
    for record in response.name_servers() {
        if record.record_type() == RecordType::SOA {
            let mut record = record.clone();
            record.set_ttl(record.ttl().min(max_ttl));
            out.authority.push(record);
        }
    }
    out
}

fn keep_address(out: &mut Filtered, record: Record, ip: IpAddr, rule: &NameRule) {
    match classify(ip) {
        Some(range) if !rule.allow_private => out.dropped.push((ip, range)),
        _ => {
            out.kept.push((ip, record.ttl()));
            out.answers.push(record);
        }
    }
}

/// The canonical names of the CNAME chain starting at the queried name
/// (the queried name first).
fn cname_chain(answers: &[Record], question: &Question) -> Vec<String> {
    let mut chain = vec![question.canonical.clone()];
    if question.qtype == RecordType::CNAME {
        return chain;
    }
    while chain.len() <= MAX_CHAIN {
        let Some(current) = chain.last() else { break };
        let next = answers.iter().find_map(|r| match r.data() {
            RData::CNAME(target) if key(r.name()) == *current => Some(key(target)),
            _ => None,
        });
        match next {
            Some(next) if !chain.contains(&next) => chain.push(next),
            _ => break,
        }
    }
    chain
}

/// An HTTPS/SVCB record without address hints and ECH, or `None` if its
/// target name is not allowlisted.
fn sanitize_svcb(svcb: &SVCB, allowlist: &NameAllowlist) -> Option<SVCB> {
    let target = svcb.target_name();
    if !target.is_root() && allowlist.find(&target.to_ascii()).is_none() {
        return None;
    }
    let stripped = |k: &SvcParamKey| {
        matches!(
            k,
            SvcParamKey::Ipv4Hint | SvcParamKey::Ipv6Hint | SvcParamKey::EchConfigList
        )
    };
    let params = svcb
        .svc_params()
        .iter()
        .filter(|(k, _)| !stripped(k))
        .filter_map(|(k, v)| match v {
            SvcParamValue::Mandatory(Mandatory(keys)) => {
                let keys: Vec<SvcParamKey> =
                    keys.iter().copied().filter(|k| !stripped(k)).collect();
                (!keys.is_empty()).then_some((*k, SvcParamValue::Mandatory(Mandatory(keys))))
            }
            _ => Some((*k, v.clone())),
        })
        .collect();
    Some(SVCB::new(svcb.svc_priority(), target.clone(), params))
}

#[cfg(test)]
mod tests;
