//! Command handlers of the `agent-sidecar` binary, one module per command
//! group, so `main.rs` stays a dispatcher.

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod baseline;
pub(crate) mod config;
pub(crate) mod inject_webhook;
pub(crate) mod inventory;
pub(crate) mod kill;
pub(crate) mod policy;
