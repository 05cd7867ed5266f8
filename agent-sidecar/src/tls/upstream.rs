//! What the sidecar trusts when it connects upstream: the system roots
//! bundle plus operator-supplied CA files, and the rustls [`ClientConfig`]
//! built from them.
//!
//! The system roots are read from the distribution's PEM bundle file (the
//! one `ca-certificates` maintains) rather than through a platform API, so
//! that the very same certificates can be written into the agent's trust
//! bundle: the agent trusts exactly what the sidecar trusts upstream, plus
//! the sidecar CA.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    ClientConfig, RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, pem::PemObject as _},
};

use super::{TlsError, server::ALPN_PROTOCOLS};

/// Well-known locations of the system roots bundle, probed in order
/// (Debian/Ubuntu/Alpine/Arch, Fedora/RHEL, openSUSE, BSD/Alpine).
pub const SYSTEM_BUNDLE_PATHS: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Where the system roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemRoots {
    /// The first of [`SYSTEM_BUNDLE_PATHS`] that exists; none is fine (then
    /// only operator CAs are trusted).
    Probe,
    /// This bundle file, which must exist.
    File(PathBuf),
    /// No system roots: only operator CAs.
    Disabled,
}

/// A set of CA certificates read from one PEM file.
#[derive(Clone, Debug)]
pub struct CaFile {
    /// The file.
    pub path: PathBuf,
    /// Its certificates (DER).
    pub certs: Vec<CertificateDer<'static>>,
}

/// The upstream trust anchors.
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    system: Option<CaFile>,
    operator: Vec<CaFile>,
}

impl TrustAnchors {
    /// Reads the system bundle (per `system`) and every operator CA file.
    /// An operator file that cannot be read, holds no certificate, or holds
    /// a certificate that is not a usable trust anchor is an error naming
    /// the file. Fails when no trust anchor at all is left (fail closed).
    pub fn load(system: &SystemRoots, operator_ca_files: &[PathBuf]) -> Result<Self, TlsError> {
        let system = match system {
            SystemRoots::Disabled => None,
            SystemRoots::File(path) => Some(read_pem_certs(path)?),
            SystemRoots::Probe => SYSTEM_BUNDLE_PATHS
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .map(read_pem_certs)
                .transpose()?,
        };
        let operator = operator_ca_files
            .iter()
            .map(|path| {
                let file = read_pem_certs(path)?;
                for cert in &file.certs {
                    RootCertStore::empty().add(cert.clone()).map_err(|e| {
                        TlsError::bad_file(
                            path,
                            format!("a certificate is not a usable trust anchor: {e}"),
                            "supply PEM CA certificates (BEGIN CERTIFICATE)",
                        )
                    })?;
                }
                Ok(file)
            })
            .collect::<Result<Vec<_>, TlsError>>()?;
        let anchors = Self { system, operator };
        if anchors.root_store().is_empty() {
            return Err(TlsError::Config(
                "no upstream trust anchors: no system roots bundle found and no operator CA \
                 files given; install ca-certificates or pass CA files"
                    .into(),
            ));
        }
        Ok(anchors)
    }

    /// The system bundle in use, if any.
    pub fn system(&self) -> Option<&CaFile> {
        self.system.as_ref()
    }

    /// The operator-supplied CA files.
    pub fn operator(&self) -> &[CaFile] {
        &self.operator
    }

    /// All trust anchors as a rustls root store. Certificates of the system
    /// bundle that webpki cannot use are skipped (and logged).
    pub fn root_store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        if let Some(system) = &self.system {
            let (_, ignored) = store.add_parsable_certificates(system.certs.iter().cloned());
            if ignored > 0 {
                tracing::debug!(
                    path = %system.path.display(),
                    ignored,
                    "skipped unusable certificates in the system roots bundle"
                );
            }
        }
        store.add_parsable_certificates(self.operator.iter().flat_map(|f| f.certs.iter().cloned()));
        store
    }
}

/// The upstream client configuration: verifies the server's certificate
/// against `anchors` (a failure is a handshake error, never a downgrade),
/// TLS 1.2/1.3, ALPN `h2` then `http/1.1`.
pub fn upstream_client_config(
    anchors: &TrustAnchors,
    provider: Arc<CryptoProvider>,
) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(anchors.root_store())
        .with_no_client_auth();
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Reads every `CERTIFICATE` block of a PEM file; at least one is required.
fn read_pem_certs(path: &Path) -> Result<CaFile, TlsError> {
    let text = fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError::bad_file(
                path,
                format!("invalid PEM: {e}"),
                "supply PEM CA certificates (BEGIN CERTIFICATE)",
            )
        })?;
    if certs.is_empty() {
        return Err(TlsError::bad_file(
            path,
            "no CERTIFICATE block",
            "supply PEM CA certificates (BEGIN CERTIFICATE)",
        ));
    }
    Ok(CaFile {
        path: path.to_owned(),
        certs,
    })
}

#[cfg(test)]
mod tests;
