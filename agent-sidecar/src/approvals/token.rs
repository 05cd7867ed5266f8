//! [`ForwardToken`]: the right to forward an approved action, handed out
//! by the store once per approval.

use super::model::ApprovalId;

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
