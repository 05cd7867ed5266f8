//! The agent-facing rustls [`ServerConfig`]: the certificate is chosen per
//! SNI by a [`ResolvesServerCert`] backed by the [`LeafCache`]. A ClientHello
//! without SNI, or for a name the policy refuses, gets no certificate, so the
//! handshake fails with an alert.

use std::sync::Arc;

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::{LeafCache, TlsError};

/// ALPN protocols offered to the agent and to upstreams, in preference order.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Resolves the agent's SNI to a leaf certificate.
#[derive(Debug)]
struct SniResolver {
    leaves: Arc<LeafCache>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = client_hello.server_name() else {
            tracing::info!("refusing TLS termination: {}", TlsError::NoServerName);
            return None;
        };
        match self.leaves.get(name) {
            Ok(key) => Some(key),
            Err(error) => {
                tracing::info!(%error, "refusing TLS termination");
                None
            }
        }
    }
}

/// The agent-side server configuration: TLS 1.2/1.3, no client auth, ALPN
/// `h2` then `http/1.1`, certificates from `leaves`.
pub fn agent_server_config(
    leaves: Arc<LeafCache>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { leaves }));
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests;
