//! Fuzzes the resolver's synchronous pipeline: a query (parse, decide,
//! local answer) and an upstream answer for it (parse, CNAME chain,
//! rebinding guard, HTTPS/SVCB filtering, encoding, truncation).
//!
//! Input: 2-byte big-endian query length, query, upstream answer
//! (`agent_sidecar::dns::handle::split_fuzz_input`). Seeds are in
//! `corpus/dns_query/`, generated and replayed by
//! `agent-sidecar/tests/dns_corpus.rs`.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run dns_query corpus/dns_query
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = agent_sidecar::dns::handle::handle_fuzz_input(data);
});
