//! [`Observation`]: what the detectors read of one action event, borrowed
//! from it (no copy on the event path).

use crate::{
    dns::DnsDecision,
    events::ActionEvent,
    gateway::CallOutcome,
    policy::{ActionTarget, Tier},
    proxy::ConnectionOutcome,
};

/// What kind of action an observation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedKind {
    /// A tool call the gateway decided.
    ToolCall,
    /// A proxied connection.
    Connection,
    /// A DNS decision.
    Dns,
    /// A refusal of the kernel.
    KernelDeny,
}

impl ObservedKind {
    /// As in the alerts' evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            ObservedKind::ToolCall => "tool_call",
            ObservedKind::Connection => "connection",
            ObservedKind::Dns => "dns",
            ObservedKind::KernelDeny => "kernel_deny",
        }
    }
}

/// One action as the detectors see it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// When, Unix ms (the event's own time, else the engine's clock).
    pub at_ms: u64,
    /// The kind.
    pub kind: ObservedKind,
    /// Declared tool (tool calls).
    pub tool: Option<&'a str>,
    /// Declared action within the tool (tool calls).
    pub action: Option<&'a str>,
    /// Where it went, when it was allowed: a host name, an MCP server, an
    /// address.
    pub destination: Option<&'a str>,
    /// Bytes moved (both directions).
    pub bytes: u64,
    /// A refused egress attempt (kernel, proxy or resolver).
    pub denied_egress: bool,
    /// The decided tier (tool calls).
    pub tier: Option<Tier>,
    /// The declared amount (tool calls that declare one).
    pub amount: Option<f64>,
    /// W3C trace id, when traced.
    pub trace_id: Option<&'a str>,
    /// The audit record the event is kept as, when known: the approval or
    /// the compensation of the call.
    pub record_id: Option<&'a str>,
}

impl<'a> Observation<'a> {
    /// An empty observation of `kind` at `at_ms`.
    pub fn new(kind: ObservedKind, at_ms: u64) -> Self {
        Observation {
            at_ms,
            kind,
            tool: None,
            action: None,
            destination: None,
            bytes: 0,
            denied_egress: false,
            tier: None,
            amount: None,
            trace_id: None,
            record_id: None,
        }
    }

    /// What the detectors read of `event`; `None` for events they do not
    /// learn from (dropped MCP messages, operator actions, responses).
    /// `now_ms` dates the events that carry no time of their own.
    pub fn from_event(event: &ActionEvent<'a>, now_ms: u64) -> Option<Self> {
        Some(match *event {
            ActionEvent::ToolCall(e) => {
                let mut o = Observation::new(ObservedKind::ToolCall, e.at.0);
                o.tool = e.action.tool.as_deref();
                o.action = e.action.action.as_deref();
                o.destination = match &e.action.target {
                    Some(ActionTarget::Http { host, .. }) => Some(host),
                    Some(ActionTarget::Mcp { server, .. }) => Some(server),
                    None => None,
                };
                o.tier = Some(e.decision.tier);
                o.amount = e.action.attributes.amount.as_ref().map(|m| m.value);
                o.trace_id = e.traceparent.get(3..35);
                o.record_id = e.approval_id.as_deref().or(e.compensation_id.as_deref());
                if e.outcome == CallOutcome::Refused {
                    // A refused call moved no money and reached nothing.
                    o.amount = None;
                    o.destination = None;
                }
                o
            }
            ActionEvent::Connection(e) => {
                let mut o = Observation::new(ObservedKind::Connection, e.time_unix_ms);
                match e.decision {
                    ConnectionOutcome::Allowed => {
                        o.destination = e.host.as_deref().or(e.sni.as_deref());
                        o.bytes = e.bytes_up.saturating_add(e.bytes_down);
                    }
                    ConnectionOutcome::Refused => o.denied_egress = true,
                    ConnectionOutcome::Failed => {}
                }
                o
            }
            ActionEvent::Dns(e) => {
                let mut o = Observation::new(ObservedKind::Dns, now_ms);
                match e.decision {
                    DnsDecision::Allowed => o.destination = e.qname.as_deref(),
                    DnsDecision::Refused => o.denied_egress = true,
                    _ => {}
                }
                o
            }
            ActionEvent::KernelDeny(_) => {
                let mut o = Observation::new(ObservedKind::KernelDeny, now_ms);
                o.denied_egress = true;
                o
            }
            ActionEvent::McpMessageDropped(_)
            | ActionEvent::QuarantineReleased(_)
            | ActionEvent::Approval(_)
            | ActionEvent::Policy(_)
            | ActionEvent::Sidecar(_)
            | ActionEvent::Response(_)
            | ActionEvent::KillSwitch(_)
            | ActionEvent::Grant(_)
            | ActionEvent::Shadow(_)
            | ActionEvent::Delegation(_) => return None,
        })
    }

    /// Whether it is activity of the agent (a tool call or an allowed
    /// connection), which the hour-of-week profile counts.
    pub fn is_activity(&self) -> bool {
        match self.kind {
            ObservedKind::ToolCall => true,
            ObservedKind::Connection => self.destination.is_some(),
            _ => false,
        }
    }
}
