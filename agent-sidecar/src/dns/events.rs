//! One structured event per DNS decision, for logs and the audit log.
//!
//! Every event is written as a `tracing` line (target `agent_sidecar::dns`,
//! `debug` for allowed answers, `info` for refusals, `warn` for rebinding,
//! upstream errors and malformed input) and handed to the resolver's
//! [`DnsEventSink`].

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use super::{decide::RefuseReason, rebinding::BlockedRange};

/// The outcome of one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsDecision {
    /// Forwarded (or served from cache) and answered.
    Allowed,
    /// Answered locally (NXDOMAIN, REFUSED, NOTIMP, FORMERR) without
    /// forwarding.
    Refused,
    /// Answered, but the rebinding guard dropped at least one address.
    RebindingDropped,
    /// The upstream servers gave no usable answer: SERVFAIL.
    UpstreamError,
    /// The packet did not parse: FORMERR when its header was readable,
    /// otherwise dropped.
    Malformed,
}

impl DnsDecision {
    /// Every decision, for metrics.
    pub const ALL: [DnsDecision; 5] = [
        DnsDecision::Allowed,
        DnsDecision::Refused,
        DnsDecision::RebindingDropped,
        DnsDecision::UpstreamError,
        DnsDecision::Malformed,
    ];

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsDecision::Allowed => "allowed",
            DnsDecision::Refused => "refused",
            DnsDecision::RebindingDropped => "rebinding_dropped",
            DnsDecision::UpstreamError => "upstream_error",
            DnsDecision::Malformed => "malformed",
        }
    }

    /// Whether its log line is a warning (rate-limited per agent).
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            DnsDecision::RebindingDropped | DnsDecision::UpstreamError | DnsDecision::Malformed
        )
    }
}

/// The transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// `udp` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// An address the rebinding guard removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedAddress {
    /// The address.
    pub addr: IpAddr,
    /// Why it is not acceptable.
    pub range: BlockedRange,
}

/// One DNS decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsEvent {
    /// When the decision was taken, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The agent.
    pub agent_id: Arc<str>,
    /// Who asked.
    pub client: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// The queried name (canonical form), when the query had one question.
    pub qname: Option<String>,
    /// The query type (`A`, `AAAA`, `HTTPS`, ...).
    pub qtype: Option<String>,
    /// The outcome.
    pub decision: DnsDecision,
    /// Why a query was refused.
    pub reason: Option<RefuseReason>,
    /// The response code sent (`NoError`, `NXDomain`, ...), `None` when
    /// nothing was sent.
    pub rcode: Option<String>,
    /// The matching rule as written, with its source when known.
    pub rule: Option<String>,
    /// Addresses in the answer.
    pub answers: Vec<IpAddr>,
    /// Addresses removed by the rebinding guard.
    pub dropped: Vec<DroppedAddress>,
    /// The TTL the answer may be cached for.
    pub ttl: Option<u32>,
    /// Served from the resolver's cache.
    pub cached: bool,
    /// The upstream server that answered, or the error of the last one;
    /// [`STATIC_SOURCE`](super::resolver::STATIC_SOURCE) for an answer from
    /// the static hosts.
    pub upstream: Option<String>,
}

/// Receives every [`DnsEvent`] (the audit log, a test). Called on the
/// resolver's tasks: keep it quick and non-blocking.
pub trait DnsEventSink: Send + Sync {
    /// One decision.
    fn event(&self, event: &DnsEvent);
}

impl<F: Fn(&DnsEvent) + Send + Sync> DnsEventSink for F {
    fn event(&self, event: &DnsEvent) {
        self(event)
    }
}

/// Writes the event as a `tracing` line.
pub(crate) fn trace(event: &DnsEvent) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "agent_sidecar::dns",
                agent_id = %event.agent_id,
                client = %event.client,
                transport = event.transport.as_str(),
                qname = event.qname.as_deref().unwrap_or(""),
                qtype = event.qtype.as_deref().unwrap_or(""),
                decision = event.decision.as_str(),
                reason = ?event.reason,
                rcode = event.rcode.as_deref().unwrap_or(""),
                rule = event.rule.as_deref().unwrap_or(""),
                answers = ?event.answers,
                dropped = ?event.dropped,
                ttl = ?event.ttl,
                cached = event.cached,
                upstream = event.upstream.as_deref().unwrap_or(""),
                "dns decision"
            )
        };
    }
    match event.decision {
        DnsDecision::Allowed => line!(debug),
        DnsDecision::Refused => line!(info),
        _ => line!(warn),
    }
}

/// `time` as RFC 3339 UTC with milliseconds (`2026-05-04T10:11:12.345Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
