//! The per-agent DNS resolver. The kernel redirects every port-53 packet of
//! the agent's cgroup here; names the agent's [`NameAllowlist`] allows are
//! resolved upstream, filtered and cached, everything else is answered
//! locally (NXDOMAIN or REFUSED) without the name ever leaving the sidecar.
//! See `docs/dns.md` for the behaviour in full.
//!
//! Layers, one per file:
//! - [`decide`]: which queries are forwarded;
//! - [`filter`]: what of an upstream answer reaches the agent (CNAME chain,
//!   rebinding guard via [`rebinding`], HTTPS/SVCB hints);
//! - [`handle`]: the synchronous pipeline (parse, decide, build, filter,
//!   encode), fuzzable through [`handle_query_bytes`];
//! - [`cache`], [`upstream`], [`learned`], [`events`], [`metrics`];
//! - [`static_hosts`]: operator-given addresses (`--static-host NAME=IP`),
//!   answered locally for allowlisted names, outside the rebinding guard;
//! - [`resolver`]: the above together for one agent;
//! - [`server`]: UDP and TCP listeners.
//!
//! Starting the resolver of one agent:
//!
//! ```no_run
//! # async fn demo(allowlist: agent_sidecar::egress::NameAllowlist) -> Result<(), agent_sidecar::dns::DnsError> {
//! use agent_sidecar::dns::{self, DnsConfig, Hooks};
//! let upstreams = dns::upstreams_from_resolv_conf("/etc/resolv.conf".as_ref())?;
//! let config = DnsConfig::new("agent-1", vec!["127.0.0.1:0".parse().unwrap()], upstreams);
//! let server = dns::start(&config, allowlist, Hooks::default()).await?;
//! println!("resolver on {:?}", server.local_addrs());
//! # Ok(()) }
//! ```
//!
//! [`NameAllowlist`]: crate::egress::NameAllowlist

pub mod budget;
pub mod cache;
pub mod config;
pub mod decide;
pub mod error;
pub mod events;
pub mod filter;
pub mod handle;
pub mod learned;
pub mod metrics;
pub mod rebinding;
pub mod resolver;
pub mod server;
pub mod static_hosts;
pub mod upstream;

#[cfg(test)]
mod test_support;

pub use budget::BudgetLimits;
pub use config::{DnsConfig, RefusalMode, parse_upstream, upstreams_from_resolv_conf};
pub use error::{ConfigError, DnsError, UpstreamError};
pub use events::{DnsDecision, DnsEvent, DnsEventSink, DroppedAddress, Transport};
pub use handle::handle_query_bytes;
pub use learned::{Learned, LearnedKey, LearnedSink};
pub use metrics::{AgentDnsMetrics, DnsMetrics};
pub use rebinding::BlockedRange;
pub use resolver::{Hooks, Resolver};
pub use server::DnsServer;
pub use static_hosts::{STATIC_TTL, StaticHost, StaticHosts, parse_static_host};

use crate::egress::NameAllowlist;

/// Starts the resolver of one agent: a [`Resolver`] over `allowlist` and its
/// listeners on `config.listen`.
pub async fn start(
    config: &DnsConfig,
    allowlist: NameAllowlist,
    hooks: Hooks,
) -> Result<DnsServer, DnsError> {
    let resolver = Resolver::new(config, allowlist, hooks);
    DnsServer::start(config, resolver).await
}
