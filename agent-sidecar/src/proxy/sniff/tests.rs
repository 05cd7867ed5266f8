use std::path::{Path, PathBuf};

use super::*;
use crate::proxy::testing::client_hello;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sniff")
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).expect("corpus file")
}

fn tls(sni: Option<&str>, ech: bool) -> Sniffed {
    Sniffed::Tls(ClientHelloInfo {
        sni: sni.map(str::to_owned),
        ech,
    })
}

#[test]
fn rustls_hellos_with_and_without_sni() {
    let hello = client_hello(Some("api.allowed.test"), false);
    assert_eq!(sniff(&hello), Ok(tls(Some("api.allowed.test"), false)));
    assert_eq!(sniff(&client_hello(None, false)), Ok(tls(None, false)));
}

#[test]
fn ech_extension_is_seen_and_outer_name_reported() {
    let hello = client_hello(Some("public.allowed.test"), true);
    assert_eq!(sniff(&hello), Ok(tls(Some("public.allowed.test"), true)));
}

#[test]
fn every_prefix_of_a_hello_is_incomplete() {
    let hello = client_hello(Some("api.allowed.test"), false);
    for len in 0..hello.len() {
        assert_eq!(
            sniff(&hello[..len]),
            Ok(Sniffed::Incomplete),
            "prefix {len}"
        );
    }
}

#[test]
fn bytes_after_the_hello_do_not_matter() {
    let mut hello = client_hello(Some("api.allowed.test"), false);
    hello.extend_from_slice(b"\x17\x03\x03\x00\x01x");
    assert_eq!(sniff(&hello), Ok(tls(Some("api.allowed.test"), false)));
}

#[test]
fn http_heads() {
    let head = b"GET /a?b HTTP/1.1\r\nHost: API.allowed.test:80\r\nAccept: */*\r\n\r\nbody";
    assert_eq!(
        sniff(head),
        Ok(Sniffed::Http(RequestHead {
            method: "GET".into(),
            target: "/a?b".into(),
            host: Some("API.allowed.test:80".into()),
            head_len: head.len() - 4,
        }))
    );
    assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: a"), Ok(Sniffed::Incomplete));
    assert_eq!(
        sniff(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
        Err(SniffError::BadHost)
    );
    assert!(matches!(
        sniff(b"\x00\x01garbage\r\n\r\n"),
        Err(SniffError::Http(_))
    ));
}

/// Every corpus file gives a verdict (no panic), the same one twice; the
/// named seeds give the verdict they were made for.
#[test]
fn corpus_regression() {
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(sniff(&bytes), sniff(&bytes), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 20, "corpus has {seen} files");

    let named: &[(&str, Sniffed)] = &[
        (
            "tls-sni-api.allowed.test.bin",
            tls(Some("api.allowed.test"), false),
        ),
        ("tls-openssl-sni.bin", tls(Some("api.allowed.test"), false)),
        (
            "tls-openssl-tls12-sni.bin",
            tls(Some("api.allowed.test"), false),
        ),
        ("tls-curl-sni.bin", tls(Some("api.allowed.test"), false)),
        (
            "tls-fragmented-sni.bin",
            tls(Some("api.allowed.test"), false),
        ),
        ("tls-no-sni.bin", tls(None, false)),
        ("tls-openssl-no-sni.bin", tls(None, false)),
        (
            "tls-openssl-ip-literal-sni.bin",
            tls(Some("127.0.0.9"), false),
        ),
        (
            "tls-ech-grease-api.allowed.test.bin",
            tls(Some("api.allowed.test"), true),
        ),
        ("tls-ech-grease-evil.test.bin", tls(Some("evil.test"), true)),
        ("tls-truncated-hello.bin", Sniffed::Incomplete),
        ("http-partial.bin", Sniffed::Incomplete),
    ];
    for (name, expected) in named {
        assert_eq!(sniff(&corpus(name)).as_ref(), Ok(expected), "{name}");
    }
    match sniff(&corpus("http-curl-get.bin")) {
        Ok(Sniffed::Http(head)) => {
            assert_eq!(head.host.as_deref(), Some("api.allowed.test"));
            assert_eq!(head.target, "/path?q=1");
        }
        other => panic!("curl GET: {other:?}"),
    }
    match sniff(&corpus("http-no-host.bin")) {
        Ok(Sniffed::Http(head)) => assert_eq!(head.host, None),
        other => panic!("no Host: {other:?}"),
    }
    for name in [
        "garbage-tls-header.bin",
        "garbage-ssh-banner.bin",
        "http-two-hosts.bin",
    ] {
        assert!(sniff(&corpus(name)).is_err(), "{name}");
    }
}

/// Regenerates the rustls-made seeds when `SNIFF_WRITE_CORPUS=1`; always
/// checks what fresh hellos sniff as.
#[test]
fn fresh_seeds_sniff_as_named() {
    let seeds = [
        (
            "tls-sni-api.allowed.test.bin",
            client_hello(Some("api.allowed.test"), false),
            tls(Some("api.allowed.test"), false),
        ),
        (
            "tls-no-sni.bin",
            client_hello(None, false),
            tls(None, false),
        ),
        (
            "tls-ech-grease-api.allowed.test.bin",
            client_hello(Some("api.allowed.test"), true),
            tls(Some("api.allowed.test"), true),
        ),
        (
            "tls-ech-grease-evil.test.bin",
            client_hello(Some("evil.test"), true),
            tls(Some("evil.test"), true),
        ),
    ];
    let write = std::env::var_os("SNIFF_WRITE_CORPUS").is_some_and(|v| v == "1");
    for (name, bytes, expected) in seeds {
        assert_eq!(sniff(&bytes), Ok(expected), "{name}");
        if write {
            std::fs::write(corpus_dir().join(name), &bytes).expect("write seed");
        }
    }
}
