//! Helpers shared by the unit tests of the TLS module.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{CaOptions, CertificateAuthority, LeafCache, LeafOptions, MayTerminate};

/// A fresh, empty directory under the system temp dir, removed when the
/// returned guard drops.
pub(super) fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("agent-sidecar-tls-{tag}-"))
        .tempdir()
        .expect("create temp dir")
}

/// Writes `contents` to `dir/name` and returns the path.
pub(super) fn write(dir: impl AsRef<Path>, name: &str, contents: &str) -> PathBuf {
    let path = dir.as_ref().join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// A generated CA with default options.
pub(super) fn generated_ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::generate(&CaOptions::default()).expect("generate CA"))
}

/// A leaf cache allowing names under `example.com`.
pub(super) fn cache(ca: Arc<CertificateAuthority>, options: LeafOptions) -> LeafCache {
    let allow: MayTerminate = Arc::new(|n: &str| n == "example.com" || n.ends_with(".example.com"));
    LeafCache::new(
        ca,
        allow,
        options,
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .expect("leaf cache")
}

/// An independent CA (the tests' rcgen one), as an operator would make it:
/// (cert PEM, key PEM).
pub(super) fn rcgen_ca(
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String) {
    let ca = agent_sidecar_test_support::ca::TestCa::builder()
        .common_name("operator test CA")
        .key_cert_sign()
        .validity(not_before, not_after)
        .build();
    (ca.cert_pem(), ca.key_pem())
}
