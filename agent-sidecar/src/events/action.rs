//! [`ActionEvent`]: one value per thing the sidecar decided, borrowed from
//! its producer.

use serde::Serialize;

use crate::{
    dns::DnsEvent, gateway::ToolCallEvent, kernel::events::DenyRecord, policy::AgentIdentity,
    proxy::ProxyEvent,
};

/// A connect, send or socket the kernel refused.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct KernelDeny<'a> {
    /// The agent whose cgroup it came from.
    pub agent_id: &'a str,
    /// What the ring buffer said.
    pub record: &'a DenyRecord,
}

/// An MCP message the gateway dropped.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct McpMessageDropped<'a> {
    /// The agent.
    pub agent_id: &'a str,
    /// `to_agent` or `to_server`.
    pub direction: &'a str,
    /// `unexpected_response`, `server_request_refused`...
    pub reason: &'a str,
}

/// An operator released the agent's quarantine.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct QuarantineReleased<'a> {
    /// The agent.
    pub agent: &'a AgentIdentity,
    /// Who released it.
    pub operator: &'a str,
    /// Why.
    pub reason: &'a str,
}

/// One action of an agent, as the sidecar decided it.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "kind", content = "event", rename_all = "snake_case")]
pub enum ActionEvent<'a> {
    /// A tool call the gateway ended.
    ToolCall(&'a ToolCallEvent),
    /// An MCP message the gateway dropped.
    McpMessageDropped(McpMessageDropped<'a>),
    /// An operator released the agent's quarantine.
    QuarantineReleased(QuarantineReleased<'a>),
    /// A DNS decision of the agent's resolver.
    Dns(&'a DnsEvent),
    /// A connection (or forwarded request) of the agent's proxies.
    Connection(&'a ProxyEvent),
    /// A connect, send or socket the kernel refused.
    KernelDeny(KernelDeny<'a>),
}

impl ActionEvent<'_> {
    /// The kind, as serialized (`tool_call`, `dns`, `kernel_deny`...).
    pub fn kind(&self) -> &'static str {
        match self {
            ActionEvent::ToolCall(_) => "tool_call",
            ActionEvent::McpMessageDropped(_) => "mcp_message_dropped",
            ActionEvent::QuarantineReleased(_) => "quarantine_released",
            ActionEvent::Dns(_) => "dns",
            ActionEvent::Connection(_) => "connection",
            ActionEvent::KernelDeny(_) => "kernel_deny",
        }
    }

    /// The agent it belongs to.
    pub fn agent_id(&self) -> &str {
        match self {
            ActionEvent::ToolCall(e) => e.agent_id(),
            ActionEvent::McpMessageDropped(e) => e.agent_id,
            ActionEvent::QuarantineReleased(e) => &e.agent.id,
            ActionEvent::Dns(e) => &e.agent_id,
            ActionEvent::Connection(e) => &e.agent_id,
            ActionEvent::KernelDeny(e) => e.agent_id,
        }
    }
}
