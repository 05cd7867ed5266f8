//! Operator-given addresses for names (`run --static-host NAME=IP`): the
//! resolver answers such a name from this table instead of asking the
//! upstream servers, as long as the agent's allowlist allows the name (a
//! name it does not allow still gets the refusal).
//!
//! The table is written by the operator, not by a DNS server the agent or an
//! attacker might influence, so the rebinding guard does not apply to it: a
//! static host may point at a loopback or private address (a tool server on
//! the same machine, a demo without a DNS server). Answers carry the TTL
//! [`STATIC_TTL`] (capped by the resolver's `max_ttl`).

use std::{collections::BTreeMap, fmt, net::IpAddr, str::FromStr};

use hickory_proto::rr::RecordType;

use super::error::ConfigError;
use crate::egress::{Breadth, NamePattern, PatternKind};

/// TTL of static answers, seconds.
pub const STATIC_TTL: u32 = 60;

/// One `NAME=IP` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticHost {
    /// The name in canonical form (lowercase ASCII, punycode, no trailing
    /// dot).
    pub name: String,
    /// Its address.
    pub addr: IpAddr,
}

impl FromStr for StaticHost {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_static_host(s)
    }
}

impl fmt::Display for StaticHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.addr)
    }
}

/// Parses one `--static-host` value: `NAME=IP` (an IPv4 or IPv6 address,
/// without brackets or port). The name is an exact host name: no wildcard,
/// no IP address.
pub fn parse_static_host(input: &str) -> Result<StaticHost, ConfigError> {
    let err = |problem: String| ConfigError::StaticHost {
        input: input.to_string(),
        problem,
    };
    let (name, addr) = input
        .trim()
        .split_once('=')
        .ok_or_else(|| err("there is no `=` between the name and the address".into()))?;
    let (name, addr) = (name.trim(), addr.trim());
    if name.is_empty() {
        return Err(err("the name is empty".into()));
    }
    let pattern = NamePattern::parse(name, Breadth::Forced).map_err(|e| err(e.problem))?;
    if pattern.kind() != PatternKind::Exact || pattern.base().is_empty() {
        return Err(err(format!(
            "`{name}` is a wildcard; a static host is one exact name"
        )));
    }
    let addr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| {
            err(format!(
                "`{addr}` is not an IPv4 or IPv6 address (no port, no host name)"
            ))
        })?;
    Ok(StaticHost {
        name: pattern.base().to_string(),
        addr,
    })
}

/// The static hosts of one resolver: canonical name to its addresses (in
/// the order given, without duplicates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticHosts {
    entries: BTreeMap<String, Vec<IpAddr>>,
}

impl StaticHosts {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry; a name given several times gets every address.
    pub fn insert(&mut self, host: StaticHost) {
        let addrs = self.entries.entry(host.name).or_default();
        if !addrs.contains(&host.addr) {
            addrs.push(host.addr);
        }
    }

    /// Every address of `canonical` (a name in canonical form), if it is a
    /// static host.
    pub fn get(&self, canonical: &str) -> Option<&[IpAddr]> {
        self.entries.get(canonical).map(Vec::as_slice)
    }

    /// The addresses of `canonical` that answer a `qtype` query: IPv4 for
    /// A, IPv6 for AAAA, both for ANY, none for any other type (the name
    /// exists, it has no such record). `None` if it is not a static host.
    pub fn answer(&self, canonical: &str, qtype: RecordType) -> Option<Vec<IpAddr>> {
        let addrs = self.get(canonical)?;
        Some(
            addrs
                .iter()
                .copied()
                .filter(|ip| match qtype {
                    RecordType::A => ip.is_ipv4(),
                    RecordType::AAAA => ip.is_ipv6(),
                    RecordType::ANY => true,
                    _ => false,
                })
                .collect(),
        )
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every (name, addresses), sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[IpAddr])> {
        self.entries
            .iter()
            .map(|(name, addrs)| (name.as_str(), addrs.as_slice()))
    }
}

impl FromIterator<StaticHost> for StaticHosts {
    fn from_iter<I: IntoIterator<Item = StaticHost>>(iter: I) -> Self {
        let mut hosts = StaticHosts::new();
        for host in iter {
            hosts.insert(host);
        }
        hosts
    }
}

#[cfg(test)]
mod tests;
