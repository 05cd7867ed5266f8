//! Helpers shared by the unit tests of the TLS module.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use super::{CaOptions, CertificateAuthority, LeafCache, LeafOptions, NamePolicy};

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "agent-sidecar-tls-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// A generated CA with default options.
pub fn generated_ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::generate(&CaOptions::default()).expect("generate CA"))
}

/// A leaf cache allowing names under `example.com`.
pub fn cache(ca: Arc<CertificateAuthority>, options: LeafOptions) -> LeafCache {
    let allow: NamePolicy = Arc::new(|n: &str| n == "example.com" || n.ends_with(".example.com"));
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
