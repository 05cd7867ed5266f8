//! Errors of the DNS resolver.

use std::{io, net::SocketAddr, path::PathBuf, time::Duration};

/// A resolver configuration that cannot work, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An `--upstream-dns` value that is not an address.
    #[error(
        "invalid upstream DNS server `{input}`: {problem}; write IP or IP:PORT \
         (e.g. 10.0.0.2, 10.0.0.2:53, [2001:db8::53]:53)"
    )]
    Upstream {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A `--static-host` value that is not `NAME=IP`.
    #[error(
        "invalid static host `{input}`: {problem}; write NAME=IP \
         (e.g. crm.example.test=127.0.0.1, crm.example.test=2001:db8::5)"
    )]
    StaticHost {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A refusal style other than `nxdomain` or `refused`.
    #[error("invalid DNS refusal style `{0}`; write `nxdomain` (the default) or `refused`")]
    Refusal(String),
    /// resolv.conf could not be read.
    #[error("cannot read {}: {source}; pass upstream servers with --upstream-dns", path.display())]
    ResolvConfRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// resolv.conf could not be parsed.
    #[error("cannot parse {}: {problem}; fix it or pass --upstream-dns", path.display())]
    ResolvConfParse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        problem: String,
    },
    /// No upstream server is configured.
    #[error("no upstream DNS server: {0}; pass --upstream-dns IP[:PORT]")]
    NoUpstream(String),
    /// No listen address is configured.
    #[error("the DNS resolver has no listen address")]
    NoListen,
    /// An upstream is one of the resolver's own listen addresses.
    #[error("upstream DNS server {0} is the resolver itself; this would loop")]
    UpstreamLoop(SocketAddr),
    /// A duration or size that must not be zero is zero.
    #[error("DNS setting `{0}` must be greater than zero")]
    Zero(&'static str),
}

/// The resolver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen for DNS on {addr} ({transport}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        transport: &'static str,
        /// Why.
        source: io::Error,
    },
}

/// An upstream exchange that gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer in time.
    #[error("upstream {server} did not answer within {timeout:?}")]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// The time limit.
        timeout: Duration,
    },
    /// A socket error.
    #[error("upstream {server}: {source}")]
    Io {
        /// The server.
        server: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server answered with an error code.
    #[error("upstream {server} answered {rcode}")]
    Rcode {
        /// The server.
        server: SocketAddr,
        /// The response code.
        rcode: String,
    },
    /// The query could not be encoded (a name too long to forward).
    #[error("cannot encode the upstream query: {0}")]
    Encode(String),
    /// The TCP connection closed without an answer.
    #[error("upstream {server} closed the TCP connection without answering")]
    Closed {
        /// The server.
        server: SocketAddr,
    },
    /// No upstream server is configured.
    #[error("no upstream DNS server configured")]
    NoServer,
}

impl UpstreamError {
    /// Every [`UpstreamError::reason`], in a fixed order (the metric's
    /// `reason` label values).
    pub const REASONS: [&'static str; 6] =
        ["timeout", "io", "rcode", "encode", "closed", "no_server"];

    /// A short name for the kind of failure: the `reason` label of
    /// `agent_sidecar_dns_upstream_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Io { .. } => "io",
            UpstreamError::Rcode { .. } => "rcode",
            UpstreamError::Encode(_) => "encode",
            UpstreamError::Closed { .. } => "closed",
            UpstreamError::NoServer => "no_server",
        }
    }
}
