//! [`ApprovalHandle`], what the hold path gets for a held action, and
//! [`ApprovalStore::request`], which makes one.

use super::{
    error::ApprovalError,
    model::{ApprovalId, ApprovalOutcome, NewApproval, PendingApproval},
    store::ApprovalStore,
    token::ForwardToken,
};

impl ApprovalStore {
    /// Holds an action under idempotency key `key` (a header value, or the
    /// JSON-RPC id with the MCP session id, computed by the caller). A retry
    /// with the same key attaches to the existing approval, whatever its
    /// state, instead of creating another one; a key reused for another
    /// agent or action is refused with [`ApprovalError::KeyReused`].
    pub async fn request(
        &self,
        key: impl Into<String>,
        req: NewApproval,
    ) -> Result<ApprovalHandle, ApprovalError> {
        let (approval, created) = self.hold(key.into(), req).await?;
        Ok(ApprovalHandle {
            store: self.clone(),
            approval,
            created,
        })
    }
}

/// A held action: retries with the same idempotency key get a handle to the
/// same approval.
#[derive(Clone)]
pub struct ApprovalHandle {
    store: ApprovalStore,
    approval: PendingApproval,
    created: bool,
}

impl ApprovalHandle {
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
