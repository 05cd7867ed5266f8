use std::sync::atomic::AtomicBool;

use x509_parser::{extensions::GeneralName, prelude::*};

use super::*;
use crate::tls::{
    CaOptions,
    test_support::{cache, generated_ca},
};

fn options(capacity: usize) -> LeafOptions {
    LeafOptions {
        capacity,
        ..LeafOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_issue_once() {
    let leaves = Arc::new(cache(generated_ca(), options(16)));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let leaves = Arc::clone(&leaves);
            tokio::task::spawn_blocking(move || leaves.get("api.example.com"))
        })
        .collect();
    let mut keys = Vec::new();
    for task in tasks {
        keys.push(task.await.expect("join").expect("issue"));
    }
    assert_eq!(leaves.issued(), 1);
    assert!(keys.iter().all(|k| Arc::ptr_eq(k, &keys[0])));
}

#[test]
fn refuses_names_the_policy_does_not_allow() {
    let leaves = cache(generated_ca(), options(16));
    let err = leaves.get("evil.test").expect_err("refused");
    assert!(
        matches!(&err, TlsError::NameNotAllowed(n) if n == "evil.test"),
        "{err}"
    );
    assert_eq!(leaves.issued(), 0);
    assert!(leaves.is_empty());
}

#[test]
fn policy_is_asked_on_every_lookup() {
    let open = Arc::new(AtomicBool::new(true));
    let gate = Arc::clone(&open);
    let leaves = LeafCache::new(
        generated_ca(),
        Arc::new(move |_: &str| gate.load(Ordering::SeqCst)),
        options(4),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .expect("cache");
    leaves.get("a.test").expect("allowed");
    open.store(false, Ordering::SeqCst);
    assert!(matches!(
        leaves.get("a.test"),
        Err(TlsError::NameNotAllowed(_))
    ));
}

#[test]
fn evicts_the_least_recently_used_name() {
    let leaves = cache(generated_ca(), options(2));
    leaves.get("a.example.com").expect("a");
    leaves.get("b.example.com").expect("b");
    leaves.get("a.example.com").expect("a again");
    leaves.get("c.example.com").expect("c");
    assert_eq!(leaves.len(), 2);
    assert!(leaves.contains("a.example.com"));
    assert!(!leaves.contains("b.example.com"));
    assert!(leaves.contains("c.example.com"));
    assert_eq!(leaves.issued(), 3);
    leaves.get("b.example.com").expect("b re-issued");
    assert_eq!(leaves.issued(), 4);
}

#[test]
fn names_are_normalized_before_caching() {
    let leaves = cache(generated_ca(), options(4));
    let upper = leaves.get("API.Example.COM.").expect("upper");
    let lower = leaves.get("api.example.com").expect("lower");
    assert!(Arc::ptr_eq(&upper, &lower));
    assert_eq!(leaves.issued(), 1);
}

#[test]
fn leaf_has_the_sni_as_san_and_never_outlives_the_ca() {
    let ca = CertificateAuthority::generate(&CaOptions {
        validity: Duration::from_secs(3600),
        ..CaOptions::default()
    })
    .expect("ca");
    let ca = Arc::new(ca);
    let leaves = cache(Arc::clone(&ca), options(4));
    let key = leaves.get("api.example.com").expect("issue");
    assert_eq!(key.cert.len(), 2);
    assert_eq!(&key.cert[1], ca.cert_der());
    let (_, leaf) = X509Certificate::from_der(&key.cert[0]).expect("parse");
    let sans: Vec<_> = leaf
        .subject_alternative_name()
        .expect("san")
        .expect("present")
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => (*d).to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans, ["api.example.com"]);
    assert!(!leaf.is_ca());
    assert!(leaf.validity().not_after.to_datetime() <= ca.not_after());
    assert!(leaf.validity().not_before.to_datetime() >= ca.not_before());
    leaf.verify_signature(Some(
        X509Certificate::from_der(ca.cert_der())
            .expect("ca")
            .1
            .public_key(),
    ))
    .expect("signed by the CA");
}

#[test]
fn reissues_after_two_thirds_of_the_lifetime() {
    let leaves = cache(
        generated_ca(),
        LeafOptions {
            capacity: 4,
            validity: Duration::from_secs(3),
        },
    );
    let first = leaves.get("api.example.com").expect("first");
    let again = leaves.get("api.example.com").expect("cached");
    assert!(Arc::ptr_eq(&first, &again));
    std::thread::sleep(Duration::from_millis(2100));
    let renewed = leaves.get("api.example.com").expect("renewed");
    assert!(!Arc::ptr_eq(&first, &renewed));
    assert_eq!(leaves.issued(), 2);
}

#[test]
fn rejects_zero_capacity() {
    let allow: MayTerminate = Arc::new(|_: &str| true);
    let err = LeafCache::new(
        generated_ca(),
        allow,
        options(0),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .expect_err("zero capacity");
    assert!(matches!(err, TlsError::Config(_)));
}
