//! Held calls follow the policy in force: when a new policy set takes
//! effect (hot reload, rollback), every approval of the agent that is still
//! pending, or approved but not yet forwarded, is decided again with the
//! new set. One the new set denies or halts is cancelled at once, with the
//! reason, and its approvers are told (`approval.decided`, state
//! `cancelled`); its waiting call is refused. Every forward re-checks the
//! policy again at the moment it happens ([`super::tiers::claim`]), so a
//! reload that lands between this pass and a forward is honoured too.

use crate::{
    approvals::ApprovalStore,
    policy::{CompiledPolicySet, Tier},
};

/// One pass over the held calls of `agent` with the set in force.
pub(crate) async fn redecide(policy: &CompiledPolicySet, approvals: &ApprovalStore, agent: &str) {
    let open = match approvals.open_of(agent).await {
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
        match approvals.cancel(&approval.id, reason.as_str()).await {
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
