//! One name-based egress rule: a [`NamePattern`] plus ports, protocols and
//! the flags the resolver needs.

use std::{fmt, str::FromStr};

use super::{Breadth, NameError, NameErrorKind, NamePattern};
use crate::egress::{Protocols, RuleSource};

/// DNS over TLS / DNS over QUIC. A rule without ports never covers it; only
/// an explicit `:853` does.
pub(super) const DOT_PORT: u16 = 853;

/// One name-based egress rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRule {
    /// Which names.
    pub pattern: NamePattern,
    /// Destination ports; `None` means every port except 853 (DNS over TLS).
    pub ports: Option<Vec<u16>>,
    /// Transport protocols.
    pub protocols: Protocols,
    /// Exempt from the DNS rebinding guard: answers may resolve to private,
    /// loopback, link-local or metadata addresses.
    pub allow_private: bool,
    /// The addresses this rule's names resolve to are allowed at the kernel
    /// (a non-HTTP rule; HTTP(S) goes through the proxy instead).
    pub learn: bool,
    /// Where the rule was written, when known.
    pub source: Option<RuleSource>,
}

/// A destination port and protocol an allowed name may be reached on, as the
/// kernel allowlist wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Destination port; `None` is every port except 853 (DNS over TLS).
    pub port: Option<u16>,
    /// IANA protocol number (`PROTO_TCP` / `PROTO_UDP`).
    pub proto: u8,
}

impl NameRule {
    /// A rule for `pattern` on every port (but 853) and protocol, without
    /// rebinding exemption, not learning, without source.
    pub fn new(pattern: NamePattern) -> Self {
        NameRule {
            pattern,
            ports: None,
            protocols: Protocols::Any,
            allow_private: false,
            learn: false,
            source: None,
        }
    }

    /// Parses `HOST` or `HOST:PORT` (`PORT` may be a comma-separated list),
    /// where `HOST` is a [`NamePattern`].
    pub fn parse(input: &str, breadth: Breadth) -> Result<Self, NameError> {
        let invalid = |problem: String| NameError {
            input: input.to_string(),
            problem,
            kind: NameErrorKind::Invalid,
        };
        let text = input.trim();
        if text.starts_with('[') {
            return Err(invalid(
                "brackets are for IPv6 targets; a host name is written without them".into(),
            ));
        }
        let (host, ports) = match text.split_once(':') {
            None => (text, None),
            Some((_, rest)) if rest.contains(':') => {
                return Err(invalid(
                    "more than one `:` (IPv6 addresses are targets, not names)".into(),
                ));
            }
            Some((host, ports)) => (host, Some(parse_ports(ports).map_err(invalid)?)),
        };
        let pattern = NamePattern::parse(host, breadth).map_err(|e| NameError {
            input: input.to_string(),
            ..e
        })?;
        Ok(NameRule {
            ports,
            ..NameRule::new(pattern)
        })
    }

    /// Whether the rule covers `port` over protocol `proto` (IANA number).
    /// A rule without ports covers every port except 853.
    pub fn covers(&self, port: u16, proto: u8) -> bool {
        let port_ok = match &self.ports {
            None => port != DOT_PORT,
            Some(ports) => ports.contains(&port),
        };
        port_ok && self.protocols.numbers().contains(&proto)
    }

    /// Every (port, protocol) pair the rule allows, for learned addresses.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let ports: Vec<Option<u16>> = match &self.ports {
            None => vec![None],
            Some(ports) => ports.iter().copied().map(Some).collect(),
        };
        let mut endpoints: Vec<Endpoint> = ports
            .iter()
            .flat_map(|&port| {
                self.protocols
                    .numbers()
                    .iter()
                    .map(move |&proto| Endpoint { port, proto })
            })
            .collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        endpoints
    }
}

impl FromStr for NameRule {
    type Err = NameError;

    /// Parses `HOST[:PORT]` with [`Breadth::Strict`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, Breadth::Strict)
    }
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pattern)?;
        if let Some(ports) = &self.ports {
            for (i, port) in ports.iter().enumerate() {
                write!(f, "{}{port}", if i == 0 { ':' } else { ',' })?;
            }
        }
        Ok(())
    }
}

fn parse_ports(text: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let port = match part.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => p as u16,
            Ok(p) => return Err(format!("port {p} is out of range 1-65535")),
            Err(_) => return Err(format!("`{part}` is not a port number")),
        };
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests;
