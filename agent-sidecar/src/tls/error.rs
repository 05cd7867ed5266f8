//! Errors of the TLS-termination layer. Every variant that comes from an
//! operator-supplied file names the file and says how to fix it.

use std::{io, path::PathBuf};

/// Why a CA could not be generated or loaded, a leaf not issued, a bundle not
/// written, or a handshake not completed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// An operator-supplied file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// An operator-supplied file does not hold what it should.
    #[error("{path}: {problem}; fix: {fix}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What the operator should do.
        fix: &'static str,
    },

    /// The CA is outside its validity period, so nothing it signs would be
    /// trusted.
    #[error("the sidecar CA is not valid now (valid {not_before} .. {not_after})")]
    CaNotValid {
        /// Start of validity (RFC 3339).
        not_before: String,
        /// End of validity (RFC 3339).
        not_after: String,
    },

    /// An option passed by the caller is out of range.
    #[error("invalid TLS option: {0}")]
    Config(String),

    /// The caller's name policy does not allow terminating this name.
    #[error("TLS termination is not allowed for {0:?}")]
    NameNotAllowed(String),

    /// The agent's ClientHello carried no SNI: the sidecar terminates names,
    /// never bare addresses.
    #[error("the ClientHello carries no server name (SNI)")]
    NoServerName,

    /// A leaf certificate could not be issued (here or in a concurrent
    /// request for the same name).
    #[error("cannot issue a certificate for {name:?}: {reason}")]
    LeafIssuance {
        /// The server name.
        name: String,
        /// Why.
        reason: String,
    },

    /// rcgen failed to build a key or a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),

    /// rustls rejected a key or configuration.
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),

    /// A name is not a valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    InvalidServerName(String),

    /// The agent-side handshake failed (bad ClientHello, refused name,
    /// client rejected our certificate, ...).
    #[error("agent TLS handshake failed: {0}")]
    AgentHandshake(#[source] io::Error),

    /// The upstream TCP connection or handshake failed; a certificate that
    /// does not verify ends up here, never in a silent downgrade.
    #[error("upstream TLS to {host} ({addr}) failed: {source}")]
    UpstreamHandshake {
        /// The name that was verified.
        host: String,
        /// The address that was dialled.
        addr: std::net::SocketAddr,
        /// The underlying error; for a certificate problem its inner error
        /// is a [`rustls::Error::InvalidCertificate`].
        source: io::Error,
    },

    /// A handshake did not finish in time.
    #[error("TLS handshake timed out after {0:?}")]
    HandshakeTimeout(std::time::Duration),

    /// The agent trust bundle could not be written.
    #[error("cannot write the agent trust bundle {path}: {source}")]
    WriteBundle {
        /// The file being written.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
}

impl TlsError {
    /// A [`TlsError::BadFile`] for `path`.
    pub(crate) fn bad_file(
        path: impl Into<PathBuf>,
        problem: impl Into<String>,
        fix: &'static str,
    ) -> Self {
        Self::BadFile {
            path: path.into(),
            problem: problem.into(),
            fix,
        }
    }
}
