//! The tool gateway: every tool call of an agent, seen in full and decided
//! by the tier policy (see `docs/gateway.md`).
//!
//! The proxy hands the gateway every connection to a host a tool declares
//! ([`Gateway::serve_tls`]); the gateway terminates TLS with a leaf from
//! the sidecar CA and runs each request through one pipeline, read top to
//! bottom in `pipeline.rs`: accept ([`limits`] and the request checks) ->
//! recognise (a REST route, or each `tools/call` of MCP JSON-RPC,
//! [`mcp`]) -> decide (the tier policy) -> enforce the tier (forward;
//! forward with a reversal window, [`compensate`]; hold for an approver,
//! [`crate::approvals`]; block and maybe quarantine, [`hooks`]) -> forward
//! (the tool's credential, [`crate::credentials`]; the trace context,
//! [`trace`]; the address the sidecar resolved, [`upstream`]) -> record:
//! one [`ToolCallEvent`] per call, handed to the [`GatewaySink`].

pub mod a2a;
mod accept;
mod agent_body;
mod binding;
mod body;
pub mod compensate;
mod conn_info;
mod connection;
pub(crate) mod forward;
pub(crate) mod grant_request;
pub mod hooks;
pub mod inbound;
mod input;
mod journal;
pub mod limits;
pub mod mcp;
mod mcp_call;
mod mcp_peer;
mod mcp_sessions;
mod mcp_transport;
mod method_check;
mod metrics;
mod operator;
mod path_check;
mod pipeline;
mod record;
mod redacted;
mod redecide;
mod refusal;
mod request_checks;
mod rest;
mod state;
mod tier_floor;
mod tiers;
mod tool_names;
pub mod trace;
pub mod upstream;

pub use a2a::A2aConfig;
pub use agent_body::AgentBody;
pub use body::IDEMPOTENCY_KEY;
pub use journal::{
    AUDIT_UNAVAILABLE, AttemptFuture, AttemptJournal, CallAttempt, Durability, JournalError,
};
pub use metrics::GatewayMetrics;
pub use record::{CallOutcome, GatewaySink, ToolCallEvent};
pub use refusal::{HALT_REASON, Refusal};
pub use state::{DEFAULT_APPROVAL_SLA, Gateway, GatewayConfig, GatewayError, GatewayParts};
pub use tier_floor::{FLOOR_RULE, TierFloor};
