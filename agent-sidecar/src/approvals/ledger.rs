//! The synchronous core of the store: the journal plus the in-memory view
//! it replays into, and every state transition. A change is appended (and
//! synced) to the journal before memory is updated, so memory never shows
//! what the disk does not hold.

use std::{collections::HashMap, path::Path, time::Duration};

use super::{
    chain::{Decider, Progress, Refusal},
    error::ApprovalError,
    journal::{Journal, TornTail},
    model::{
        ApprovalId, ApprovalState, ApproverDecision, NewApproval, PendingApproval, UnixMillis,
    },
};

/// When the journal is compacted and what compaction keeps.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Compact once the journal grows past this many bytes (or twice its
    /// size after the last compaction, whichever is larger).
    pub compact_above_bytes: u64,
    /// Decided approvals are kept this long after their decision (so that
    /// retries still attach to them and the API can show them), then dropped
    /// at the next compaction. Pending and approved ones are always kept.
    pub retain_decided: Duration,
    /// Most approvals one agent may have pending at once; a new request
    /// beyond it is refused with [`ApprovalError::TooManyPending`] (retries
    /// still attach to existing ones).
    pub max_pending_per_agent: usize,
}

/// Default of [`StoreConfig::max_pending_per_agent`].
pub const DEFAULT_MAX_PENDING_PER_AGENT: usize = 20;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compact_above_bytes: 8 << 20,
            retain_decided: Duration::from_secs(24 * 3600),
            max_pending_per_agent: DEFAULT_MAX_PENDING_PER_AGENT,
        }
    }
}

/// What opening the store found in the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// Lines replayed.
    pub records: usize,
    /// Approvals still pending after replay.
    pub pending: usize,
    /// Approvals whose SLA passed while the sidecar was down; now expired.
    /// Oldest first.
    pub expired_on_open: Vec<ApprovalId>,
    /// A partial last line left by a crash, cut off on open.
    pub torn_tail: Option<TornTail>,
}

/// What a [`Ledger::decide`] call did.
#[derive(Debug)]
pub(super) enum Ruling {
    /// Approved, denied, or expired (the SLA had passed).
    Decided(PendingApproval),
    /// One approval of `.2` recorded (`.1` so far); still pending.
    Partial(PendingApproval, usize, usize),
    /// The chain refuses the decider; nothing was recorded.
    Refused(PendingApproval, Refusal),
}

#[cfg(test)]
impl Ruling {
    /// The record, whatever the ruling.
    pub(super) fn record(self) -> PendingApproval {
        match self {
            Ruling::Decided(r) | Ruling::Partial(r, ..) | Ruling::Refused(r, _) => r,
        }
    }
}

/// Whether a [`Ledger::decide`] call approves or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Allow the held action.
    Approve,
    /// Refuse it.
    Deny,
}

#[derive(Debug)]
pub(super) struct Ledger {
    journal: Journal,
    approvals: HashMap<ApprovalId, PendingApproval>,
    by_key: HashMap<String, ApprovalId>,
    config: StoreConfig,
    compacted_len: u64,
}

impl Ledger {
    /// Replays the journal in `dir` and expires what became overdue.
    /// Returns the ledger, the report and the records expired on open.
    pub(super) fn open(
        dir: &Path,
        config: StoreConfig,
        now: UnixMillis,
    ) -> Result<(Ledger, ReplayReport, Vec<PendingApproval>), ApprovalError> {
        let (journal, replay) = Journal::open(dir)?;
        let records = replay.records.len();
        let mut ledger = Ledger {
            compacted_len: journal.len(),
            journal,
            approvals: HashMap::new(),
            by_key: HashMap::new(),
            config,
        };
        for record in replay.records {
            ledger
                .by_key
                .insert(record.idempotency_key.clone(), record.id.clone());
            ledger.approvals.insert(record.id.clone(), record);
        }
        let overdue: Vec<ApprovalId> = ledger
            .list(Some("pending"))
            .into_iter()
            .filter(|a| a.sla_deadline <= now)
            .map(|a| a.id)
            .collect();
        let mut expired = Vec::with_capacity(overdue.len());
        for id in &overdue {
            if let Some(record) = ledger.expire(id, now)? {
                expired.push(record);
            }
        }
        let report = ReplayReport {
            records,
            pending: ledger.pending_count(),
            expired_on_open: overdue,
            torn_tail: replay.torn_tail,
        };
        Ok((ledger, report, expired))
    }

