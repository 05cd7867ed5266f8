//! The one test certificate authority: a throw-away CA made with rcgen and
//! the leaf certificates it signs, as PEM and DER, as files (for curl,
//! Python, nginx or the sidecar's `--upstream-ca`) and as rustls
//! configurations (for in-process servers and clients).

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};
use time::OffsetDateTime;
use tokio_rustls::TlsAcceptor;

use crate::temp::TempDir;

/// The common name of a CA made by [`TestCa::new`].
pub const DEFAULT_COMMON_NAME: &str = "agent-sidecar test CA";

/// How [`TestCa::builder`] makes a CA.
#[derive(Debug)]
pub struct CaBuilder {
    common_name: String,
    validity: Option<(OffsetDateTime, OffsetDateTime)>,
    key_cert_sign: bool,
}

impl CaBuilder {
    /// The CA certificate's common name (default [`DEFAULT_COMMON_NAME`]).
    pub fn common_name(mut self, name: &str) -> Self {
        self.common_name = name.to_owned();
        self
    }

    /// The CA certificate's validity (default: rcgen's, 1975 to 4096).
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.validity = Some((not_before, not_after));
        self
    }

    /// Declares the key usages keyCertSign and cRLSign, as an operator's CA
    /// does (default: no key usage extension).
    pub fn key_cert_sign(mut self) -> Self {
        self.key_cert_sign = true;
        self
    }

    /// Generates the key and the self-signed CA certificate.
    pub fn build(self) -> TestCa {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, self.common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        if self.key_cert_sign {
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        if let Some((not_before, not_after)) = self.validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        let cert = params.self_signed(&key).expect("ca cert");
        let key_pem = key.serialize_pem();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).expect("root");
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TestCa {
            issuer: Issuer::new(params, key),
            cert,
            key_pem,
            client: Arc::new(client),
            dir: OnceLock::new(),
        }
    }
}

/// A throw-away certificate authority. Its files (see [`TestCa::ca_file`]
/// and [`TestCa::issue`]) live in a temp dir of its own, made on first use
/// and removed on drop.
pub struct TestCa {
    cert: Certificate,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    client: Arc<ClientConfig>,
    dir: OnceLock<TempDir>,
}

impl TestCa {
    /// A CA named [`DEFAULT_COMMON_NAME`].
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A CA with other properties.
    pub fn builder() -> CaBuilder {
        CaBuilder {
            common_name: DEFAULT_COMMON_NAME.to_owned(),
            validity: None,
            key_cert_sign: false,
        }
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The CA's private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// A rustls client configuration (ring) trusting only this CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), signed by
    /// this CA.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        let chain = vec![cert.der().clone(), self.cert_der()];
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                chain,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        Leaf {
            cert,
            key,
            ca_pem: self.cert_pem(),
            server: Arc::new(server),
        }
    }

    /// The CA certificate as a PEM file, to trust.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir().join("ca.pem");
        if !path.exists() {
            std::fs::write(&path, self.cert_pem()).expect("write ca");
        }
        path
    }

    /// Issues a leaf certificate for `names` and writes it as
    /// `<label>.pem` (the certificate) and `<label>.key` (its key) in this
    /// CA's directory; returns the two paths.
    pub fn issue(&self, label: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let leaf = self.leaf(names);
        let (cert, key) = (
            self.dir().join(format!("{label}.pem")),
            self.dir().join(format!("{label}.key")),
        );
        std::fs::write(&cert, leaf.cert_pem()).expect("write cert");
        std::fs::write(&key, leaf.key_pem()).expect("write key");
        (cert, key)
    }

    fn dir(&self) -> &std::path::Path {
        self.dir.get_or_init(TempDir::new).path()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A leaf certificate signed by a [`TestCa`], with its key.
pub struct Leaf {
    cert: Certificate,
    key: KeyPair,
    ca_pem: String,
    server: Arc<ServerConfig>,
}

impl Leaf {
    /// The certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The certificate followed by its CA's (PEM), as servers present it.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.cert.pem(), self.ca_pem)
    }

    /// The private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The certificate (DER).
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The private key (PKCS#8 DER).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// A rustls server configuration (ring) presenting the certificate and
    /// its CA's; one per leaf, shared by every acceptor.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// A TLS acceptor on [`Leaf::server_config`].
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server.clone())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
