//! [`ApprovalStore`]: the durable, async face of tier-3 approvals. It holds
//! actions, lets callers wait for the decision, applies SLA expiry, and
//! hands out the right to forward an approved action at most once.
//!
//! Journal writes (with their fsync) run on tokio's blocking pool, never on
//! the async workers.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use tokio::sync::watch;

use super::{
    chain::{ChainStep, Decider},
    directory::Approver,
    error::ApprovalError,
    ledger::{Ledger, ReplayReport, Ruling, StoreConfig, Verdict},
    metrics::ApprovalMetrics,
    model::{ApprovalId, ApprovalOutcome, ApprovalState, NewApproval, PendingApproval, UnixMillis},
    notify::Notifier,
    token::ForwardToken,
};

/// How an [`ApprovalStore`] is opened.
#[derive(Clone, Default)]
pub struct ApprovalStoreOptions {
    /// Compaction settings.
    pub config: StoreConfig,
    /// Told about new and decided approvals.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// Updated on every change.
    pub metrics: Option<ApprovalMetrics>,
}

/// The durable approval store. Cheap to clone; all clones share one
/// journal. Dropping the last clone closes the journal; waiters then get
/// [`ApprovalError::Closed`].
#[derive(Clone)]
pub struct ApprovalStore {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Mutex<Inner>,
}

struct Inner {
    ledger: Ledger,
    watchers: HashMap<ApprovalId, watch::Sender<ApprovalState>>,
    notifier: Option<Arc<dyn Notifier>>,
    metrics: Option<ApprovalMetrics>,
}

impl Inner {
    /// After a durable decision: counts it, tells the notifier, then wakes
    /// the waiters, so that whoever sees the outcome sees it accounted for.
    fn decided(&mut self, record: &PendingApproval) {
        if let Some(m) = &self.metrics {
            m.decided(record);
            m.set_pending(self.ledger.pending_count());
        }
        if let Some(n) = &self.notifier {
            n.decided(record);
        }
        if let Some(tx) = self.watchers.remove(&record.id) {
            tx.send_replace(record.state.clone());
        }
    }

    /// After a chain step that did not decide the approval.
    fn chain_step(&self, record: &PendingApproval, step: &ChainStep<'_>) {
        if let (Some(m), ChainStep::Refused { reason, .. }) = (&self.metrics, step) {
            m.decision_refused(reason);
        }
        if let Some(n) = &self.notifier {
            n.chain_step(record, step);
        }
    }

    /// After a durable creation.
    fn created(&self, record: &PendingApproval) {
        if let Some(m) = &self.metrics {
            m.set_pending(self.ledger.pending_count());
        }
        if let Some(n) = &self.notifier {
            n.pending(record);
        }
    }
}

