//! Fuzzes the egress policy file (`version: 1`, `egress.allow` addresses
//! and CIDRs, `egress.names` patterns): parsing with its errors rendered,
//! then the kernel allowlist and the name rules built from it, and name
//! lookups against those rules.
//!
//! Input: the file, then optionally a NUL byte and a name to look up.
//! Seeds: `fuzz/corpus/egress_policy/`.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run egress_policy corpus/egress_policy
//! ```
#![no_main]

use std::path::Path;

use agent_sidecar::egress::{NameAllowlist, PolicyFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let name = String::from_utf8_lossy(parts.next().unwrap_or(b"api.example.com"));
    let path = Path::new("fuzz-policy.yaml");
    let file = match PolicyFile::parse(path, &text) {
        Ok(file) => file,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let allowlist = file.allowlist(path);
    let _ = allowlist.rules();
    let mut names = NameAllowlist::new();
    for rule in file.name_rules(path) {
        names.push(rule);
    }
    let found = names.find(&name).is_some();
    assert_eq!(found, !names.matches(&name).is_empty());
    for port in [443, 53, 5432] {
        for proto in [6, 17] {
            if names.find_port(&name, port, proto).is_some() {
                assert!(found);
            }
        }
    }
});
