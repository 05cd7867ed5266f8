//! An agent's fleet identity, read from files (certificate, key, fleet CA),
//! checked against the fleet CA and the clock, reloaded on rotation; and the
//! identity of a TLS peer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{DelegationError, Refusal};

fn cert_err(e: impl std::fmt::Display) -> DelegationError {
    DelegationError::Cert(e.to_string())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Fleet CA roots (one or more PEM certificates).
pub fn fleet_roots(ca_pem: &str) -> Result<Arc<RootCertStore>, DelegationError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(cert_err)?).map_err(cert_err)?;
    }
    if roots.is_empty() {
        return Err(DelegationError::Cert(
            "fleet CA file holds no certificate".into(),
        ));
    }
    Ok(Arc::new(roots))
}

/// The SPIFFE ID and token-verifying key of a certificate (its URI SAN and
/// its Ed25519 public key). Chain verification is the caller's (the TLS
/// handshake, or [`AgentIdentity::from_pem`]).
pub fn peer_identity(
    cert: &CertificateDer<'_>,
) -> Result<(String, biscuit_auth::PublicKey), Refusal> {
    let (_, x509) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| Refusal::Malformed(format!("peer certificate: {e}")))?;
    let id = x509
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                GeneralName::URI(u) if u.starts_with("spiffe://") => Some((*u).to_string()),
                _ => None,
            })
        })
        .ok_or(Refusal::MissingIdentity)?;
    let key = biscuit_auth::PublicKey::from_bytes(
        &x509.public_key().subject_public_key.data,
        biscuit_auth::Algorithm::Ed25519,
    )
    .map_err(|e| Refusal::Malformed(format!("peer key is not Ed25519: {e}")))?;
    Ok((id, key))
}

/// An agent's identity: certificate chain, key, SPIFFE ID and the key pair
/// that signs its delegation tokens (the same Ed25519 key).
pub struct AgentIdentity {
    /// `spiffe://<trust-domain>/team/<team>/agent/<agent>`.
    pub spiffe_id: String,
    /// Certificate notAfter, unix seconds.
    pub not_after: i64,
    chain: Vec<CertificateDer<'static>>,
    key_pem: String,
    roots: Arc<RootCertStore>,
    keypair: biscuit_auth::KeyPair,
}

impl std::fmt::Debug for AgentIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentIdentity")
            .field("spiffe_id", &self.spiffe_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl AgentIdentity {
    /// Reads an identity from files; refuses one not chained to the fleet CA,
    /// expired or not yet valid.
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, DelegationError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| DelegationError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        Self::from_pem(&read(cert)?, &read(key)?, &read(ca)?, cert)
    }

    /// As [`load`](Self::load), from PEM text; `label` names the source in errors.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        ca_pem: &str,
        label: &Path,
    ) -> Result<Self, DelegationError> {
        let roots = fleet_roots(ca_pem)?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(cert_err)?;
        let leaf = chain
            .first()
            .ok_or_else(|| DelegationError::Cert(format!("{}: no certificate", label.display())))?;
        let (_, x509) = X509Certificate::from_der(leaf.as_ref()).map_err(cert_err)?;
        let not_after = x509.validity().not_after.timestamp();
        if !x509.validity().is_valid() {
            return Err(DelegationError::ExpiredIdentity {
                path: label.to_path_buf(),
                not_after,
            });
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(cert_err)?;
        verifier
            .verify_client_cert(leaf, &chain[1..], UnixTime::now())
            .map_err(|e| {
                DelegationError::Cert(format!(
                    "{}: not issued by the fleet CA: {e}",
                    label.display()
                ))
            })?;
        let (spiffe_id, _) = peer_identity(leaf).map_err(cert_err)?;
        let keypair = biscuit_auth::KeyPair::from_private_key_pem_with_algorithm(
            key_pem,
            biscuit_auth::Algorithm::Ed25519,
        )
        .map_err(|e| {
            DelegationError::Cert(format!("identity key is not an Ed25519 PKCS#8 key: {e}"))
        })?;
        Ok(Self {
            spiffe_id,
            not_after,
            chain,
            key_pem: key_pem.to_string(),
            roots,
            keypair,
        })
    }

    /// The key pair that signs this agent's delegation tokens.
    pub fn keypair(&self) -> &biscuit_auth::KeyPair {
        &self.keypair
    }

    /// Whether the certificate has expired.
    pub fn expired(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        now >= self.not_after
    }

    fn key_der(&self) -> Result<PrivateKeyDer<'static>, DelegationError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(cert_err)
    }

    /// TLS client configuration: presents this identity, trusts only the fleet CA.
    pub fn client_config(&self) -> Result<ClientConfig, DelegationError> {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cert_err)?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key_der()?)
            .map_err(cert_err)
    }

    /// TLS server configuration: presents this identity and requires a client
    /// certificate issued by the fleet CA.
    pub fn server_config(&self) -> Result<ServerConfig, DelegationError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(cert_err)?;
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cert_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key_der()?)
            .map_err(cert_err)
    }
}

/// The identity files, reloaded when they change (rotation).
#[derive(Debug)]
pub struct IdentityFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    current: ArcSwap<AgentIdentity>,
    seen: Mutex<Option<SystemTime>>,
}

impl IdentityFiles {
    /// Loads the identity; fails if it is invalid or expired.
    pub fn open(cert: PathBuf, key: PathBuf, ca: PathBuf) -> Result<Self, DelegationError> {
        let id = AgentIdentity::load(&cert, &key, &ca)?;
        let seen = std::fs::metadata(&cert).and_then(|m| m.modified()).ok();
        Ok(Self {
            cert,
            key,
            ca,
            current: ArcSwap::from_pointee(id),
            seen: Mutex::new(seen),
        })
    }

    /// The current identity, reloaded first if the certificate file changed.
    /// A rotated identity that fails to load keeps the previous one (and the
    /// error is returned); an expired current identity is refused.
    pub fn current(&self) -> Result<Arc<AgentIdentity>, DelegationError> {
        let modified = std::fs::metadata(&self.cert)
            .and_then(|m| m.modified())
            .ok();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if modified != *seen {
            let id = AgentIdentity::load(&self.cert, &self.key, &self.ca)?;
            self.current.store(Arc::new(id));
            *seen = modified;
        }
        drop(seen);
        let id = self.current.load_full();
        if id.expired() {
            return Err(DelegationError::ExpiredIdentity {
                path: self.cert.clone(),
                not_after: id.not_after,
            });
        }
        Ok(id)
    }
}
