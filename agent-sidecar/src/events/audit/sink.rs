//! [`AuditSink`]: action events to audit records; attempts journalled
//! before their call proceeds.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use super::{
    super::{ActionEvent, ActionSink, SidecarEvent},
    entries,
};
use crate::{
    audit::{AuditEntry, AuditLog, AuditMetrics, Phase, RecordKind, record::AgentIdentity},
    gateway::{AttemptFuture, AttemptJournal, CallAttempt, Durability, JournalError},
};

/// Turns action events into audit records. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    inner: Arc<Inner>,
}

struct Inner {
    log: AuditLog,
    identity: AgentIdentity,
    fail_open: bool,
    metrics: Option<AuditMetrics>,
    failing: AtomicBool,
}

impl AuditSink {
    /// Records to `log`, naming the agent as `identity` (owner, team,
    /// purpose, environment, instance); `fail_open` lets actions through
    /// when their record cannot be written (counted and logged).
    pub fn new(
        log: AuditLog,
        identity: AgentIdentity,
        fail_open: bool,
        metrics: Option<AuditMetrics>,
    ) -> AuditSink {
        AuditSink {
            inner: Arc::new(Inner {
                log,
                identity,
                fail_open,
                metrics,
                failing: AtomicBool::new(false),
            }),
        }
    }

    /// The log written to.
    pub fn log(&self) -> &AuditLog {
        &self.inner.log
    }

    /// The agent's identity as records carry it, with `id`.
    fn agent(&self, id: &str) -> AgentIdentity {
        let mut a = self.inner.identity.clone();
        if a.id != id {
            a.id = id.to_string();
        }
        a
    }

    /// Appends a record of an event that gates nothing; counted when lost.
    fn record(&self, entry: AuditEntry) {
        let kind = entry.kind;
        match self.inner.log.append(entry) {
            Ok(_) => self.recovered(),
            Err(e) => {
                if let Some(m) = &self.inner.metrics {
                    m.lost(kind.as_str());
                }
                self.alert(&e.to_string(), kind.as_str());
            }
        }
    }

    fn recovered(&self) {
        if self.inner.failing.swap(false, Ordering::AcqRel) {
            tracing::warn!(dir = %self.inner.log.dir().display(), "the audit log takes records again");
            if let Some(m) = &self.inner.metrics {
                m.recovered();
            }
        }
    }

    /// Logs the first failure of an episode as an alert, later ones at
    /// debug level (the metrics count them all).
    fn alert(&self, error: &str, kind: &str) {
        if !self.inner.failing.swap(true, Ordering::AcqRel) {
            tracing::error!(
                alert = "audit_unwritable",
                dir = %self.inner.log.dir().display(),
                kind,
                fail_open = self.inner.fail_open,
                error,
                "ALERT: the audit log cannot be written; {}",
                if self.inner.fail_open {
                    "actions go ahead WITHOUT their records (--audit-fail-open)"
                } else {
                    "actions are refused until it can"
                }
            );
        } else {
            tracing::debug!(kind, error, "audit record not written");
        }
    }

    /// Records a sidecar start or stop (see [`SidecarEvent`]).
    pub fn sidecar(&self, event: SidecarEvent<'_>) {
        self.consume(ActionEvent::Sidecar(event));
    }

    async fn attempt_inner(&self, attempt: CallAttempt<'_>) -> Result<(), JournalError> {
        let entry = entries::attempt(self.agent(&attempt.action.agent.id), &attempt);
        let written = match attempt.durability {
            Durability::Written => self.inner.log.append_written(entry).await,
            Durability::Durable => self.inner.log.append_durable(entry).await,
        };
        let error = match written {
            Ok(_) => {
                self.recovered();
                return Ok(());
            }
            Err(e) => e,
        };
        self.alert(&error.to_string(), RecordKind::ToolCall.as_str());
        if !self.inner.fail_open {
            if let Some(m) = &self.inner.metrics {
                m.action_refused();
            }
            return Err(JournalError(error.to_string()));
        }
        if let Some(m) = &self.inner.metrics {
            m.fail_open();
        }
        tracing::warn!(
            fail_open = true,
            tool = attempt.action.tool.as_deref().unwrap_or("-"),
            action = attempt.action.action.as_deref().unwrap_or("-"),
            tier = attempt.decision.tier.name(),
            error = %error,
            "call forwarded WITHOUT its audit record (--audit-fail-open)"
        );
        let mut record = AuditEntry::new(
            RecordKind::FailOpen,
            Phase::Event,
            self.agent(&attempt.action.agent.id),
        );
        record.detail = Some(serde_json::json!({
            "error": error.to_string(),
            "tool": attempt.action.tool,
            "action": attempt.action.action,
            "tier": attempt.decision.tier as u8,
        }));
        // Probably refused as well; kept if the log came back meanwhile.
        let _ = self.inner.log.append(record);
        Ok(())
    }
}

impl ActionSink for AuditSink {
    fn consume(&self, event: ActionEvent<'_>) {
        for entry in entries::of_event(&|id| self.agent(id), event) {
            self.record(entry);
        }
    }
}

impl AttemptJournal for AuditSink {
    fn attempt<'a>(&'a self, attempt: CallAttempt<'a>) -> AttemptFuture<'a> {
        Box::pin(self.attempt_inner(attempt))
    }
}

#[cfg(test)]
mod tests;
