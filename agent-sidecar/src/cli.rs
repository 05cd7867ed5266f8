//! Command handlers of the `agent-sidecar` binary, one module per command
//! group, so `main.rs` stays a dispatcher.

pub mod approvals;
pub mod policy;
