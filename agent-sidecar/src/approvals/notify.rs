//! Who hears about approvals: the [`Notifier`] trait.

use super::{chain::ChainStep, model::PendingApproval};

/// Told when an approval is created and when it is decided (approved,
/// denied, expired or cancelled), after the change is durable and before waiters are
/// woken. Called with the store's lock held: implementations must return at
/// once and do their I/O elsewhere (see
/// [`WebhookNotifier`](super::WebhookNotifier)).
pub trait Notifier: Send + Sync {
    /// A new approval waits for an approver.
    fn pending(&self, approval: &PendingApproval);
    /// An approval was decided; `approval.state` says how.
    fn decided(&self, approval: &PendingApproval);
    /// A step of the approval's chain that did not decide it: one approval
    /// of several, an escalation, a refused approver.
    fn chain_step(&self, approval: &PendingApproval, step: &ChainStep<'_>) {
        let _ = (approval, step);
    }
}
