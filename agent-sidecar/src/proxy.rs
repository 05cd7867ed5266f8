//! Name-based egress for HTTP(S): the only way a governed agent's HTTP and
//! TLS traffic leaves the pod.
//!
//! Two kinds of listener share one [`ProxyContext`]:
//! - [`ExplicitProxy`]: `HTTP_PROXY`/`HTTPS_PROXY` — `CONNECT host:port`
//!   tunnels and absolute-form `http://` requests;
//! - [`TransparentListener`]: one per intercepted original port; the kernel
//!   redirects the agent's connects there and the destination is read from
//!   the ClientHello (SNI) or the request head (`Host`).
//!
//! A stream to a tool host goes to the [`Inspect`]or (the tool gateway)
//! instead of being spliced; plain HTTP to a tool host is refused.
//!
//! Either way the destination is a *name*: it must pass the [`HostPolicy`],
//! and the proxy dials only what the sidecar's own [`Resolve`] returned for
//! it — never the address the agent connected to or asked for. Refusals are
//! shown in the agent's protocol (HTTP 403/400/502 with a JSON body, or a
//! fatal TLS alert), nothing is dialled for them, and every connection leaves
//! a [`ProxyEvent`]. See `docs/proxy.md`.

mod config;
mod context;
mod dial;
mod error;
mod events;
mod explicit;
mod forward;
mod gate;
mod host_policy;
mod inspect;
mod listen;
mod metrics;
pub mod name;
mod record;
mod refusal;
mod reply;
mod route;
pub mod sniff;
mod splice;
mod transparent;

#[cfg(test)]
mod testing;

pub use config::ProxyConfig;
pub use context::ProxyContext;
pub use error::ProxyError;
pub use events::{ConnectionOutcome, ListenerKind, ProxyEvent, ProxyEventSink};
pub use explicit::ExplicitProxy;
pub use host_policy::{Allowed, HostPolicy, HostRefusal, Resolve, ResolveError, ResolveFuture};
pub use inspect::{Inspect, Io, Rewind};
pub use metrics::ProxyMetrics;
pub use refusal::{Denial, tls_alert};
pub use transparent::TransparentListener;
