//! [`Inventory`]: what a sidecar reports about the agent it governs: who
//! owns it and what it is for, the policy version in force, when it last
//! acted and how much. A consumer of the action events; read through the
//! admin API (`GET /v1/inventory`, `agent-sidecar inventory`) and the
//! metrics (`agent_sidecar_agent_info`,
//! `agent_sidecar_agent_last_action_timestamp_seconds`), which is how a
//! platform team sees the whole fleet: one scrape of every sidecar. An
//! agent idle longer than its policy's `detection.idle_after` raises an
//! `idle` alert (see [`crate::detect::Detection::check_idle`]).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

use prometheus::{Gauge, IntGaugeVec};
use serde::Serialize;

use crate::{
    approvals::UnixMillis,
    events::{ActionEvent, ActionSink},
    policy::PolicyVersion,
};

/// Who the agent is, as the sidecar was told (flags, pod annotations).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InventoryIdentity {
    /// The agent id.
    pub agent_id: String,
    /// This replica's instance id (`serve`: `namespace.pod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The accountable owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The owner's team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// What the agent is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The deployment environment.
    pub environment: String,
}

/// The agent's last action.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastAction {
    /// When, Unix ms.
    pub at_ms: u64,
    /// The action event's kind (`tool_call`, `connection`, `dns`,
    /// `kernel_deny`, `mcp_message_dropped`).
    pub kind: &'static str,
    /// What it named: the tool and action, the host, the name asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// One inventory entry, as `GET /v1/inventory` answers it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InventoryEntry {
    /// Who.
    #[serde(flatten)]
    pub identity: InventoryIdentity,
    /// The policy version in force (hash prefix), once loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// The policy set's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_label: Option<String>,
    /// The sidecar's version.
    pub sidecar_version: &'static str,
    /// When the sidecar started, Unix ms.
    pub started_at_ms: u64,
    /// The agent's last action, if it acted since the sidecar started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
    /// Seconds since the last action (or since the start).
    pub idle_seconds: u64,
    /// Actions since the start, by kind.
    pub actions: BTreeMap<&'static str, u64>,
}

/// The series the inventory sets (registered by [`crate::metrics::Metrics`]).
#[derive(Clone)]
pub struct InventoryMetrics {
    /// `agent_sidecar_agent_info{owner,team,purpose,environment,policy_version}`.
    pub info: IntGaugeVec,
    /// `agent_sidecar_agent_last_action_timestamp_seconds`.
    pub last_action: Gauge,
}

/// The inventory of one sidecar's agent. Cheap to clone.
#[derive(Clone)]
pub struct Inventory {
    entry: Arc<Mutex<InventoryEntry>>,
    metrics: Option<InventoryMetrics>,
}

impl Inventory {
    /// The inventory of `identity`, started now.
    pub fn new(identity: InventoryIdentity, metrics: Option<InventoryMetrics>) -> Self {
        let started = UnixMillis::now().0;
        let inv = Inventory {
            entry: Arc::new(Mutex::new(InventoryEntry {
                identity,
                policy_version: None,
                policy_label: None,
                sidecar_version: env!("CARGO_PKG_VERSION"),
                started_at_ms: started,
                last_action: None,
                idle_seconds: 0,
                actions: BTreeMap::new(),
            })),
            metrics,
        };
        inv.publish_info(&inv.lock());
        inv
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InventoryEntry> {
        self.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry now.
    pub fn snapshot(&self) -> InventoryEntry {
        let mut e = self.lock().clone();
        let since = e.last_action.as_ref().map_or(e.started_at_ms, |l| l.at_ms);
        e.idle_seconds = UnixMillis::now().0.saturating_sub(since) / 1000;
        e
    }

    fn publish_info(&self, e: &InventoryEntry) {
        let Some(m) = &self.metrics else { return };
        m.info.reset();
        let id = &e.identity;
        m.info
            .with_label_values(&[
                id.owner.as_deref().unwrap_or(""),
                id.team.as_deref().unwrap_or(""),
                id.purpose.as_deref().unwrap_or(""),
                id.environment.as_str(),
                e.policy_version.as_deref().unwrap_or(""),
            ])
            .set(1);
    }

    /// Records the policy version in force.
    pub fn policy_in_force(&self, version: &PolicyVersion) {
        let mut e = self.lock();
        e.policy_version = Some(version.short().to_string());
        e.policy_label = Some(version.label.to_string());
        self.publish_info(&e);
    }

    fn acted(&self, at_ms: u64, kind: &'static str, subject: Option<String>) {
        let mut e = self.lock();
        *e.actions.entry(kind).or_default() += 1;
        if e.last_action.as_ref().is_none_or(|l| l.at_ms <= at_ms) {
            e.last_action = Some(LastAction {
                at_ms,
                kind,
                subject,
            });
            if let Some(m) = &self.metrics {
                m.last_action.set(at_ms as f64 / 1000.0);
            }
        }
    }
}

impl ActionSink for Inventory {
    fn consume(&self, event: ActionEvent<'_>) {
        if event.agent_id() != self.lock().identity.agent_id {
            return;
        }
        let now = UnixMillis::now().0;
        match event {
            ActionEvent::ToolCall(e) => {
                let a = &e.action;
                let subject = match (&a.tool, &a.action) {
                    (Some(tool), Some(action)) => Some(format!("{tool}.{action}")),
                    (tool, _) => tool.clone(),
                };
                self.acted(e.at.0, event.kind(), subject);
            }
            ActionEvent::Connection(e) => self.acted(
                e.time_unix_ms,
                event.kind(),
                e.host.clone().or(e.sni.clone()),
            ),
            ActionEvent::Dns(e) => self.acted(now, event.kind(), e.qname.clone()),
            ActionEvent::KernelDeny(_) | ActionEvent::McpMessageDropped(_) => {
                self.acted(now, event.kind(), None)
            }
            ActionEvent::Policy(p) => {
                if let Some(v) = p.version {
                    self.policy_in_force(v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
