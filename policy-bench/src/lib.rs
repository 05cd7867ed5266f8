//! Holds `benches/policy.rs`: the tier policy engine against cedar-policy
//! (`cargo bench -p agent-sidecar-policy-bench --bench policy`). A crate of
//! its own so that `cargo test` and CI never build cedar-policy; `cargo
//! xtask bench` lints and runs it.
