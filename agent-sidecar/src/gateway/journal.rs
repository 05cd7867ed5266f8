//! The attempt stage: between decide and enforce, a decided call's
//! decision is written to the [`AttemptJournal`] (the audit trail) before
//! the call is forwarded or held. A tier >= 2 decision must be durable
//! (fsynced) first, a tier-1 decision at least written; when the journal
//! cannot take it, the call is refused (`audit_unavailable`) and never
//! reaches the upstream. The gateway knows only this trait, not the audit
//! log behind it.

use std::{future::Future, pin::Pin, sync::Arc};

use hyper::StatusCode;

use super::refusal::Refusal;
use crate::{
    policy::{Action, Decision, Tier},
    redaction::InputView,
};

/// How far an attempt's record must have gone before the call proceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Written to the log file (in the kernel's page cache): tier 1.
    Written,
    /// Written and fsynced: tier >= 2 (and refused calls).
    Durable,
}

impl Durability {
    /// What `tier` demands.
    pub fn for_tier(tier: Tier) -> Durability {
        match tier {
            Tier::Autonomous => Durability::Written,
            _ => Durability::Durable,
        }
    }
}

/// A decided call about to be enforced.
#[derive(Clone, Copy, Debug)]
pub struct CallAttempt<'a> {
    /// `http` or `mcp`.
    pub transport: &'static str,
    /// The action as the policy saw it.
    pub action: &'a Action,
    /// The decision.
    pub decision: &'a Decision,
    /// The W3C traceparent the upstream request carries.
    pub traceparent: &'a str,
    /// The agent's span id, when it sent a valid traceparent.
    pub caller_span: Option<&'a str>,
    /// The call's input as the policy's redaction keeps it (the raw input
    /// never reaches the journal).
    pub input: Option<&'a InputView>,
    /// How far the record must have gone before the call proceeds.
    pub durability: Durability,
}

/// Why the journal did not take an attempt.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// The future of [`AttemptJournal::attempt`].
pub type AttemptFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send + 'a>>;

/// Where attempts are recorded before calls proceed (the audit trail).
pub trait AttemptJournal: Send + Sync {
    /// Records `attempt`; resolves once the record has gone as far as
    /// `attempt.durability` asks. An error means the call must not
    /// proceed (unless the journal itself chose to fail open, in which
    /// case it resolves `Ok` and accounts for it).
    fn attempt<'a>(&'a self, attempt: CallAttempt<'a>) -> AttemptFuture<'a>;
}

/// This stage's handle.
#[derive(Clone, Default)]
pub(crate) struct Journal {
    journal: Option<Arc<dyn AttemptJournal>>,
}

/// The reason of a call refused because its record could not be written.
pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";

impl Journal {
    /// Attempts to `journal`; none are recorded without one.
    pub(crate) fn new(journal: Option<Arc<dyn AttemptJournal>>) -> Self {
        Journal { journal }
    }

    /// Whether attempts are recorded at all.
    pub(crate) fn enabled(&self) -> bool {
        self.journal.is_some()
    }

    /// Records the attempt of a decided call; a refusal when it cannot be
    /// recorded as its tier demands.
    pub(crate) async fn attempt(
        &self,
        transport: &'static str,
        action: &Action,
        decision: &Decision,
        traceparent: &str,
        caller_span: Option<&str>,
        input: Option<&InputView>,
    ) -> Result<(), Refusal> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let attempt = CallAttempt {
            transport,
            action,
            decision,
            traceparent,
            caller_span,
            input,
            durability: Durability::for_tier(decision.tier),
        };
        journal.attempt(attempt).await.map_err(|e| {
            Refusal::decided(
                StatusCode::SERVICE_UNAVAILABLE,
                AUDIT_UNAVAILABLE,
                format!(
                    "the call was not forwarded: its audit record could not be written ({e}); \
                     the sidecar refuses actions it cannot record; retry once the operator has \
                     fixed the audit log"
                ),
                decision,
            )
        })
    }
}
