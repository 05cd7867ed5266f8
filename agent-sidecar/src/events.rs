//! The action pipeline's output: everything an agent did, as the sidecar
//! decided it, becomes one [`ActionEvent`]: a tool call the gateway ended
//! (REST or MCP, with its decision and outcome), an MCP message it
//! dropped, an operator's release of a quarantine, a DNS decision of the
//! resolver, a connection of the proxies, a connect the kernel refused.
//!
//! Producers do not know the consumers: each hands its own event type to
//! its own narrow sink trait ([`GatewaySink`](crate::gateway::GatewaySink),
//! [`dns::DnsEventSink`](crate::dns::DnsEventSink),
//! [`proxy::ProxyEventSink`](crate::proxy::ProxyEventSink), and
//! [`EventBus::kernel_deny`] for the kernel's ring buffer). The
//! [`EventBus`] implements all of them, wraps each event (by reference, no
//! copy) into an [`ActionEvent`] and hands it to every [`ActionSink`] in
//! order: the log ([`LogLines`]), the metrics
//! ([`Metrics`](crate::metrics::Metrics)), the owner's and the SOC's
//! webhooks ([`Notices`]), the audit trail ([`AuditSink`]), and whatever
//! else plugs in (anomaly detectors) without touching a request path.

mod action;
mod audit;
mod bus;
mod log;
mod notices;
mod response;

pub use action::{
    ActionEvent, ApprovalEvent, ApprovalStep, KernelDeny, McpMessageDropped, PolicyEvent,
    QuarantineReleased, SidecarEvent, SidecarStep,
};
pub use audit::{AuditOptions, AuditSink, AuditTrail, AuditTrailError};
pub use bus::{ActionSink, ApprovalEvents, EventBus, PolicyEvents};
pub use log::LogLines;
pub use notices::Notices;
pub use response::DetectionResponse;
