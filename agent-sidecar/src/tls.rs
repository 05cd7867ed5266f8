//! TLS termination for hosts marked `inspect` in policy, so the tool gateway
//! sees every tool call in full (see `docs/tls.md`).
//!
//! - [`ca`]: the per-sidecar CA (generated, key in memory only) or an
//!   operator-supplied one, validated;
//! - [`leaf`]: leaf certificates issued per SNI for allowed names, cached;
//! - [`server`]: the agent-side rustls `ServerConfig` (ALPN h2, http/1.1);
//! - [`upstream`]: the trust anchors and the upstream `ClientConfig`;
//! - [`bundle`]: the agent's trust bundle and environment variables;
//! - [`TlsTerminator`]: accept from the agent, connect upstream.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod ca;
mod error;
pub mod leaf;
pub mod server;
mod terminator;
pub mod upstream;

pub use bundle::{AgentTrustBundle, write_agent_bundle};
pub use ca::{CaOptions, CertificateAuthority};
pub use error::TlsError;
pub use leaf::{LeafCache, LeafOptions, MayTerminate};
pub use server::agent_server_config;
pub use terminator::{TerminatorOptions, TlsTerminator};
pub use upstream::{SystemRoots, TrustAnchors, upstream_client_config};

#[cfg(test)]
mod test_support;
