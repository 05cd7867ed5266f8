//! [`CompensationError`]: why a compensation cannot run, and whether it
//! may be triggered again.

/// Why a compensation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CompensationError {
    /// No such id (or it was pruned after its window).
    #[error("no compensable call `{0}`")]
    NotFound(String),
    /// The window closed.
    #[error("the reversal window of `{0}` closed at {1}")]
    Closed(String, u64),
    /// Triggered before.
    #[error("`{0}` was already compensated")]
    AlreadyTriggered(String),
    /// The compensating request could not be built from the original.
    /// Nothing was sent; the compensation may be triggered again.
    #[error("cannot build the compensating request: {0}")]
    Build(String),
    /// The tool's server could not be reached, or refused the preparation
    /// of the compensating call, before it was sent. The compensation may
    /// be triggered again.
    #[error("{0}; the compensating call was not sent and may be triggered again")]
    NotSent(String),
    /// The compensating request was sent and failed: it may have run, so
    /// it is not sent again.
    #[error("{0}")]
    Upstream(String),
    /// The policy in force halts the compensating call (tier 4). Nothing
    /// was sent; it may be triggered again once the policy allows it.
    #[error("{0}; nothing was sent")]
    Refused(String),
}
