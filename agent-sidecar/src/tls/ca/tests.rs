use std::{sync::Arc, time::Duration};

use time::OffsetDateTime;
use x509_parser::{
    extensions::GeneralName,
    prelude::{FromDer as _, X509Certificate},
};

use super::*;
use crate::tls::{
    MayTerminate, SystemRoots, TerminatorOptions, TlsTerminator, TrustAnchors,
    test_support::{rcgen_ca, temp_dir, write},
};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn generated_ca_is_a_path_len_zero_ca_with_name_constraints() {
    let options = CaOptions {
        permitted_dns: vec!["*.Example.com".into(), "api.test.".into()],
        ..CaOptions::default()
    };
    let ca = CertificateAuthority::generate(&options).expect("generate");
    let (_, x509) = X509Certificate::from_der(ca.cert_der()).expect("parse");
    let bc = x509
        .basic_constraints()
        .expect("bc")
        .expect("present")
        .value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let nc = x509.name_constraints().expect("nc").expect("present").value;
    let permitted: Vec<String> = nc
        .permitted_subtrees
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| match &s.base {
            GeneralName::DNSName(n) => (*n).to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(permitted, ["example.com", "api.test"]);
    assert_eq!(nc.excluded_subtrees.as_deref().map(<[_]>::len), Some(2));
    let lifetime = ca.not_after() - now();
    assert!(lifetime <= time::Duration::days(30) && lifetime > time::Duration::days(29));
    assert!(ca.is_generated());
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn generate_without_patterns_has_no_name_constraints() {
    let ca = CertificateAuthority::generate(&CaOptions::default()).expect("generate");
    let (_, x509) = X509Certificate::from_der(ca.cert_der()).expect("parse");
    assert!(x509.name_constraints().expect("nc").is_none());
}

#[test]
fn generate_rejects_zero_validity() {
    let options = CaOptions {
        validity: Duration::ZERO,
        ..CaOptions::default()
    };
    let err = CertificateAuthority::generate(&options).expect_err("zero validity");
    assert!(matches!(err, TlsError::Config(_)), "{err}");
}

#[test]
fn debug_output_never_contains_the_private_key() {
    let ca = CertificateAuthority::generate(&CaOptions::default()).expect("generate");
    let key_pem = ca.issuer().key().serialize_pem();
    let key_der = ca.issuer().key().serialize_der();
    let terminator = TlsTerminator::new(
        ca,
        TrustAnchors::load(&SystemRoots::Probe, &[]).expect("system roots"),
        Arc::new(|_: &str| true) as MayTerminate,
        TerminatorOptions::default(),
    )
    .expect("terminator");
    let debug = format!("{terminator:?} {:#?}", terminator.ca());
    assert!(debug.contains("elided"), "{debug}");
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!debug.contains(line), "key material in Debug output");
    }
    assert!(!debug.contains(&format!("{key_der:?}")[1..40]));
}

#[test]
fn loads_an_operator_ca_and_issues_with_it() {
    let dir = temp_dir("ca-ok");
    let (cert, key) = rcgen_ca(
        now() - time::Duration::hours(1),
        now() + time::Duration::days(2),
    );
    let cert_path = write(&dir, "ca.pem", &cert);
    let key_path = write(&dir, "ca.key", &key);
    let ca = CertificateAuthority::load(&cert_path, &key_path).expect("load");
    assert!(!ca.is_generated());
    assert_eq!(ca.cert_pem().trim(), cert.trim());
    let leaves = crate::tls::test_support::cache(Arc::new(ca), Default::default());
    let leaf = leaves.get("api.example.com").expect("issue");
    assert_eq!(leaf.cert.len(), 2);
}

#[test]
fn load_rejects_a_certificate_that_is_not_a_ca() {
    let dir = temp_dir("ca-not-ca");
    let leaf = rcgen::generate_simple_self_signed(vec!["x.test".to_owned()]).expect("leaf");
    let cert_path = write(&dir, "leaf.pem", &leaf.cert.pem());
    let key_path = write(&dir, "leaf.key", &leaf.signing_key.serialize_pem());
    let err = CertificateAuthority::load(&cert_path, &key_path).expect_err("not a CA");
    let msg = err.to_string();
    assert!(
        msg.contains("leaf.pem") && msg.contains("not a CA"),
        "{msg}"
    );
}

#[test]
fn load_rejects_a_key_that_does_not_match() {
    let dir = temp_dir("ca-mismatch");
    let (cert, _) = rcgen_ca(
        now() - time::Duration::hours(1),
        now() + time::Duration::days(2),
    );
    let (_, other_key) = rcgen_ca(now(), now() + time::Duration::days(2));
    let cert_path = write(&dir, "ca.pem", &cert);
    let key_path = write(&dir, "other.key", &other_key);
    let err = CertificateAuthority::load(&cert_path, &key_path).expect_err("mismatch");
    let msg = err.to_string();
    assert!(
        msg.contains("other.key") && msg.contains("does not match"),
        "{msg}"
    );
}

#[test]
fn load_rejects_an_expired_ca() {
    let dir = temp_dir("ca-expired");
    let (cert, key) = rcgen_ca(
        rcgen::date_time_ymd(2020, 1, 1),
        rcgen::date_time_ymd(2021, 1, 1),
    );
    let cert_path = write(&dir, "old.pem", &cert);
    let key_path = write(&dir, "old.key", &key);
    let err = CertificateAuthority::load(&cert_path, &key_path).expect_err("expired");
    let msg = err.to_string();
    assert!(
        msg.contains("old.pem") && msg.contains("not valid now"),
        "{msg}"
    );
    assert!(msg.contains("renew"), "{msg}");
}

#[test]
fn load_reports_missing_and_garbage_files() {
    let dir = temp_dir("ca-garbage");
    let garbage = write(&dir, "garbage.pem", "hello");
    let missing = dir.path().join("missing.pem");
    let err = CertificateAuthority::load(&missing, &garbage).expect_err("missing");
    assert!(
        matches!(&err, TlsError::Read { path, .. } if path == &missing),
        "{err}"
    );
    let err = CertificateAuthority::load(&garbage, &garbage).expect_err("garbage");
    assert!(err.to_string().contains("garbage.pem"), "{err}");
}

#[test]
fn check_valid_at_refuses_outside_validity() {
    let ca = CertificateAuthority::generate(&CaOptions::default()).expect("generate");
    assert!(ca.check_valid_at(now()).is_ok());
    let err = ca
        .check_valid_at(now() + time::Duration::days(31))
        .expect_err("after expiry");
    assert!(matches!(err, TlsError::CaNotValid { .. }));
}
