//! Held calls follow the policy in force: when a new policy set takes
//! effect (hot reload, rollback), every approval of the agent that is still
//! pending, or approved but not yet forwarded, is decided again with the
//! new set. One the new set denies or halts is cancelled at once, with the
//! reason, and its approvers are told (`approval.decided`, state
//! `cancelled`); its waiting call is refused. Every forward re-checks the
//! policy again at the moment it happens ([`super::tiers::claim`]), so a
//! reload that lands between this pass and a forward is honoured too.

use std::sync::{Arc, Weak};

use super::state::Shared;
use crate::policy::Tier;

/// Re-decides the held calls of `gw` after every policy change, until the
/// gateway is dropped. Needs a tokio runtime (none: nothing is spawned and
/// each forward's own re-check remains).
pub(crate) fn spawn(gw: &Arc<Shared>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: held calls are re-checked only when forwarded");
        return;
    };
    let mut changes = gw.policy.subscribe();
    let weak: Weak<Shared> = Arc::downgrade(gw);
    runtime.spawn(async move {
        while changes.changed().await.is_ok() {
            let Some(gw) = weak.upgrade() else { return };
            redecide(&gw).await;
        }
    });
}

/// One pass over the agent's held calls with the set in force.
async fn redecide(gw: &Shared) {
    let policy = gw.policy.current();
    let open = match gw.approvals.open_of(&gw.identity.id).await {
        Ok(open) => open,
        Err(e) => {
            tracing::error!(error = %e, "cannot list held calls after a policy change; each is re-checked when forwarded");
            return;
        }
    };
    for approval in open {
        let Some(action) = &approval.decided else {
            continue;
        };
        let decision = policy.decide(action);
        if decision.tier < Tier::Halt {
            continue;
        }
        let reason = format!(
            "policy {} ({}) now decides {}: {}",
            policy.version().short(),
            policy.version().label,
            decision.tier.name(),
            decision.reason
        );
        match gw.approvals.cancel(&approval.id, reason.as_str()).await {
            Ok(Some(_)) => {
                tracing::warn!(approval = %approval.id, reason = %reason, "held call cancelled by a policy change");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(approval = %approval.id, error = %e, "cannot cancel a held call the new policy refuses; it is refused when forwarded");
            }
        }
    }
}
