//! agent-sidecar: keeps AI agents accountable.
//!
//! The library follows the data flow:
//! - [`egress`]: allowlist targets (`IP:PORT`, `CIDR`...) and the rule set
//!   compiled from them;
//! - [`dns`]: the per-agent DNS resolver that answers only allowlisted
//!   names;
//! - [`policy`]: the YAML policy file that carries the egress allowlist;
//! - [`kernel`]: loads, pins and attaches the eBPF programs to an agent's
//!   cgroup, fills the maps and turns ring-buffer deny events into logs and
//!   metrics;
//! - [`credentials`]: secrets the agent never holds: loaded, injected,
//!   redacted from answers;
//! - [`gateway`]: the tool gateway: terminated tool traffic, actions,
//!   the four tiers, approvals and injected credentials;
//! - [`run`]: `agent-sidecar run`, which wraps one command in a governed cgroup;
//! - [`metrics`] and [`admin`]: Prometheus metrics and the operator listener.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod admin;
pub mod approvals;
pub mod credentials;
pub mod dns;
pub mod egress;
pub mod events;
pub mod gateway;
mod io_delegate;
pub mod kernel;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod run;
pub mod tls;
