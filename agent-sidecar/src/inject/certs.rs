//! The webhook's serving certificate, reloaded when its files change
//! (a renewed Secret, cert-manager rotation).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Errors loading the serving certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or holds no usable PEM.
    #[error(
        "webhook certificate: {what} {path}: {detail}; give a PEM file (tls.crt / tls.key of a kubernetes.io/tls Secret)"
    )]
    Pem {
        /// Certificate chain or private key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The key does not fit the certificate or is of an unsupported type.
    #[error(
        "webhook certificate: the key in {path} is unusable: {detail}; give the key that matches the certificate"
    )]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Loads the chain at `cert` and the key at `key`.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let pem = |what, path: &Path, detail: String| CertError::Pem {
        what,
        path: path.to_owned(),
        detail,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem("certificate chain", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem("certificate chain", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(
            "certificate chain",
            cert,
            "no CERTIFICATE block".to_owned(),
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem("private key", key, e.to_string()))?;
    let certified =
        CertifiedKey::from_der(chain, private, provider).map_err(|e| CertError::Key {
            path: key.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(certified)
}

/// Serves the current certificate; [`ReloadingCert::watch`] swaps it.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl ReloadingCert {
    /// Loads the pair once; fails when it is unusable.
    pub fn new(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, CertError> {
        let loaded = load(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            current: ArcSwap::from_pointee(loaded),
        })
    }

    /// Reloads the pair now; on error the previous certificate stays.
    pub fn reload(&self) -> Result<(), CertError> {
        let loaded = load(&self.cert, &self.key, &self.provider)?;
        self.current.store(Arc::new(loaded));
        Ok(())
    }

    /// Polls the files every `every` (their modification time and size,
    /// following the symlinks a mounted Secret swaps) and reloads on change.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let stamps = |s: &Self| (stamp(&s.cert), stamp(&s.key));
        let mut last = stamps(&self);
        loop {
            tokio::time::sleep(every).await;
            let now = stamps(&self);
            if now == last {
                continue;
            }
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.cert.display(), "webhook certificate reloaded");
                    last = now;
                }
                // A half-written pair: keep serving the old one and retry.
                Err(error) => {
                    tracing::warn!(%error, "webhook certificate not reloaded; serving the previous one")
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
