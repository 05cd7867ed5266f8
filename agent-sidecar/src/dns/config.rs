//! Configuration of one agent's resolver: listen addresses, upstream
//! servers, refusal style, timeouts, cache, grace period and static hosts.

use std::{
    net::{IpAddr, SocketAddr, SocketAddrV6},
    path::Path,
    str::FromStr,
    time::Duration,
};

use super::budget::BudgetLimits;
use super::{error::ConfigError, static_hosts::StaticHosts};

/// The standard DNS port.
pub const DNS_PORT: u16 = 53;

/// How names that are not allowlisted are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefusalMode {
    /// NXDOMAIN: the name does not exist (the default; clients give up at
    /// once and do not try another server).
    #[default]
    NxDomain,
    /// REFUSED: the server will not answer (tells a human debugging with
    /// `dig` that policy, not the name, is the reason).
    Refused,
}

impl FromStr for RefusalMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nxdomain" => Ok(RefusalMode::NxDomain),
            "refused" => Ok(RefusalMode::Refused),
            _ => Err(ConfigError::Refusal(s.to_string())),
        }
    }
}

/// One agent's resolver configuration. [`DnsConfig::new`] fills in the
/// defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// Agent id, in events and metric labels.
    pub agent_id: String,
    /// Where to listen, on UDP and TCP alike (port 0: any free port, the
    /// same one for both transports).
    pub listen: Vec<SocketAddr>,
    /// Upstream resolvers, tried in turn.
    pub upstreams: Vec<SocketAddr>,
    /// How names that are not allowlisted are answered.
    pub refusal: RefusalMode,
    /// How long a learned address stays allowed after its TTL ran out
    /// (default 60 s), so connections opened just before expiry still work.
    pub grace: Duration,
    /// Time limit of one upstream exchange (default 2 s).
    pub upstream_timeout: Duration,
    /// Rounds over the upstream list before giving up (default 2).
    pub upstream_attempts: u32,
    /// A TCP client connection idle this long is closed (default 10 s).
    pub tcp_idle_timeout: Duration,
    /// Largest DNS message accepted over TCP (at most 65535, the default).
    pub max_tcp_message: usize,
    /// Concurrent TCP client connections per listener (default 64).
    pub max_tcp_connections: usize,
    /// Concurrent upstream queries per UDP listener (default 1024); past it
    /// queries are answered SERVFAIL.
    pub max_in_flight: usize,
    /// Cached answers (default 10,000).
    pub cache_entries: usize,
    /// Upper bound of every TTL handed to clients and cached (default 300 s),
    /// so learned addresses expire at most `max_ttl + grace` after the last
    /// resolution.
    pub max_ttl: Duration,
    /// Names answered from this operator-given table instead of upstream
    /// (when the allowlist allows them); the rebinding guard does not apply
    /// to them. Empty by default.
    pub static_hosts: StaticHosts,
    /// The agent's budget of forwarded queries and distinct names per
    /// minute ([`super::budget`]).
    pub budget: BudgetLimits,
}

impl DnsConfig {
    /// A configuration with the defaults.
    pub fn new(agent_id: &str, listen: Vec<SocketAddr>, upstreams: Vec<SocketAddr>) -> Self {
        DnsConfig {
            agent_id: agent_id.to_string(),
            listen,
            upstreams,
            refusal: RefusalMode::NxDomain,
            grace: Duration::from_secs(60),
            upstream_timeout: Duration::from_secs(2),
            upstream_attempts: 2,
            tcp_idle_timeout: Duration::from_secs(10),
            max_tcp_message: usize::from(u16::MAX),
            max_tcp_connections: 64,
            max_in_flight: 1024,
            cache_entries: 10_000,
            max_ttl: Duration::from_secs(300),
            static_hosts: StaticHosts::new(),
            budget: BudgetLimits::default(),
        }
    }

    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::NoListen);
        }
        if self.upstreams.is_empty() {
            return Err(ConfigError::NoUpstream("the list is empty".into()));
        }
        if let Some(up) = self.upstreams.iter().find(|u| self.listen.contains(u)) {
            return Err(ConfigError::UpstreamLoop(*up));
        }
        for (name, zero) in [
            ("upstream_timeout", self.upstream_timeout.is_zero()),
            ("upstream_attempts", self.upstream_attempts == 0),
            ("tcp_idle_timeout", self.tcp_idle_timeout.is_zero()),
            ("max_tcp_message", self.max_tcp_message == 0),
            ("max_tcp_connections", self.max_tcp_connections == 0),
            ("max_in_flight", self.max_in_flight == 0),
            ("max_ttl", self.max_ttl.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }
}

/// Parses one `--upstream-dns` value: `IP`, `IP:PORT` or `[IPv6]:PORT`
/// (port 53 when omitted).
pub fn parse_upstream(input: &str) -> Result<SocketAddr, ConfigError> {
    let err = |problem: &str| ConfigError::Upstream {
        input: input.to_string(),
        problem: problem.to_string(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(err("it is empty"));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DNS_PORT));
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(err("port 0 is not a server port")),
        Ok(addr) => Ok(addr),
        Err(_) => Err(err(
            "not an IP address or IP:PORT (host names are not accepted)",
        )),
    }
}

/// The nameservers of a resolv.conf file (port 53).
pub fn upstreams_from_resolv_conf(path: &Path) -> Result<Vec<SocketAddr>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::ResolvConfRead {
        path: path.to_path_buf(),
        source,
    })?;
    let config = resolv_conf::Config::parse(&bytes).map_err(|e| ConfigError::ResolvConfParse {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let servers: Vec<SocketAddr> = config
        .nameservers
        .iter()
        .map(|ns| match ns {
            resolv_conf::ScopedIp::V4(v4) => SocketAddr::new(IpAddr::V4(*v4), DNS_PORT),
            resolv_conf::ScopedIp::V6(v6, scope) => {
                let scope_id = scope
                    .as_deref()
                    .and_then(|s| s.parse::<u32>().ok().or_else(|| interface_index(s)))
                    .unwrap_or(0);
                SocketAddr::V6(SocketAddrV6::new(*v6, DNS_PORT, 0, scope_id))
            }
        })
        .collect();
    if servers.is_empty() {
        return Err(ConfigError::NoUpstream(format!(
            "{} lists no nameserver",
            path.display()
        )));
    }
    Ok(servers)
}

fn interface_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

#[cfg(test)]
mod tests;
