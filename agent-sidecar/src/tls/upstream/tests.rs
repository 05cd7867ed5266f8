use super::*;
use crate::tls::test_support::{generated_ca, temp_dir, write};

#[test]
fn probe_finds_the_system_bundle() {
    let anchors = TrustAnchors::load(&SystemRoots::Probe, &[]).expect("system roots");
    let system = anchors.system().expect("a system bundle on this machine");
    assert!(
        SYSTEM_BUNDLE_PATHS
            .iter()
            .any(|p| Path::new(p) == system.path)
    );
    assert!(anchors.root_store().len() > 10);
}

#[test]
fn operator_ca_files_are_added() {
    let dir = temp_dir("upstream-ok");
    let ca = generated_ca();
    let file = write(&dir, "internal.pem", ca.cert_pem());
    let anchors = TrustAnchors::load(&SystemRoots::Disabled, &[file]).expect("operator CA");
    assert_eq!(anchors.root_store().len(), 1);
    assert_eq!(anchors.operator()[0].certs[0], *ca.cert_der());
    let config =
        upstream_client_config(&anchors, Arc::new(rustls::crypto::ring::default_provider()))
            .expect("client config");
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn bad_operator_files_are_errors_naming_the_file() {
    let dir = temp_dir("upstream-bad");
    let empty = write(&dir, "empty.pem", "no pem here\n");
    let err = TrustAnchors::load(&SystemRoots::Disabled, &[empty]).expect_err("empty");
    assert!(err.to_string().contains("empty.pem"), "{err}");
    let junk = write(
        &dir,
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let err = TrustAnchors::load(&SystemRoots::Disabled, &[junk]).expect_err("junk");
    assert!(err.to_string().contains("junk.pem"), "{err}");
    let missing = dir.path().join("missing.pem");
    let err = TrustAnchors::load(&SystemRoots::Disabled, &[missing]).expect_err("missing");
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
}

#[test]
fn no_trust_anchor_at_all_is_an_error() {
    let err = TrustAnchors::load(&SystemRoots::Disabled, &[]).expect_err("nothing trusted");
    assert!(matches!(err, TlsError::Config(_)), "{err}");
    let dir = temp_dir("upstream-missing-system");
    let err = TrustAnchors::load(&SystemRoots::File(dir.path().join("nope.crt")), &[])
        .expect_err("missing system bundle");
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
}
