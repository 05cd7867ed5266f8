//! What the tool gateway needs from a compiled set besides decisions
//! (compiled by `policy/gateway.rs`): the inspected hosts and their MCP
//! endpoints, each tool's credential, and how forwarded actions are
//! compensated.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::redaction::FieldRedaction;
use crate::credentials::Injection;

/// Default reversal window of a compensable action.
pub const DEFAULT_COMPENSATION_WINDOW: Duration = Duration::from_secs(15 * 60);

/// One inspected host: the sidecar terminates TLS for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEndpoint {
    /// Lower-case host name.
    pub host: String,
    /// HTTPS port.
    pub port: u16,
    /// The REST tool declared for the host, if any.
    pub rest_tool: Option<Arc<str>>,
    /// MCP endpoints on the host: path -> (tool name, MCP server name).
    pub mcp: Vec<McpEndpoint>,
}

/// An MCP server's Streamable HTTP endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpEndpoint {
    /// Request path (without query).
    pub path: String,
    /// The declaring tool.
    pub tool: Arc<str>,
    /// The MCP server name.
    pub server: String,
    /// The server-initiated request methods the agent may receive.
    pub server_requests: Vec<String>,
}

/// How the gateway authenticates a tool's upstream requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Secret name (`--secret NAME=...`).
    pub secret: String,
    /// The header and value format, checked when the set compiled.
    pub injection: Injection,
}

/// How a forwarded action is undone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compensation {
    /// The compensating action of the same tool.
    pub action: Arc<str>,
    /// How long after the forward it may be triggered.
    pub window: Duration,
    /// Top-level fields of the original body (MCP: arguments) carried into
    /// the compensating call; nothing else of the agent's input is.
    pub carry: Vec<Arc<str>>,
}

/// The route of an action, for issuing a compensating call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionRoute {
    /// HTTP method and path pattern (`/v1/payments/{id}/reverse`).
    Http {
        /// Upper-case method.
        method: String,
        /// Pattern as declared.
        path: String,
    },
    /// MCP tool name.
    Mcp(String),
}

/// The gateway's view of a compiled set.
#[derive(Clone, Debug, Default)]
pub(crate) struct GatewayTable {
    pub(crate) hosts: HashMap<String, HostEndpoint>,
    pub(crate) credentials: HashMap<Arc<str>, Credential>,
    pub(crate) compensations: HashMap<(Arc<str>, Arc<str>), Compensation>,
    pub(crate) routes: HashMap<(Arc<str>, Arc<str>), ActionRoute>,
    /// tool -> action -> what is kept of its input.
    pub(crate) redactions: HashMap<Arc<str>, HashMap<Arc<str>, Arc<FieldRedaction>>>,
}
