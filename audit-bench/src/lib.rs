//! Holds `benches/audit.rs`: the audit log (appends with group commit,
//! durable appends, verify, proofs and queries over 10 million records)
//! against SQLite in WAL mode (`cargo bench -p agent-sidecar-audit-bench
//! --bench audit`). A crate of its own so that `cargo test` and CI never
//! build SQLite; `cargo xtask bench` lints and runs it.
