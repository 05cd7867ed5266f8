//! The two things the proxy asks of the rest of the sidecar: a decision on a
//! name ([`HostPolicy`]) and the addresses of an allowed name ([`Resolve`]).
//!
//! Both are traits so the proxy does not depend on the policy compiler or the
//! DNS module: the sidecar adapts its own name rules and resolver to them.

use std::{future::Future, net::IpAddr, pin::Pin};

/// An allowed `(host, port)`: which rule allowed it, for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// Description of the rule that allowed the name (id, pattern...).
    pub rule: String,
}

impl Allowed {
    /// An allow decision made by `rule`.
    pub fn new(rule: impl Into<String>) -> Self {
        Self { rule: rule.into() }
    }
}

/// A refused `(host, port)`: a machine-readable reason code and the rule or
/// explanation behind it. Both are shown to the agent in the refusal body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRefusal {
    /// Short reason code, e.g. `not_allowlisted`.
    pub reason: String,
    /// The rule that refused the name, or an explanation when no rule matched.
    pub rule: String,
}

impl HostRefusal {
    /// A refusal with `reason` code, explained by `rule`.
    pub fn new(reason: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            rule: rule.into(),
        }
    }
}

/// Decides whether an agent may reach `host:port` by name.
///
/// `host` is lower-case, without a trailing dot, and never an IP literal (the
/// proxy refuses IP literals before asking).
pub trait HostPolicy: Send + Sync {
    /// The decision for `host:port`.
    fn decide(&self, host: &str, port: u16) -> Result<Allowed, HostRefusal>;
}

/// Why a name could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name does not exist (NXDOMAIN) or has no address records.
    #[error("{host}: no such name or no address")]
    NoAddress {
        /// The name asked for.
        host: String,
    },
    /// Every address of the name was refused by the rebinding guard
    /// (loopback, private, link-local... where not allowed).
    #[error("{host}: every address refused by the rebinding guard")]
    Rebinding {
        /// The name asked for.
        host: String,
    },
    /// The upstream resolver failed or timed out.
    #[error("{host}: resolver failure: {detail}")]
    Failed {
        /// The name asked for.
        host: String,
        /// What went wrong.
        detail: String,
    },
}

/// The future returned by [`Resolve::resolve`].
pub type ResolveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, ResolveError>> + Send + 'a>>;

/// The sidecar's own resolver. It has already applied the rebinding guard:
/// the proxy dials what it returns, in order, and nothing else.
pub trait Resolve: Send + Sync {
    /// The addresses of `host` (lower-case, no trailing dot).
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a>;
}
