//! agent-sidecar: keeps AI agents accountable.
//!
//! The library follows the data flow, from what the operator declares to
//! what the agent does and what is made of it (`docs/architecture.md`
//! draws it):
//!
//! - [`egress`]: allowlist targets (`IP:PORT`, `CIDR`, names), the rule
//!   sets compiled from them and the egress policy file format;
//! - [`policy`]: the tier policy engine: documents (agents, tools, rules),
//!   their compilation into one immutable set, `decide` and `explain`, the
//!   hot-reloaded store and the operator tooling (diff, scenarios, schema);
//! - [`credentials`]: secrets the agent never holds: loaded, injected,
//!   redacted from answers;
//! - [`kernel`]: loads, pins and attaches the eBPF programs to an agent's
//!   cgroup, fills the maps and reads the ring buffer of refusals;
//! - [`dns`]: the per-agent DNS resolver that answers only allowlisted
//!   names and teaches the kernel the addresses of learned names;
//! - [`proxy`]: the transparent and explicit proxies that take the agent's
//!   connections by name and hand tool hosts to the gateway;
//! - [`tls`]: the sidecar CA, leaf certificates for terminated tool hosts
//!   and the trust of upstreams;
//! - [`gateway`]: the tool gateway: one pipeline per call (accept,
//!   recognise REST or MCP, decide, enforce the tier, forward, record);
//! - [`redaction`]: what records, journals, webhooks and logs keep of a
//!   call's input (per-field keep, keyed hash or drop, by policy);
//! - [`http_client`]: the one pooled HTTP client (upstreams, webhooks,
//!   the admin API's client), over rustls, proxy-aware for webhooks;
//! - [`approvals`]: durable tier-3 approvals (journal, store, approver
//!   webhooks, the CLI's client);
//! - [`audit`]: the tamper-evident audit trail: records, the append-only
//!   store, the Merkle tree, signed checkpoints, verification and proofs;
//! - [`events`]: every action as one event, fanned out to the log, the
//!   metrics and the webhooks (and any further consumer);
//! - [`metrics`] and [`admin`]: Prometheus metrics and the operator
//!   surface (metrics, health, approvals, compensations, quarantine);
//! - [`yaml`]: the one YAML parser (policies, fixtures, egress files, the
//!   config file), with line and column on every error;
//! - [`config`]: one way to configure `run`: flags, `AGENT_SIDECAR_*`
//!   variables and a YAML file, with one precedence;
//! - [`inject`]: the Kubernetes admission webhook that adds the sidecar
//!   to agent pods;
//! - [`run`]: `agent-sidecar run`, which wraps one command in a governed
//!   cgroup and wires all of the above;
//! - [`serve`]: `agent-sidecar serve`, the sidecar of a Kubernetes pod,
//!   which governs the pod's other containers with `run`'s phases.
#![deny(unsafe_op_in_unsafe_fn)]
// One module-file style: `foo.rs` beside `foo/`, never `foo/mod.rs`.
#![deny(clippy::mod_module_files)]

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod config;
pub mod credentials;
pub mod delegation;
pub mod detect;
pub mod dns;
pub mod egress;
pub mod events;
pub mod fleet;
pub mod gateway;
pub mod grants;
pub mod http_client;
pub mod inject;
pub mod inventory;
mod io_delegate;
pub mod kernel;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod quotas;
pub mod redaction;
pub mod run;
pub mod serve;
pub mod shadow;
pub mod tls;
pub mod webhook;
pub mod yaml;
