//! Helpers shared by the unit tests of the TLS module.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use super::{CaOptions, CertificateAuthority, LeafCache, LeafOptions, MayTerminate};

/// A fresh, empty directory under the system temp dir, removed when the
/// returned guard drops.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("agent-sidecar-tls-{tag}-"))
        .tempdir()
        .expect("create temp dir")
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: impl AsRef<Path>, name: &str, contents: &str) -> PathBuf {
    let path = dir.as_ref().join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// A generated CA with default options.
pub fn generated_ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::generate(&CaOptions::default()).expect("generate CA"))
}

/// A leaf cache allowing names under `example.com`.
pub fn cache(ca: Arc<CertificateAuthority>, options: LeafOptions) -> LeafCache {
    let allow: MayTerminate = Arc::new(|n: &str| n == "example.com" || n.ends_with(".example.com"));
    LeafCache::new(
        ca,
        allow,
        options,
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .expect("leaf cache")
}

/// An independent CA made with rcgen directly: (cert PEM, key PEM).
pub fn rcgen_ca(
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "operator test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert.pem(), key.serialize_pem())
}
