//! [`TlsTerminator`]: the agent-side acceptor and the upstream connector of
//! an inspected connection, sharing one CA and one leaf cache.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use super::{
    AgentTrustBundle, CertificateAuthority, LeafCache, LeafOptions, MayTerminate, TlsError,
    TrustAnchors, agent_server_config, leaf::normalize, upstream_client_config, write_agent_bundle,
};

/// Default limit on a TLS handshake (agent side) or a TCP connect plus
/// handshake (upstream side).
pub(super) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of a [`TlsTerminator`].
#[derive(Clone, Debug)]
pub struct TerminatorOptions {
    /// Leaf cache sizing and lifetime.
    pub leaf: LeafOptions,
    /// Handshake time limit, each side.
    pub handshake_timeout: Duration,
}

impl Default for TerminatorOptions {
    fn default() -> Self {
        Self {
            leaf: LeafOptions::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Terminates the agent's TLS for allowed names and opens verified TLS
/// connections upstream.
pub struct TlsTerminator {
    ca: Arc<CertificateAuthority>,
    leaves: Arc<LeafCache>,
    anchors: TrustAnchors,
    acceptor: TlsAcceptor,
    client: Arc<rustls::ClientConfig>,
    connector: TlsConnector,
    handshake_timeout: Duration,
}

impl TlsTerminator {
    /// Builds the agent-side and upstream configurations. `allow` decides
    /// which server names may be terminated (asked on every handshake).
    pub fn new(
        ca: CertificateAuthority,
        anchors: TrustAnchors,
        allow: MayTerminate,
        options: TerminatorOptions,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = Arc::new(ca);
        let leaves = Arc::new(LeafCache::new(
            Arc::clone(&ca),
            allow,
            options.leaf,
            Arc::clone(&provider),
        )?);
        let server = agent_server_config(Arc::clone(&leaves), Arc::clone(&provider))?;
        let client = Arc::new(upstream_client_config(&anchors, provider)?);
        Ok(Self {
            ca,
            leaves,
            anchors,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::clone(&client)),
            client,
            handshake_timeout: options.handshake_timeout,
        })
    }

    /// Completes the agent's handshake on `io` and returns the stream with
    /// the server name (lower-case) it asked for. Fails for a ClientHello
    /// without SNI or for a name the policy refuses (the agent gets a
    /// fatal TLS alert, `access_denied`).
    pub async fn accept<IO>(&self, io: IO) -> Result<(server::TlsStream<IO>, String), TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(io))
            .await
            .map_err(|_| TlsError::HandshakeTimeout(self.handshake_timeout))?
            .map_err(TlsError::AgentHandshake)?;
        let sni = stream
            .get_ref()
            .1
            .server_name()
            .map(normalize)
            .ok_or(TlsError::NoServerName)?;
        Ok((stream, sni))
    }

    /// Dials `addr:port` (the address the sidecar resolved) and completes a
    /// TLS handshake verifying the certificate for `host`. Any verification
    /// failure is an error.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        addr: IpAddr,
    ) -> Result<client::TlsStream<TcpStream>, TlsError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::InvalidServerName(host.to_owned()))?;
        let addr = SocketAddr::new(addr, port);
        let handshake = async {
            let tcp = TcpStream::connect(addr).await?;
            self.connector.connect(name, tcp).await
        };
        tokio::time::timeout(self.handshake_timeout, handshake)
            .await
            .map_err(|_| TlsError::HandshakeTimeout(self.handshake_timeout))?
            .map_err(|source| TlsError::UpstreamHandshake {
                host: host.to_owned(),
                addr,
                source,
            })
    }

    /// The verified upstream client configuration (the trust anchors this
    /// terminator was built with), for clients of its own such as a pooled
    /// HTTP client.
    pub fn upstream_client_config(&self) -> rustls::ClientConfig {
        (*self.client).clone()
    }

    /// Writes the agent trust bundle into `dir` (see [`write_agent_bundle`]).
    pub fn write_agent_bundle(&self, dir: &Path) -> Result<AgentTrustBundle, TlsError> {
        write_agent_bundle(dir, &self.anchors, &self.ca)
    }

    /// The sidecar CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The leaf cache (for metrics: issued, cached).
    pub fn leaves(&self) -> &LeafCache {
        &self.leaves
    }
}

impl fmt::Debug for TlsTerminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTerminator")
            .field("ca", &self.ca)
            .field("leaves", &self.leaves)
            .field("anchors", &self.anchors.root_store().len())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}
