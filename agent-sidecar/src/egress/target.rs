//! Parsing of allowlist targets: `IP:PORT`, `[IPv6]:PORT`, `CIDR` (every
//! port) and `CIDR:PORT`. IPv4-mapped IPv6 targets are normalised to IPv4,
//! which is how the kernel hooks see them.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::{IpNet, Ipv4Net};

/// One destination the agent may reach: a network (a single host is a /32 or
/// /128) and an optional port (`None` = every port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Destination network, host bits zero.
    pub net: IpNet,
    /// Destination port; `None` allows every port.
    pub port: Option<u16>,
}

/// A target that could not be parsed, with what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid egress target `{input}`: {problem}; {HOW_TO}")]
pub struct TargetError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub problem: String,
}

const HOW_TO: &str = "write IP:PORT, [IPv6]:PORT, CIDR or CIDR:PORT \
(e.g. 10.0.0.5:443, [2001:db8::1]:443, 10.0.0.0/8, 10.0.0.0/8:5432, [2001:db8::/32]:443)";

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |problem: String| TargetError {
            input: s.to_string(),
            problem,
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(err("it is empty".into()));
        }
        let (net_text, port_text) = split_port(text).map_err(err)?;
        let net = parse_net(net_text).map_err(err)?;
        let port = match port_text {
            None => None,
            Some(p) => Some(parse_port(p).map_err(err)?),
        };
        Ok(Target {
            net: normalise(net),
            port,
        })
    }
}

/// Splits `ADDR[:PORT]` where ADDR may be bracketed IPv6 or an unbracketed
/// IPv4/IPv6 CIDR.
fn split_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("`[` without a closing `]`".into());
        };
        let inner = &rest[..end];
        let after = &rest[end + 1..];
        return match after {
            "" => Ok((inner, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inner, Some(port))),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    match (text.find('/'), text.matches(':').count()) {
        // IPv4 address or CIDR with a port.
        (_, 1) => {
            let (a, p) = text.split_once(':').expect("one colon");
            Ok((a, Some(p)))
        }
        // Unbracketed IPv6 CIDR followed by a port: 2001:db8::/32:443.
        (Some(slash), n) if n > 1 && text[slash..].contains(':') => {
            let colon = slash + text[slash..].find(':').expect("colon after slash");
            Ok((&text[..colon], Some(&text[colon + 1..])))
        }
        // No port: IPv4, IPv6 or a CIDR of either.
        _ => Ok((text, None)),
    }
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("`{text}` is not a valid CIDR network"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set (did you mean `{}`?)",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let ip: IpAddr = text.parse().map_err(|_| {
            format!("`{text}` is not an IP address (host names are not accepted here)")
        })?;
        Ok(IpNet::from(ip))
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is out of range 1-65535")),
        Err(_) => Err(format!("`{text}` is not a port number")),
    }
}

/// `::ffff:a.b.c.d/96+n` becomes `a.b.c.d/n`: the hooks decide v4-mapped
/// destinations with the IPv4 rules.
fn normalise(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => {
                IpNet::V4(Ipv4Net::new(v4, v6.prefix_len() - 96).expect("prefix within 0..=32"))
            }
            _ => IpNet::V6(v6),
        },
        v4 => v4,
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = matches!(self.net, IpNet::V4(n) if n.prefix_len() == 32)
            || matches!(self.net, IpNet::V6(n) if n.prefix_len() == 128);
        match (self.net, self.port, host) {
            (IpNet::V4(n), Some(p), true) => write!(f, "{}:{p}", n.addr()),
            (IpNet::V6(n), Some(p), true) => write!(f, "[{}]:{p}", n.addr()),
            (IpNet::V4(n), Some(p), false) => write!(f, "{n}:{p}"),
            (IpNet::V6(n), Some(p), false) => write!(f, "[{n}]:{p}"),
            (net, None, _) => write!(f, "{net}"),
        }
    }
}

#[cfg(test)]
mod tests;
