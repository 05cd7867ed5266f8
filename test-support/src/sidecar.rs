//! agent-sidecar itself, wired for the integration tests and benchmarks
//! that share the wiring (`agent-sidecar/tests/{proxy,gateway,...}.rs` and
//! `agent-sidecar/benches/{proxy,gateway}.rs`). Only with feature
//! `sidecar`, and never for agent-sidecar's unit tests: see the crate's
//! documentation.

pub mod gateway;
pub mod proxy;
