//! Errors of the approval store and of the service around it.

use std::path::PathBuf;

use super::model::ApprovalId;

/// The journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file-system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `append to`, `rename`...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A complete line of the journal is not an approval record.
    #[error("{}:{line}: corrupt approval record: {source}", path.display())]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// A record could not be encoded.
    #[error("cannot encode approval record: {0}")]
    Encode(serde_json::Error),
    /// An earlier failed append could not be rolled back.
    #[error("journal {} is unusable after a failed write; restart the sidecar", path.display())]
    Broken {
        /// The journal file.
        path: PathBuf,
    },
}

/// Why an approval operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The journal failed; nothing was acknowledged.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// No approval has this id.
    #[error("no approval with id {0}")]
    NotFound(ApprovalId),
    /// The approval was already decided (or forwarded).
    #[error("approval {id} is already {state}")]
    AlreadyDecided {
        /// The approval.
        id: ApprovalId,
        /// Its current state name.
        state: &'static str,
    },
    /// Forwarding was claimed for an approval that is not approved.
    #[error("approval {id} is {state}, not approved: it cannot be forwarded")]
    NotApproved {
        /// The approval.
        id: ApprovalId,
        /// Its current state name.
        state: &'static str,
    },
    /// The idempotency key already belongs to an approval for another agent,
    /// another action or other request bytes.
    #[error(
        "idempotency key already used by approval {0} for a different request; an approval covers exactly the bytes the approver saw: send a changed request under a new key"
    )]
    KeyReused(ApprovalId),
    /// The agent already has as many pending approvals as allowed.
    #[error(
        "agent `{agent}` already has {limit} approvals waiting for an approver; wait for them to be decided (or expire) before asking for more"
    )]
    TooManyPending {
        /// The agent.
        agent: String,
        /// The cap (`max_pending_per_agent`).
        limit: usize,
    },
    /// The approval was withdrawn by the sidecar (quarantine, policy change)
    /// and must not be forwarded.
    #[error("approval {id} was cancelled: {reason}")]
    Cancelled {
        /// The approval.
        id: ApprovalId,
        /// Why.
        reason: String,
    },
    /// Forwarding was already claimed once.
    #[error("approval {0} was already forwarded")]
    AlreadyForwarded(ApprovalId),
    /// The approver may not decide under the approval's chain.
    #[error("approval {id}: {refusal}")]
    Chain {
        /// The approval.
        id: ApprovalId,
        /// Why.
        refusal: super::chain::Refusal,
    },
    /// The approval has a chain and the decision carries no authenticated
    /// approver to check against it.
    #[error(
        "approval {id} is governed by approval chain {chain:?}: deciding it needs an approver's own token from the approver directory (--approvers-file)"
    )]
    ChainNeedsApprover {
        /// The approval.
        id: ApprovalId,
        /// The chain's name.
        chain: String,
    },
    /// The store was closed (dropped) before the approval was decided.
    #[error("the approval store was closed before a decision")]
    Closed,
    /// The blocking worker that touches the journal panicked or was cancelled.
    #[error("approval store worker failed: {0}")]
    Worker(String),
}
