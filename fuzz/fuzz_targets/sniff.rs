//! Fuzzes the proxy's first-bytes sniffer: any input must give a verdict
//! (incomplete, ClientHello, request head, or an error), never a panic, and
//! the same verdict twice. Seeds: `fuzz/corpus/sniff/` (real ClientHellos
//! from rustls, openssl and curl with and without SNI, a GREASE-ECH hello, a
//! hello split over two records, HTTP heads, garbage); the same files run as
//! a regular test (`proxy::sniff::tests::corpus_regression`).
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run sniff corpus/sniff
//! ```
#![no_main]

use agent_sidecar::proxy::{sniff::sniff, tls_alert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let verdict = sniff(data);
    assert_eq!(verdict, sniff(data));
    // A refusal must always be writable for whatever the client sent.
    assert!(!tls_alert(data).is_empty());
});
