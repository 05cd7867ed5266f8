use std::os::unix::fs::PermissionsExt as _;

use rustls::pki_types::{CertificateDer, pem::PemObject as _};

use super::*;
use crate::tls::{
    SystemRoots,
    test_support::{generated_ca, temp_dir, write},
};

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("parse")
}

#[test]
fn writes_bundle_and_extra_file_with_mode_0644_and_env() {
    let dir = temp_dir("bundle");
    let operator_ca = generated_ca();
    let operator_file = write(&dir, "operator.pem", operator_ca.cert_pem());
    let anchors = TrustAnchors::load(&SystemRoots::Probe, &[operator_file]).expect("anchors");
    let ca = generated_ca();
    let out = dir.path().join("trust");
    let written = write_agent_bundle(&out, &anchors, &ca).expect("write");

    let system = anchors.system().expect("system bundle").certs.clone();
    let bundle = certs(&written.bundle);
    assert_eq!(bundle.len(), system.len() + 2);
    assert_eq!(bundle[..system.len()], system[..]);
    assert_eq!(bundle[system.len()], *operator_ca.cert_der());
    assert_eq!(bundle[system.len() + 1], *ca.cert_der());
    assert_eq!(
        certs(&written.extra),
        [ca.cert_der().clone(), operator_ca.cert_der().clone()]
    );

    for file in [&written.bundle, &written.extra] {
        let mode = std::fs::metadata(file).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{}", file.display());
    }
    let vars: Vec<_> = written.env.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        vars,
        [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "AWS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS"
        ]
    );
    assert!(written.env[..5].iter().all(|(_, v)| *v == written.bundle));
    assert_eq!(written.env[5].1, written.extra);
    // Rewriting replaces the files and leaves no temporary file behind.
    write_agent_bundle(&out, &anchors, &ca).expect("rewrite");
    assert_eq!(std::fs::read_dir(&out).expect("list").count(), 2);
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let dir = temp_dir("bundle-unwritable");
    let file = write(&dir, "not-a-dir", "x");
    let anchors = TrustAnchors::load(&SystemRoots::Probe, &[]).expect("anchors");
    let err = write_agent_bundle(&file, &anchors, &generated_ca()).expect_err("not a dir");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}
