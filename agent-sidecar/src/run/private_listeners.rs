//! The sidecar's private listeners (admin API, metrics) are never the
//! agent's to reach. Two layers keep them so:
//!
//! - at load, a policy with any rule that would cover one of them is refused
//!   with the rule and the fix ([`check`]): address rules whose network
//!   overlaps an address the listener answers on (every loopback address,
//!   `0.0.0.0`/`::`, v4-mapped spellings, and every local address when it
//!   binds the unspecified address), name rules naming its port, name rules
//!   that may resolve to local addresses (`allow_private`) and static hosts
//!   that point there;
//! - in the kernel, the listener ports form a deny set checked before every
//!   allowlist map (`EnforcerConfig::private_listeners`), so learned
//!   addresses, reloads and future rules cannot open them either; the
//!   proxies refuse those ports too ([`is_private_port`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::RunError;
use crate::{
    dns::StaticHost,
    egress::{Allowlist, NameAllowlist},
};

/// One of the sidecar's own listeners that the agent may never reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateListener {
    /// What it serves (`admin API`, `metrics`).
    pub what: &'static str,
    /// Its bound address (with the real port).
    pub addr: SocketAddr,
    /// The flag that sets it.
    pub flag: &'static str,
}

/// Whether `port` is the port of one of `listeners`.
pub fn is_private_port(listeners: &[PrivateListener], port: u16) -> bool {
    listeners.iter().any(|l| l.addr.port() == port)
}

/// A network as the kernel matches it: v4-mapped IPv6 is IPv4.
fn normalize(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) => match n.addr().to_ipv4_mapped() {
            Some(v4) if n.prefix_len() >= 96 => {
                Ipv4Net::new(v4, n.prefix_len() - 96).map_or(net, IpNet::V4)
            }
            _ => net,
        },
        IpNet::V4(_) => net,
    }
}

fn host(ip: IpAddr) -> IpNet {
    normalize(IpNet::from(ip))
}

/// Every network an agent in the same network namespace could connect to
/// and land on `addr`.
fn reachable_through(addr: IpAddr) -> Vec<IpNet> {
    let loopback4 = IpNet::V4(Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("valid"));
    let any4 = host(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let loopback6 = IpNet::V6(Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).expect("valid"));
    let any6 = IpNet::V6(Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 128).expect("valid"));
    let addr = host(addr).addr();
    if addr.is_unspecified() {
        let mut nets = vec![loopback4, any4, loopback6, any6];
        if let Ok(ifaddrs) = nix::ifaddrs::getifaddrs() {
            for ifaddr in ifaddrs {
                let Some(sa) = ifaddr.address else { continue };
                let ip = match (sa.as_sockaddr_in(), sa.as_sockaddr_in6()) {
                    (Some(v4), _) => IpAddr::V4(v4.ip()),
                    (_, Some(v6)) => IpAddr::V6(v6.ip()),
                    _ => continue,
                };
                nets.push(host(ip));
            }
        }
        nets
    } else if addr.is_loopback() {
        match addr {
            IpAddr::V4(_) => vec![loopback4, any4],
            IpAddr::V6(_) => vec![loopback6, any6],
        }
    } else {
        vec![host(addr)]
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)) => {
            a.contains(&b.network()) || b.contains(&a.network())
        }
        _ => false,
    }
}

fn refused(listener: &PrivateListener, rule: &str, source: &str, why: &str) -> RunError {
    RunError::PrivateListener(format!(
        "rule `{rule}` ({source}) would let the agent reach the sidecar's {what} at {addr} \
         ({why}); the agent may never reach the sidecar's own listeners: narrow or drop the \
         rule, or move {flag} to a port and address no rule covers",
        what = listener.what,
        addr = listener.addr,
        flag = listener.flag,
    ))
}

/// Refuses address rules, name rules and static hosts that would let the
/// agent reach one of `listeners`.
pub fn check(
    listeners: &[PrivateListener],
    allowlist: &Allowlist,
    names: &NameAllowlist,
    static_hosts: &[StaticHost],
) -> Result<(), RunError> {
    for listener in listeners {
        let port = listener.addr.port();
        let reachable = reachable_through(listener.addr.ip());
        for rule in allowlist.rules() {
            let t = rule.target;
            if t.port.is_some_and(|p| p != port) {
                continue;
            }
            let net = normalize(t.net);
            if t.port == Some(port) {
                return Err(refused(
                    listener,
                    &t.to_string(),
                    &rule.source.to_string(),
                    "it names the listener's port, which the kernel refuses to the agent \
                     whatever the address",
                ));
            }
            if let Some(hit) = reachable.iter().find(|r| overlaps(&net, r)) {
                return Err(refused(
                    listener,
                    &t.to_string(),
                    &rule.source.to_string(),
                    &format!("it covers every port of {hit}, where the listener answers"),
                ));
            }
        }
        for rule in names.rules() {
            let source = rule
                .source
                .as_ref()
                .map_or_else(|| "policy".to_string(), |s| s.to_string());
            match &rule.ports {
                Some(ports) if ports.contains(&port) => {
                    return Err(refused(
                        listener,
                        &rule.to_string(),
                        &source,
                        "it names the listener's port",
                    ));
                }
                Some(_) => continue,
                None if rule.allow_private => {
                    return Err(refused(
                        listener,
                        &rule.to_string(),
                        &source,
                        "it covers every port and may resolve to loopback or local addresses",
                    ));
                }
                None => {}
            }
            for sh in static_hosts {
                if rule.pattern.matches(&sh.name)
                    && reachable.iter().any(|r| overlaps(&host(sh.addr), r))
                {
                    return Err(refused(
                        listener,
                        &rule.to_string(),
                        &source,
                        &format!(
                            "it covers every port of static host {}={}, where the listener answers",
                            sh.name, sh.addr
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
