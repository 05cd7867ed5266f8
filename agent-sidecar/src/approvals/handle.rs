//! Handles given to the hold path: [`ApprovalHandle`] for a held action and
//! [`ForwardToken`], the right to forward it once.

use super::{
    error::ApprovalError,
    model::{ApprovalId, ApprovalOutcome, PendingApproval},
    store::ApprovalStore,
};

/// A held action: retries with the same idempotency key get a handle to the
/// same approval.
#[derive(Clone)]
pub struct ApprovalHandle {
    store: ApprovalStore,
    approval: PendingApproval,
    created: bool,
}

impl ApprovalHandle {
    pub(super) fn new(store: ApprovalStore, approval: PendingApproval, created: bool) -> Self {
        ApprovalHandle {
            store,
            approval,
            created,
        }
    }

    /// The approval's id.
    pub fn id(&self) -> &ApprovalId {
        &self.approval.id
    }

    /// The approval as it was when the handle was made.
    pub fn approval(&self) -> &PendingApproval {
        &self.approval
    }

    /// True if this request created the approval, false if it attached to
    /// an existing one (a retry).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Waits for the decision (see [`ApprovalStore::wait`]).
    pub async fn wait(&self) -> Result<ApprovalOutcome, ApprovalError> {
        self.store.wait(&self.approval.id).await
    }

    /// Claims the forward (see [`ApprovalStore::claim_forward`]).
    pub async fn claim_forward(&self) -> Result<ForwardToken, ApprovalError> {
        self.store.claim_forward(&self.approval.id).await
    }
}

/// The right to forward one approved action, handed out at most once per
/// approval. Report the upstream's answer with
/// [`ApprovalStore::record_upstream_status`].
#[derive(Debug)]
#[must_use = "an approved action was claimed: forward it and record the upstream status"]
pub struct ForwardToken {
    id: ApprovalId,
}

impl ForwardToken {
    pub(super) fn new(id: ApprovalId) -> Self {
        ForwardToken { id }
    }

    /// The approval this token forwards.
    pub fn id(&self) -> &ApprovalId {
        &self.id
    }
}