impl ApprovalStore {
    /// The metrics the store counts into, if any.
    pub(crate) fn metrics(&self) -> Option<ApprovalMetrics> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .metrics
            .clone()
    }

    /// Opens the store in `dir` with default options.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<(Self, ReplayReport), ApprovalError> {
        Self::open_with(dir, ApprovalStoreOptions::default()).await
    }

    /// Opens the store in `dir`: replays the journal, expires approvals whose
    /// SLA passed while the sidecar was down, and arms the SLA timers of the
    /// rest. Needs a tokio runtime.
    pub async fn open_with(
        dir: impl Into<PathBuf>,
        options: ApprovalStoreOptions,
    ) -> Result<(Self, ReplayReport), ApprovalError> {
        let dir = dir.into();
        let config = options.config;
        let (ledger, report, expired) =
            tokio::task::spawn_blocking(move || Ledger::open(&dir, config, UnixMillis::now()))
                .await
                .map_err(|e| ApprovalError::Worker(e.to_string()))??;
        if let Some(torn) = &report.torn_tail {
            tracing::warn!(
                line = torn.line,
                bytes = torn.bytes,
                "approval journal ended with a partial line (crash mid-write); it was cut off"
            );
        }
        let pending = ledger.list(Some("pending"));
        let mut inner = Inner {
            ledger,
            watchers: HashMap::new(),
            notifier: options.notifier,
            metrics: options.metrics,
        };
        for record in &expired {
            inner.decided(record);
        }
        if let Some(m) = &inner.metrics {
            m.set_pending(pending.len());
        }
        let store = ApprovalStore {
            shared: Arc::new(Shared {
                inner: Mutex::new(inner),
            }),
        };
        for record in pending {
            store.arm_escalation(&record);
            store.arm_expiry(record.id, record.sla_deadline);
        }
        Ok((store, report))
    }

    /// Holds an action under idempotency key `key` (see
    /// [`request`](Self::request), which wraps the approval in a handle):
    /// the approval, and whether this call created it.
    pub(super) async fn hold(
        &self,
        key: String,
        req: NewApproval,
    ) -> Result<(PendingApproval, bool), ApprovalError> {
        let (approval, created) = self
            .run(move |inner| {
                let agent = req.agent_id.clone();
                let (approval, created) = match inner.ledger.request(key, req, UnixMillis::now()) {
                    Err(e @ ApprovalError::TooManyPending { .. }) => {
                        tracing::warn!(agent = %agent, error = %e, "approval request refused");
                        if let Some(m) = &inner.metrics {
                            m.refused("too_many_pending");
                        }
                        return Err(e);
                    }
                    other => other?,
                };
                if created {
                    inner.created(&approval);
                }
                Ok((approval, created))
            })
            .await?;
        if created {
            self.arm_escalation(&approval);
            self.arm_expiry(approval.id.clone(), approval.sla_deadline);
        }
        Ok((approval, created))
    }

    /// One approval by id.
    pub async fn get(&self, id: &ApprovalId) -> Result<PendingApproval, ApprovalError> {
        let id = id.clone();
        self.run(move |inner| inner.ledger.get(&id).cloned()).await
    }

    /// The approvals in `state` (`pending`, `approved`, `denied`, `expired`,
    /// `forwarded`; all if `None`), oldest first.
    pub async fn list(&self, state: Option<&str>) -> Result<Vec<PendingApproval>, ApprovalError> {
        let state = state.map(str::to_owned);
        self.run(move |inner| Ok(inner.ledger.list(state.as_deref())))
            .await
    }

    /// Approves a pending approval, recording who and why. Refused with
    /// [`ApprovalError::AlreadyDecided`] if it is decided or its SLA passed,
    /// and with [`ApprovalError::ChainNeedsApprover`] if an approval chain
    /// governs it (use [`approve_as`](Self::approve_as)).
    pub async fn approve(
        &self,
        id: &ApprovalId,
        by: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<PendingApproval, ApprovalError> {
        self.decide(
            id,
            Verdict::Approve,
            Decider::Named(by.into()),
            reason.into(),
        )
        .await
    }

    /// Denies a pending approval, recording who and why.
    pub async fn deny(
        &self,
        id: &ApprovalId,
        by: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<PendingApproval, ApprovalError> {
        self.decide(id, Verdict::Deny, Decider::Named(by.into()), reason.into())
            .await
    }

    /// Approves as an authenticated approver. Under an approval chain the
    /// approver must be eligible ([`ApprovalError::Chain`] otherwise, counted
    /// and told to the notifier), and under four-eyes the first approval
    /// leaves the approval pending (the returned record shows it).
    pub async fn approve_as(
        &self,
        id: &ApprovalId,
        who: &Approver,
        reason: impl Into<String>,
    ) -> Result<PendingApproval, ApprovalError> {
        self.decide(
            id,
            Verdict::Approve,
            Decider::Approver(who.clone()),
            reason.into(),
        )
        .await
    }

    /// Denies as an authenticated approver (eligible under the chain, if any).
    pub async fn deny_as(
        &self,
        id: &ApprovalId,
        who: &Approver,
        reason: impl Into<String>,
    ) -> Result<PendingApproval, ApprovalError> {
        self.decide(
            id,
            Verdict::Deny,
            Decider::Approver(who.clone()),
            reason.into(),
        )
        .await
    }

    async fn decide(
        &self,
        id: &ApprovalId,
        verdict: Verdict,
        decider: Decider,
        reason: String,
    ) -> Result<PendingApproval, ApprovalError> {
        let id = id.clone();
        let record = self
            .run(move |inner| {
                match inner
                    .ledger
                    .decide(&id, verdict, &decider, reason, UnixMillis::now())?
                {
                    Ruling::Decided(record) => {
                        inner.decided(&record);
                        Ok(record)
                    }
                    Ruling::Partial(record, have, need) => {
                        let step = ChainStep::PartiallyApproved {
                            approver: decider.name(),
                            have,
                            need,
                        };
                        inner.chain_step(&record, &step);
                        Ok(record)
                    }
                    Ruling::Refused(record, refusal) => {
                        tracing::warn!(approval = %id, approver = decider.name(), error = %refusal, "approval chain refused the decision");
                        let step = ChainStep::Refused {
                            approver: decider.name(),
                            reason: refusal.reason(),
                            message: refusal.to_string(),
                        };
                        inner.chain_step(&record, &step);
                        Err(ApprovalError::Chain { id, refusal })
                    }
                }
            })
            .await?;
        if let ApprovalState::Expired { .. } = record.state {
            return Err(ApprovalError::AlreadyDecided {
                id: record.id,
                state: "expired",
            });
        }
        Ok(record)
    }

    /// Waits until the approval is decided. Returns at once if it already
    /// is; every waiter on one approval sees the same outcome.
    pub async fn wait(&self, id: &ApprovalId) -> Result<ApprovalOutcome, ApprovalError> {
        let id = id.clone();
        /// What a waiter finds: the outcome, or a channel to wait on.
        enum Found {
            Decided(ApprovalOutcome),
            Pending(watch::Receiver<ApprovalState>),
        }
        let found = self
            .run(move |inner| {
                let state = &inner.ledger.get(&id)?.state;
                if let Some(outcome) = state.outcome() {
                    return Ok(Found::Decided(outcome));
                }
                let tx = inner
                    .watchers
                    .entry(id)
                    .or_insert_with(|| watch::channel(ApprovalState::Pending).0);
                Ok(Found::Pending(tx.subscribe()))
            })
            .await?;
        let mut rx = match found {
            Found::Decided(outcome) => return Ok(outcome),
            Found::Pending(rx) => rx,
        };
        let state = rx
            .wait_for(ApprovalState::is_decided)
            .await
            .map_err(|_| ApprovalError::Closed)?;
        state.outcome().ok_or(ApprovalError::Closed)
    }

    /// Cancels `id` if it is pending or approved but not yet forwarded:
    /// waiters get [`ApprovalOutcome::Cancelled`], the notifier hears of it as a
    /// decision, and a later approve or deny gets
    /// [`ApprovalError::AlreadyDecided`]. Returns the cancelled record, or
    /// `None` if it was already decided otherwise or forwarded.
    pub async fn cancel(
        &self,
        id: &ApprovalId,
        reason: impl Into<String>,
    ) -> Result<Option<PendingApproval>, ApprovalError> {
        let (id, reason) = (id.clone(), reason.into());
        self.run(move |inner| {
            let record = inner.ledger.cancel(&id, &reason, UnixMillis::now())?;
            if let Some(r) = &record {
                inner.decided(r);
            }
            Ok(record)
        })
        .await
    }

    /// Cancels every approval of `agent` that is pending or approved but
    /// not yet forwarded (a quarantine or kill switch), in one step under
    /// the store's lock. Returns the cancelled records.
    pub async fn cancel_agent(
        &self,
        agent: &str,
        reason: impl Into<String>,
    ) -> Result<Vec<PendingApproval>, ApprovalError> {
        let (agent, reason) = (agent.to_string(), reason.into());
        self.run(move |inner| {
            let now = UnixMillis::now();
            let mut out = Vec::new();
            for open in inner.ledger.open_of(&agent) {
                if let Some(r) = inner.ledger.cancel(&open.id, &reason, now)? {
                    inner.decided(&r);
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The approvals of `agent` that are pending or approved but not yet
    /// forwarded, oldest first.
    pub async fn open_of(&self, agent: &str) -> Result<Vec<PendingApproval>, ApprovalError> {
        let agent = agent.to_string();
        self.run(move |inner| Ok(inner.ledger.open_of(&agent)))
            .await
    }

    /// Like [`claim_forward`](Self::claim_forward), but first runs `check`
    /// on the approved record under the store's lock, at the moment of the
    /// claim: if it returns a reason, the approval is cancelled with it
    /// (approvers told) and [`ApprovalError::Cancelled`] is returned. The
    /// caller checks there what may have changed while the call waited
    /// (the agent's state, the policy in force).
    pub async fn claim_forward_checked(
        &self,
        id: &ApprovalId,
        check: impl FnOnce(&PendingApproval) -> Result<(), String> + Send + 'static,
    ) -> Result<ForwardToken, ApprovalError> {
        let id = id.clone();
        self.run(move |inner| {
            let now = UnixMillis::now();
            let current = inner.ledger.get(&id)?;
            if matches!(current.state, ApprovalState::Approved(_))
                && let Err(reason) = check(current)
            {
                if let Some(r) = inner.ledger.cancel(&id, &reason, now)? {
                    inner.decided(&r);
                }
                return Err(ApprovalError::Cancelled { id, reason });
            }
            if let ApprovalState::Cancelled { reason, .. } = &current.state {
                return Err(ApprovalError::Cancelled {
                    id: id.clone(),
                    reason: reason.clone(),
                });
            }
            let record = inner.ledger.claim_forward(&id, now)?;
            Ok(ForwardToken::new(record.id))
        })
        .await
    }

    /// Claims the right to forward an approved action. Succeeds once per
    /// approval, ever: the `Forwarded` state is synced to the journal before
    /// the token is returned, so concurrent waiters and a restarted sidecar
    /// get [`ApprovalError::AlreadyForwarded`].
    pub async fn claim_forward(&self, id: &ApprovalId) -> Result<ForwardToken, ApprovalError> {
        let id = id.clone();
        self.run(move |inner| {
            let record = inner.ledger.claim_forward(&id, UnixMillis::now())?;
            Ok(ForwardToken::new(record.id))
        })
        .await
    }

    /// Records the upstream's status for a forwarded action.
    pub async fn record_upstream_status(
        &self,
        token: ForwardToken,
        status: u16,
    ) -> Result<(), ApprovalError> {
        self.run(move |inner| {
            inner
                .ledger
                .record_upstream(token.id(), status, UnixMillis::now())
        })
        .await
    }

    /// Runs `f` on the ledger on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, ApprovalError> + Send + 'static,
    ) -> Result<T, ApprovalError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut inner = shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut inner)
        })
        .await
        .map_err(|e| ApprovalError::Worker(e.to_string()))?
    }

    /// Expires `id` at `deadline`. The timer holds only a weak reference, so
    /// it never keeps a dropped store alive. A failed journal write is
    /// retried every second: the action stays held (fail closed).
    fn arm_expiry(&self, id: ApprovalId, deadline: UnixMillis) {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UnixMillis::now().until(deadline)).await;
                let Some(shared) = weak.upgrade() else { return };
                let store = ApprovalStore { shared };
                match store.expire(&id).await {
                    Ok(true) => {}
                    Ok(false) | Err(ApprovalError::NotFound(_)) => return,
                    Err(e) => {
                        tracing::error!(approval = %id, error = %e, "cannot record SLA expiry; retrying");
                        drop(store);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// Escalates `approval`'s chain each time its SLA per step passes: the
    /// next step up becomes eligible, recorded and told to the notifier
    /// (the approvers' webhook, the audit trail). Stops once the approval
    /// is decided or the top step is eligible. A failed journal write is
    /// retried every second.
    fn arm_escalation(&self, approval: &PendingApproval) {
        let Some(mut due) = approval.chain.as_ref().and_then(|c| c.next_escalation_at()) else {
            return;
        };
        let id = approval.id.clone();
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UnixMillis::now().until(UnixMillis(due))).await;
                let Some(shared) = weak.upgrade() else { return };
                let store = ApprovalStore { shared };
                let id2 = id.clone();
                let next = store
                    .run(move |inner| {
                        let (record, new, next) = inner.ledger.escalate(&id2, UnixMillis::now())?;
                        if let Some(chain) = &record.chain {
                            for &to_step in &new {
                                let s = &chain.steps[to_step];
                                let step = ChainStep::Escalated {
                                    to_step,
                                    role: &s.role,
                                    team: s.team.as_deref(),
                                };
                                inner.chain_step(&record, &step);
                            }
                        }
                        Ok(next)
                    })
                    .await;
                drop(store);
                match next {
                    Ok(Some(at)) => due = at,
                    Ok(None) | Err(ApprovalError::NotFound(_)) => return,
                    Err(e) => {
                        tracing::error!(approval = %id, error = %e, "cannot record an approval escalation; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// Expires `id` if due. Returns whether it is still pending.
    async fn expire(&self, id: &ApprovalId) -> Result<bool, ApprovalError> {
        let id = id.clone();
        self.run(move |inner| {
            if let Some(record) = inner.ledger.expire(&id, UnixMillis::now())? {
                inner.decided(&record);
            }
            Ok(inner.ledger.get(&id)?.state == ApprovalState::Pending)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