    pub(super) fn get(&self, id: &ApprovalId) -> Result<&PendingApproval, ApprovalError> {
        self.approvals
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.clone()))
    }

    /// Every approval in `state` (all if `None`), oldest first.
    pub(super) fn list(&self, state: Option<&str>) -> Vec<PendingApproval> {
        let mut out: Vec<PendingApproval> = self
            .approvals
            .values()
            .filter(|a| state.is_none_or(|s| a.state.name() == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    pub(super) fn pending_count(&self) -> usize {
        self.approvals
            .values()
            .filter(|a| a.state == ApprovalState::Pending)
            .count()
    }

    /// The approval for `key`, created if none exists. The flag is true if
    /// it was created by this call. Reusing a key for another agent, another
    /// action or other bytes (another binding digest) is refused: the
    /// approval covers exactly what the approver saw. A new approval beyond
    /// the agent's pending cap is refused.
    pub(super) fn request(
        &mut self,
        key: String,
        req: NewApproval,
        now: UnixMillis,
    ) -> Result<(PendingApproval, bool), ApprovalError> {
        if let Some(id) = self.by_key.get(&key) {
            let existing = self.get(id)?;
            let same = existing.agent_id == req.agent_id
                && existing.action.tool == req.action.tool
                && existing.action.action == req.action.action
                && existing.action.target == req.action.target
                && !existing.binding.is_empty()
                && existing.binding == req.binding;
            if !same {
                return Err(ApprovalError::KeyReused(existing.id.clone()));
            }
            return Ok((existing.clone(), false));
        }
        let limit = self.config.max_pending_per_agent;
        let pending = self
            .approvals
            .values()
            .filter(|a| a.agent_id == req.agent_id && a.state == ApprovalState::Pending)
            .count();
        if pending >= limit {
            return Err(ApprovalError::TooManyPending {
                agent: req.agent_id,
                limit,
            });
        }
        let record = PendingApproval::new(key, req, now);
        self.store(record.clone(), now)?;
        Ok((record, true))
    }

    /// Records a human decision. An approval whose SLA has passed is expired
    /// instead, and the expired record is returned: the caller must check.
    /// Under an approval chain the decider must be an eligible approver
    /// ([`Ruling::Refused`] otherwise, nothing recorded), and an approval
    /// short of the approvals needed keeps it pending
    /// ([`Ruling::Partial`]).
    pub(super) fn decide(
        &mut self,
        id: &ApprovalId,
        verdict: Verdict,
        decider: &Decider,
        reason: String,
        now: UnixMillis,
    ) -> Result<Ruling, ApprovalError> {
        let current = self.get(id)?;
        if current.state.is_decided() {
            return Err(ApprovalError::AlreadyDecided {
                id: id.clone(),
                state: current.state.name(),
            });
        }
        let mut record = current.clone();
        if now >= record.sla_deadline {
            record.state = ApprovalState::Expired { at: now };
            self.store(record.clone(), now)?;
            return Ok(Ruling::Decided(record));
        }
        let mut by = decider.name().to_string();
        if let Some(chain) = &mut record.chain {
            let Decider::Approver(who) = decider else {
                return Err(ApprovalError::ChainNeedsApprover {
                    id: id.clone(),
                    chain: chain.name.clone(),
                });
            };
            let progress = match verdict {
                Verdict::Approve => chain.approve(who, now.0),
                Verdict::Deny => chain.check(who, now.0).map(|_| Progress::Approved),
            };
            match progress {
                Err(refusal) => return Ok(Ruling::Refused(record, refusal)),
                Ok(Progress::Partial { have, need }) => {
                    self.store(record.clone(), now)?;
                    return Ok(Ruling::Partial(record, have, need));
                }
                Ok(Progress::Approved) if verdict == Verdict::Approve => {
                    by = chain
                        .approvals
                        .iter()
                        .map(|a| a.approver.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                }
                Ok(Progress::Approved) => {}
            }
        }
        let decision = ApproverDecision {
            by,
            reason,
            at: now,
        };
        record.state = if verdict == Verdict::Approve {
            ApprovalState::Approved(decision)
        } else {
            ApprovalState::Denied(decision)
        };
        self.store(record.clone(), now)?;
        Ok(Ruling::Decided(record))
    }

    /// Records the escalations of `id`'s chain that are due at `now`.
    /// Returns the record and the newly eligible steps (empty if none), and
    /// when the next escalation is due while it stays pending.
    pub(super) fn escalate(
        &mut self,
        id: &ApprovalId,
        now: UnixMillis,
    ) -> Result<(PendingApproval, Vec<usize>, Option<u64>), ApprovalError> {
        let mut record = self.get(id)?.clone();
        if record.state != ApprovalState::Pending {
            return Ok((record, Vec::new(), None));
        }
        let Some(chain) = &mut record.chain else {
            return Ok((record, Vec::new(), None));
        };
        let new = chain.escalate(now.0);
        let next = chain.next_escalation_at();
        if !new.is_empty() {
            self.store(record.clone(), now)?;
        }
        Ok((record, new, next))
    }

    /// Expires `id` if it is pending and its SLA has passed.
    pub(super) fn expire(
        &mut self,
        id: &ApprovalId,
        now: UnixMillis,
    ) -> Result<Option<PendingApproval>, ApprovalError> {
        let current = self.get(id)?;
        if current.state != ApprovalState::Pending || now < current.sla_deadline {
            return Ok(None);
        }
        let mut record = current.clone();
        record.state = ApprovalState::Expired { at: now };
        self.store(record.clone(), now)?;
        Ok(Some(record))
    }

    /// Cancels `id` if it is pending or approved (not yet forwarded);
    /// returns the cancelled record, or `None` if it was past that.
    pub(super) fn cancel(
        &mut self,
        id: &ApprovalId,
        reason: &str,
        now: UnixMillis,
    ) -> Result<Option<PendingApproval>, ApprovalError> {
        let current = self.get(id)?;
        if !matches!(
            current.state,
            ApprovalState::Pending | ApprovalState::Approved(_)
        ) {
            return Ok(None);
        }
        let mut record = current.clone();
        record.state = ApprovalState::Cancelled {
            at: now,
            reason: reason.to_string(),
        };
        self.store(record.clone(), now)?;
        Ok(Some(record))
    }

    /// The ids of `agent`'s approvals that are pending or approved but not
    /// yet forwarded, oldest first.
    pub(super) fn open_of(&self, agent: &str) -> Vec<PendingApproval> {
        let mut out: Vec<PendingApproval> = self
            .approvals
            .values()
            .filter(|a| {
                a.agent_id == agent
                    && matches!(a.state, ApprovalState::Pending | ApprovalState::Approved(_))
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    /// Moves an approved approval to `Forwarded`, durably, exactly once.
    pub(super) fn claim_forward(
        &mut self,
        id: &ApprovalId,
        now: UnixMillis,
    ) -> Result<PendingApproval, ApprovalError> {
        let current = self.get(id)?;
        let approved = match &current.state {
            ApprovalState::Approved(d) => d.clone(),
            ApprovalState::Forwarded { .. } => {
                return Err(ApprovalError::AlreadyForwarded(id.clone()));
            }
            other => {
                return Err(ApprovalError::NotApproved {
                    id: id.clone(),
                    state: other.name(),
                });
            }
        };
        let mut record = current.clone();
        record.state = ApprovalState::Forwarded {
            at: now,
            upstream_status: None,
            approved,
        };
        self.store(record.clone(), now)?;
        Ok(record)
    }

    /// Adds the upstream's status to a forwarded approval (once).
    pub(super) fn record_upstream(
        &mut self,
        id: &ApprovalId,
        status: u16,
        now: UnixMillis,
    ) -> Result<(), ApprovalError> {
        let mut record = self.get(id)?.clone();
        match &mut record.state {
            ApprovalState::Forwarded {
                upstream_status: s @ None,
                ..
            } => *s = Some(status),
            _ => return Ok(()),
        }
        self.store(record, now)
    }

    /// Appends `record`, then applies it in memory, then compacts if due.
    fn store(&mut self, record: PendingApproval, now: UnixMillis) -> Result<(), ApprovalError> {
        self.journal.append(&record)?;
        self.by_key
            .insert(record.idempotency_key.clone(), record.id.clone());
        self.approvals.insert(record.id.clone(), record);
        if self.journal.len() > self.config.compact_above_bytes.max(2 * self.compacted_len) {
            self.compact(now);
        }
        Ok(())
    }

    /// Rewrites the journal with the live records. A failure is logged and
    /// harmless: the change that triggered it is already durable and the
    /// old journal is intact.
    fn compact(&mut self, now: UnixMillis) {
        let retain = self.config.retain_decided;
        let keep = |a: &PendingApproval| match decided_at(&a.state) {
            None => true,
            Some(at) => at.until(now) < retain,
        };
        let mut live: Vec<&PendingApproval> = self.approvals.values().filter(|a| keep(a)).collect();
        live.sort_by_key(|a| a.created_at);
        if let Err(e) = self.journal.compact(live) {
            tracing::warn!(error = %e, "approval journal compaction failed; will retry later");
            self.compacted_len = self.journal.len();
            return;
        }
        self.compacted_len = self.journal.len();
        self.approvals.retain(|_, a| keep(a));
        let approvals = &self.approvals;
        self.by_key.retain(|_, id| approvals.contains_key(id));
    }
}

/// When a terminal state was reached; `None` for states still in play
/// (pending, approved but not yet forwarded).
fn decided_at(state: &ApprovalState) -> Option<UnixMillis> {
    match state {
        ApprovalState::Pending | ApprovalState::Approved(_) => None,
        ApprovalState::Denied(d) => Some(d.at),
        ApprovalState::Expired { at }
        | ApprovalState::Cancelled { at, .. }
        | ApprovalState::Forwarded { at, .. } => Some(*at),
    }
}

#[cfg(test)]
mod tests;
