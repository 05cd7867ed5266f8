//! [`ActionEvent`]: one value per thing the sidecar decided, borrowed from
//! its producer.

use serde::Serialize;

use super::response::DetectionResponse;
use crate::{
    approvals::{PendingApproval, chain::ChainStep},
    dns::DnsEvent,
    fleet::KillSwitchEvent,
    gateway::ToolCallEvent,
    kernel::events::DenyRecord,
    policy::{AgentIdentity, PolicyVersion},
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

/// Where an approval is: asked for, or decided (approved, denied,
/// expired, cancelled; `approval.state` says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStep {
    /// A held call waits for an approver; approvers are being notified.
    Requested,
    /// Decided (or expired, or cancelled).
    Decided,
    /// A step of its approval chain that did not decide it (`chain`).
    Chain,
}

/// A step of a tier-3 approval. The held call's input and request
/// (`approval.action.input`, `.request`) are already redacted by policy
/// (see [`crate::redaction`]); the audit trail records neither (the
/// attempt record of the call holds the input).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ApprovalEvent<'a> {
    /// Requested or decided.
    pub step: ApprovalStep,
    /// The approval as the store holds it now.
    #[serde(skip)]
    pub approval: &'a PendingApproval,
    /// With [`ApprovalStep::Chain`]: which chain step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<&'a ChainStep<'a>>,
}

/// The sidecar's own life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SidecarStep {
    /// Started: enforcement and services are up.
    Started,
    /// Stopping: the agent exited or a signal came.
    Stopped,
}

/// The sidecar started or stopped.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SidecarEvent<'a> {
    /// The agent it governs.
    pub agent_id: &'a str,
    /// Started or stopped.
    pub step: SidecarStep,
    /// Free-form details (version, mode, exit code): a JSON object.
    pub detail: &'a serde_json::Value,
}

/// A tier policy set was loaded, reloaded, or refused.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PolicyEvent<'a> {
    /// The agent it governs.
    pub agent_id: &'a str,
    /// `loaded` (at start), or the reload's result (`success`,
    /// `rollback`, `failure`, `refused`...).
    pub result: &'a str,
    /// The set now in force, when one was put in force.
    pub version: Option<&'a PolicyVersion>,
    /// Why a set was refused.
    pub reason: Option<&'a str>,
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
    /// A step of a tier-3 approval.
    Approval(ApprovalEvent<'a>),
    /// A tier policy set was loaded, reloaded or refused.
    Policy(PolicyEvent<'a>),
    /// The sidecar started or stopped.
    Sidecar(SidecarEvent<'a>),
    /// What the sidecar did when a behavioural detector fired.
    Response(&'a DetectionResponse),
    /// A kill switch was tripped, engaged or released, or the
    /// fleet-controls file was refused.
    KillSwitch(KillSwitchEvent<'a>),
    /// A just-in-time grant was requested, decided, revoked or expired, or
    /// a request or decision was refused.
    Grant(crate::grants::GrantEvent<'a>),
    /// The candidate policy set (`--shadow-policies`) would decide an
    /// action differently (not enforced).
    Shadow(crate::shadow::ShadowEvent<'a>),
    /// A hop between agents: a token minted or admitted, a call from
    /// another agent refused, an answer withheld.
    Delegation(&'a crate::delegation::event::DelegationEvent<'a>),
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
            ActionEvent::Approval(_) => "approval",
            ActionEvent::Policy(_) => "policy",
            ActionEvent::Sidecar(_) => "sidecar",
            ActionEvent::Response(_) => "detection_response",
            ActionEvent::KillSwitch(_) => "kill_switch",
            ActionEvent::Grant(_) => "grant",
            ActionEvent::Shadow(_) => "shadow_difference",
            ActionEvent::Delegation(_) => "delegation",
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
            ActionEvent::Approval(e) => &e.approval.agent_id,
            ActionEvent::Policy(e) => e.agent_id,
            ActionEvent::Sidecar(e) => e.agent_id,
            ActionEvent::Response(e) => &e.agent_id,
            ActionEvent::KillSwitch(e) => e.agent_id,
            ActionEvent::Grant(e) => e.agent_id,
            ActionEvent::Shadow(e) => e.agent_id,
            ActionEvent::Delegation(e) => e.agent_id,
        }
    }
}
