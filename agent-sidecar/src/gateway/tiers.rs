//! The four tiers applied to one decided action: forward (1, 2), hold for
//! an approver (3), or block and maybe quarantine (4, and `deny`). The
//! owner's notice (tier 2) and the SOC's alert (tier 4) are consumers of
//! the call's event (see [`crate::events`]), not steps of this stage.
//! [`Oversight`] is this stage's handle.

use std::{sync::Arc, time::Duration};

use hyper::StatusCode;

use super::{binding::Held, hooks::QuarantineSwitch, refusal::Refusal, refusal::for_tier};
use crate::{
    approvals::{
        ActionSummary, ApprovalError, ApprovalId, ApprovalOutcome, ApprovalStore, ForwardToken,
        NewApproval, UnixMillis,
        chain::{ChainRequest, ResolvedChain, resolve_first},
    },
    policy::{Action, ActionTarget, Decision, PolicyStore, Tier},
};

/// What the tier stage needs: the approvals, the quarantine, the policy in
/// force (re-checked when an approved call is forwarded).
pub(crate) struct Oversight {
    /// The agent governed.
    pub(crate) agent: String,
    /// Durable tier-3 approvals.
    pub(crate) approvals: ApprovalStore,
    /// The agent's quarantine.
    pub(crate) quarantine: QuarantineSwitch,
    /// The tier policy, hot-reloaded.
    pub(crate) policy: Arc<PolicyStore>,
    /// How long a held call waits for an approver.
    pub(crate) sla: Duration,
    /// The minimum tier a behavioural alert may impose for a while.
    pub(crate) floor: super::tier_floor::TierFloor,
}

impl Oversight {
    /// Quarantines the agent now and cancels every approval of the agent
    /// that is pending or approved but not yet forwarded, telling the
    /// approvers.
    pub(crate) async fn quarantine_agent(&self, reason: &str) {
        tracing::warn!(agent = %self.agent, reason, "quarantining the agent");
        self.quarantine.engage(reason);
        let why = format!("the agent was quarantined: {reason}");
        match self.approvals.cancel_agent(&self.agent, why).await {
            Ok(cancelled) if !cancelled.is_empty() => {
                let ids: Vec<String> = cancelled.iter().map(|a| a.id.to_string()).collect();
                tracing::warn!(agent = %self.agent, approvals = ?ids, "held calls cancelled by the quarantine");
            }
            Ok(_) => {}
            // The forward of each approved call re-checks the quarantine.
            Err(e) => {
                tracing::error!(error = %e, "cannot cancel the held calls of the quarantined agent; each is refused at its forward")
            }
        }
    }
}

/// What to do with a decided call.
pub(crate) enum TierAction {
    /// Forward it; when it was approved (tier 3), only after [`claim`].
    Forward(Option<ApprovalId>),
    /// Refuse it.
    Refuse(Refusal),
}

/// Applies `decision` to `action`. `key` is the idempotency key of the call
/// (tier 3); `held` what the approval binds and what the approver sees,
/// which only a tier-3 decision reads (callers may leave it out for the
/// other tiers; a tier-3 call without it is refused).
pub(crate) async fn enforce(
    gw: &Oversight,
    action: &Action,
    decision: &Decision,
    key: Option<String>,
    held: Option<Held>,
) -> TierAction {
    match decision.tier {
        Tier::Autonomous | Tier::Supervised => TierAction::Forward(None),
        Tier::Approval => match held {
            Some(held) => hold(gw, action, decision, key, held).await,
            None => TierAction::Refuse(Refusal::decided(
                StatusCode::INTERNAL_SERVER_ERROR,
                "approval_unbound",
                "the held call has no binding for its approval; refused",
                decision,
            )),
        },
        Tier::Halt | Tier::Deny => TierAction::Refuse(block(gw, decision).await),
    }
}

/// Tier 4 and deny: refuse; for tier 4, if a rule says so, quarantine the
/// agent.
async fn block(gw: &Oversight, decision: &Decision) -> Refusal {
    let (status, reason) = for_tier(decision.tier);
    let mut message = format!("refused by policy: {}", decision.reason);
    if decision.tier == Tier::Halt && decision.quarantine {
        gw.quarantine_agent(&decision.reason).await;
        message.push_str("; the agent is quarantined until an operator releases it");
    }
    Refusal::decided(status, reason, message, decision)
}

