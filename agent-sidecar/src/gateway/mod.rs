//! The tool gateway: every tool call of an agent, seen in full and decided
//! by the tier policy (see `docs/gateway.md`).
//!
//! The proxy hands the gateway every connection to a host a tool declares
//! ([`Gateway::serve_tls`]); the gateway terminates TLS with a leaf from
//! the sidecar CA and, per request:
//!
//! - [`limits`]: bounds size, headers and time; refuses smuggling;
//! - recognises the action: a REST route, or each `tools/call` of MCP
//!   JSON-RPC ([`mcp`]);
//! - decides its tier with the policy and applies it: forward (1), forward
//!   and notify the owner with a reversal window (2, [`compensate`]), hold
//!   for an approver (3, [`crate::approvals`]), block with a SOC alert and
//!   maybe a quarantine (4, [`hooks`]);
//! - forwards with the tool's credential ([`credentials`]) and the trace
//!   context ([`trace`]) to the address the sidecar resolved ([`upstream`]);
//! - emits one [`GatewayEvent`] per call.

mod admin;
mod binding;
pub mod compensate;
mod connection;

pub mod events;
mod forward;
pub mod hooks;
pub mod limits;
pub mod mcp;
mod mcp_call;
mod mcp_peer;
mod mcp_transport;
mod method_check;
mod metrics;
mod path_check;
mod redacted;
mod redecide;
mod refusal;
mod request;
mod request_checks;
mod state;
mod tiers;
mod tool_names;
pub mod trace;
pub mod upstream;

/// The body of responses to the agent.
pub type AgentBody = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

pub use events::{GatewayEvent, GatewaySink, Outcome};
pub use metrics::GatewayMetrics;
pub use refusal::Refusal;
pub use request::IDEMPOTENCY_KEY;
pub use state::{DEFAULT_APPROVAL_SLA, Gateway, GatewayConfig, GatewayError, GatewayParts};
