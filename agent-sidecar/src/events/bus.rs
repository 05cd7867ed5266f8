//! [`EventBus`]: every producer's sink, fanning each event out to the
//! consumers in order.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::action::{
    ActionEvent, ApprovalEvent, ApprovalStep, KernelDeny, McpMessageDropped, PolicyEvent,
    QuarantineReleased,
};
use crate::{
    approvals::{Notifier, PendingApproval, chain::ChainStep},
    dns::{self, DnsEvent},
    gateway::{GatewaySink, ToolCallEvent},
    kernel::events::DenyRecord,
    policy::{AgentIdentity, PolicyVersion, reload::ReloadObserver},
    proxy::{self, ProxyEvent},
};

/// A consumer of [`ActionEvent`]s. Called on the producer's task (a
/// request path, the resolver, the kernel's ring-buffer reader): keep it
/// quick and never block; hand slow work (a webhook, a disk write) to a
/// task of its own.
pub trait ActionSink: Send + Sync {
    /// One event.
    fn consume(&self, event: ActionEvent<'_>);
}

/// Hands every event to each consumer, in the order they were added.
/// Clones share the consumers.
#[derive(Clone, Default)]
pub struct EventBus {
    consumers: Arc<ArcSwap<Vec<Arc<dyn ActionSink>>>>,
}

impl EventBus {
    /// A bus with these consumers.
    pub fn new(consumers: Vec<Arc<dyn ActionSink>>) -> Self {
        EventBus {
            consumers: Arc::new(ArcSwap::from_pointee(consumers)),
        }
    }

    /// Adds a consumer after the others (a subsystem that starts later,
    /// like the gateway's webhooks). Events already emitted are not
    /// replayed to it.
    pub fn add(&self, consumer: Arc<dyn ActionSink>) {
        self.consumers.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(consumer.clone());
            list
        });
    }

    /// Hands `event` to every consumer.
    pub fn emit(&self, event: ActionEvent<'_>) {
        for c in self.consumers.load().iter() {
            c.consume(event);
        }
    }

    /// A connect, send or socket of `agent_id` that the kernel refused.
    pub fn kernel_deny(&self, agent_id: &str, record: &DenyRecord) {
        self.emit(ActionEvent::KernelDeny(KernelDeny { agent_id, record }));
    }
}

impl GatewaySink for EventBus {
    fn call(&self, event: &ToolCallEvent) {
        self.emit(ActionEvent::ToolCall(event));
    }

    fn mcp_message_dropped(&self, agent_id: &str, direction: &str, reason: &str) {
        self.emit(ActionEvent::McpMessageDropped(McpMessageDropped {
            agent_id,
            direction,
            reason,
        }));
    }

    fn quarantine_released(&self, agent: &AgentIdentity, operator: &str, reason: &str) {
        self.emit(ActionEvent::QuarantineReleased(QuarantineReleased {
            agent,
            operator,
            reason,
        }));
    }
}

/// The approvals store's notifier that puts each approval step on the bus
/// (for the audit trail), then hands it to the approvers' notifier.
pub struct ApprovalEvents {
    /// The bus.
    pub bus: EventBus,
    /// The approvers' webhook, if any.
    pub next: Option<Arc<dyn Notifier>>,
}

impl Notifier for ApprovalEvents {
    fn pending(&self, approval: &PendingApproval) {
        self.bus.emit(ActionEvent::Approval(ApprovalEvent {
            step: ApprovalStep::Requested,
            approval,
            chain: None,
        }));
        if let Some(next) = &self.next {
            next.pending(approval);
        }
    }

    fn decided(&self, approval: &PendingApproval) {
        self.bus.emit(ActionEvent::Approval(ApprovalEvent {
            step: ApprovalStep::Decided,
            approval,
            chain: None,
        }));
        if let Some(next) = &self.next {
            next.decided(approval);
        }
    }

    fn chain_step(&self, approval: &PendingApproval, step: &ChainStep<'_>) {
        self.bus.emit(ActionEvent::Approval(ApprovalEvent {
            step: ApprovalStep::Chain,
            approval,
            chain: Some(step),
        }));
        if let Some(next) = &self.next {
            next.chain_step(approval, step);
        }
    }
}

/// The policy store's observer that puts each load, reload and refusal on
/// the bus, then hands it to the next observer (the metrics).
pub struct PolicyEvents {
    /// The bus.
    pub bus: EventBus,
    /// The agent governed.
    pub agent_id: String,
    /// The next observer.
    pub next: Option<Arc<dyn ReloadObserver>>,
}

impl ReloadObserver for PolicyEvents {
    fn reloaded(&self, result: &str, version: Option<&PolicyVersion>) {
        self.bus.emit(ActionEvent::Policy(PolicyEvent {
            agent_id: &self.agent_id,
            result,
            version,
            reason: None,
        }));
        if let Some(next) = &self.next {
            next.reloaded(result, version);
        }
    }

    fn refused(&self, reason: &str) {
        self.bus.emit(ActionEvent::Policy(PolicyEvent {
            agent_id: &self.agent_id,
            result: "refused",
            version: None,
            reason: Some(reason),
        }));
        if let Some(next) = &self.next {
            next.refused(reason);
        }
    }
}

impl crate::fleet::KillSwitchSink for EventBus {
    fn kill_switch(&self, event: &crate::fleet::KillSwitchEvent<'_>) {
        self.emit(ActionEvent::KillSwitch(*event));
    }
}

impl dns::DnsEventSink for EventBus {
    fn event(&self, event: &DnsEvent) {
        self.emit(ActionEvent::Dns(event));
    }
}

impl proxy::ProxyEventSink for EventBus {
    fn emit(&self, event: &ProxyEvent) {
        EventBus::emit(self, ActionEvent::Connection(event));
    }
}

#[cfg(test)]
mod tests;

impl crate::grants::GrantSink for EventBus {
    fn grant(
        &self,
        _: &[crate::grants::Grant],
        step: crate::grants::GrantStep,
        grant: Option<&crate::grants::Grant>,
        request: Option<&crate::grants::GrantRequest>,
        detail: Option<&str>,
    ) {
        let agent_id = grant
            .map(|g| g.request.agent.as_str())
            .or(request.map(|r| r.agent.as_str()))
            .unwrap_or_default();
        self.emit(ActionEvent::Grant(crate::grants::GrantEvent {
            agent_id,
            step,
            grant,
            request,
            reason: detail,
        }));
    }
}

impl crate::delegation::event::DelegationSink for EventBus {
    fn delegation(&self, event: &crate::delegation::event::DelegationEvent<'_>) {
        self.emit(ActionEvent::Delegation(event));
    }
}

impl crate::shadow::ShadowSink for EventBus {
    fn shadow_difference(&self, event: &crate::shadow::ShadowEvent<'_>) {
        self.emit(ActionEvent::Shadow(*event));
    }
}