/// Tier 3: hold until an approver decides or the SLA passes.
async fn hold(
    gw: &Oversight,
    action: &Action,
    decision: &Decision,
    key: Option<String>,
    held: Held,
) -> TierAction {
    let key = key.unwrap_or_else(|| format!("anon:{}", ApprovalId::random()));
    let (tool, act, target) = describe(action);
    let chain = resolve_chain(gw, action, &tool, &act);
    let request = NewApproval {
        agent_id: action.agent.id.clone(),
        action: ActionSummary {
            tool,
            action: act,
            target,
            input: held.input,
            request: held.request,
        },
        binding: held.binding,
        decided: Some(action.clone()),
        tier: decision.tier,
        rule_ids: decision.rules.iter().map(|r| r.id.to_string()).collect(),
        policy_version: decision.policy_version.hash.to_string(),
        reason: decision.reason.clone(),
        sla: gw.sla,
        chain,
    };
    let refuse = |status, reason, message: String| {
        TierAction::Refuse(Refusal::decided(status, reason, message, decision))
    };
    let handle = match gw.approvals.request(key, request).await {
        Ok(h) => h,
        Err(e @ ApprovalError::KeyReused(_)) => {
            return refuse(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                e.to_string(),
            );
        }
        Err(e @ ApprovalError::TooManyPending { .. }) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_pending_approvals",
                e.to_string(),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record the approval; refusing the held call");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "approval_unavailable",
                format!("approval could not be recorded: {e}"),
            );
        }
    };
    let id = handle.id().to_string();
    if handle.created() && gw.quarantine.active() {
        // Quarantined between the entry check and now: withdraw it at once.
        let _ = gw
            .approvals
            .cancel(handle.id(), "the agent is quarantined")
            .await;
    }
    let with_id = |v: TierAction| match v {
        TierAction::Refuse(r) => TierAction::Refuse(r.with_approval(id.clone())),
        other => other,
    };
    match handle.wait().await {
        Ok(ApprovalOutcome::Approved(_)) => TierAction::Forward(Some(handle.id().clone())),
        Ok(ApprovalOutcome::Cancelled { reason, .. }) => with_id(refuse(
            StatusCode::FORBIDDEN,
            "approval_cancelled",
            format!("the held call was cancelled before it was forwarded: {reason}"),
        )),
        Ok(ApprovalOutcome::Denied(d)) => with_id(refuse(
            StatusCode::FORBIDDEN,
            "approval_denied",
            format!("denied by {}: {}", d.by, d.reason),
        )),
        Ok(ApprovalOutcome::Expired { .. }) => with_id(refuse(
            StatusCode::FORBIDDEN,
            "approval_expired",
            format!("nobody approved within {:?}; denied by default", gw.sla),
        )),
        Err(e) => with_id(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval_unavailable",
            e.to_string(),
        )),
    }
}

/// Claims the forward of an approved call at the moment it is forwarded,
/// re-checking what may have changed while it waited: the agent must not
/// be quarantined and the policy in force must still let the action
/// through (neither `deny` nor tier 4); the store must still hold it as
/// approved. Otherwise the approval is cancelled (approvers told) and the
/// call refused.
pub(crate) async fn claim(
    gw: &Oversight,
    action: &Action,
    decision: &Decision,
    id: &ApprovalId,
) -> Result<ForwardToken, Refusal> {
    let quarantine = gw.quarantine.clone();
    let policy = gw.policy.current();
    let probe = action.clone();
    let check = move |_: &crate::approvals::PendingApproval| {
        if quarantine.active() {
            return Err("the agent was quarantined while the call waited".to_string());
        }
        let now = policy.decide(&probe);
        if now.tier >= Tier::Halt {
            return Err(format!(
                "the policy in force ({}) now decides {}: {}",
                now.policy_version.short(),
                now.tier.name(),
                now.reason
            ));
        }
        Ok(())
    };
    let refuse = |status, reason, message: String| {
        Refusal::decided(status, reason, message, decision).with_approval(id.to_string())
    };
    match gw.approvals.claim_forward_checked(id, check).await {
        Ok(token) => Ok(token),
        Err(ApprovalError::Cancelled { reason, .. }) => {
            tracing::warn!(approval = %id, reason = %reason, "approved call cancelled at forward");
            Err(refuse(
                StatusCode::FORBIDDEN,
                "approval_cancelled",
                format!("the approved call was cancelled before it was forwarded: {reason}"),
            ))
        }
        Err(e @ ApprovalError::AlreadyForwarded(_)) => Err(refuse(
            StatusCode::CONFLICT,
            "already_forwarded",
            format!("{e}; an approved call is forwarded once"),
        )),
        Err(e) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval_unavailable",
            e.to_string(),
        )),
    }
}

/// A name as approvers see it: its exact bytes, escaped.
fn escaped(name: &str) -> String {
    super::binding::escaped(name.as_bytes())
}

/// Tool, action and target as shown to approvers (names escaped).
/// The approval chain of the policy in force that governs this held
/// action, resolved now (eligible steps by the declared amount, the
/// agent's team and owner). An amount in another currency, or not a
/// non-negative number, counts as undeclared: only the top step decides.
fn resolve_chain(gw: &Oversight, action: &Action, tool: &str, act: &str) -> Option<ResolvedChain> {
    let policy = gw.policy.current();
    let chains = policy.approval_chains(&action.agent.id);
    if chains.is_empty() {
        return None;
    }
    let base = policy.organisation().1;
    let amount = action
        .attributes
        .amount
        .as_ref()
        .filter(|m| m.currency.as_deref().is_none_or(|c| c == base))
        .map(|m| m.value)
        .filter(|v| v.is_finite() && *v >= 0.0);
    let request = ChainRequest {
        tool,
        action: act,
        amount,
        agent_team: action.agent.team.as_deref(),
        owner: action.agent.owner.as_deref(),
    };
    resolve_first(chains, &request, UnixMillis::now().0)
}

fn describe(action: &Action) -> (String, String, String) {
    let target = match &action.target {
        Some(ActionTarget::Http { host, method, path }) => format!("{method} https://{host}{path}"),
        Some(ActionTarget::Mcp { server, tool }) => format!("mcp://{server}/{}", escaped(tool)),
        None => String::new(),
    };
    let tool = action.tool.clone().unwrap_or_else(|| match &action.target {
        Some(ActionTarget::Http { host, .. }) => host.clone(),
        Some(ActionTarget::Mcp { server, .. }) => server.clone(),
        None => "unknown".into(),
    });
    let act = action
        .action
        .clone()
        .unwrap_or_else(|| match &action.target {
            Some(ActionTarget::Mcp { tool, .. }) => escaped(tool),
            _ => "undeclared".into(),
        });
    (tool, act, target)
}
