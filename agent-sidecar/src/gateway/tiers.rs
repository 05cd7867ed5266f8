//! The four tiers applied to one decided action: forward (1, 2), hold for
//! an approver (3), or block with an alert and maybe a quarantine (4, and
//! `deny`).

use hyper::StatusCode;
use serde_json::json;

use super::{binding::Held, refusal::Refusal, refusal::for_tier, state::Shared};
use crate::{
    approvals::{
        ActionSummary, ApprovalError, ApprovalId, ForwardToken, NewApproval, Outcome, UnixMillis,
    },
    policy::{Action, Decision, Target, Tier},
};

/// What to do with a decided call.
pub(crate) enum Verdict {
    /// Forward it; when it was approved (tier 3), only after [`claim`].
    Forward(Option<ApprovalId>),
    /// Refuse it.
    Refuse(Refusal),
}

/// Applies `decision` to `action`. `key` is the idempotency key of the call
/// (tier 3); `held` what the approval binds and what the approver sees.
pub(crate) async fn enforce(
    gw: &Shared,
    action: &Action,
    decision: &Decision,
    key: Option<String>,
    held: Held,
) -> Verdict {
    match decision.tier {
        Tier::Autonomous | Tier::Supervised => Verdict::Forward(None),
        Tier::Approval => hold(gw, action, decision, key, held).await,
        Tier::Halt | Tier::Deny => Verdict::Refuse(block(gw, action, decision).await),
    }
}

/// Tier 4 and deny: refuse; for tier 4 alert the SOC and the owner and, if
/// a rule says so, quarantine the agent.
async fn block(gw: &Shared, action: &Action, decision: &Decision) -> Refusal {
    let (status, reason) = for_tier(decision.tier);
    let mut message = format!("refused by policy: {}", decision.reason);
    if decision.tier == Tier::Halt {
        if decision.quarantine {
            gw.quarantine_agent(&decision.reason).await;
            message.push_str("; the agent is quarantined until an operator releases it");
        }
        let alert = json!({
            "event": "action.halted",
            "at": UnixMillis::now(),
            "agent": action.agent,
            "action": action,
            "decision": decision,
            "quarantined": decision.quarantine,
        });
        gw.alerts.soc(&alert);
        gw.alerts.owner(&alert);
    }
    Refusal::decided(status, reason, message, decision)
}

/// Tier 3: hold until an approver decides or the SLA passes.
async fn hold(
    gw: &Shared,
    action: &Action,
    decision: &Decision,
    key: Option<String>,
    held: Held,
) -> Verdict {
    let key = key.unwrap_or_else(|| format!("anon:{}", ApprovalId::random()));
    let (tool, act, target) = describe(action);
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
        sla: gw.config.approval_sla,
    };
    let refuse = |status, reason, message: String| {
        Verdict::Refuse(Refusal::decided(status, reason, message, decision))
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
    let with_id = |v: Verdict| match v {
        Verdict::Refuse(r) => Verdict::Refuse(r.with_approval(id.clone())),
        other => other,
    };
    match handle.wait().await {
        Ok(Outcome::Approved(_)) => Verdict::Forward(Some(handle.id().clone())),
        Ok(Outcome::Cancelled { reason, .. }) => with_id(refuse(
            StatusCode::FORBIDDEN,
            "approval_cancelled",
            format!("the held call was cancelled before it was forwarded: {reason}"),
        )),
        Ok(Outcome::Denied(d)) => with_id(refuse(
            StatusCode::FORBIDDEN,
            "approval_denied",
            format!("denied by {}: {}", d.by, d.reason),
        )),
        Ok(Outcome::Expired { .. }) => with_id(refuse(
            StatusCode::FORBIDDEN,
            "approval_expired",
            format!(
                "nobody approved within {:?}; denied by default",
                gw.config.approval_sla
            ),
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
    gw: &Shared,
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
fn describe(action: &Action) -> (String, String, String) {
    let target = match &action.target {
        Some(Target::Http { host, method, path }) => format!("{method} https://{host}{path}"),
        Some(Target::Mcp { server, tool }) => format!("mcp://{server}/{}", escaped(tool)),
        None => String::new(),
    };
    let tool = action.tool.clone().unwrap_or_else(|| match &action.target {
        Some(Target::Http { host, .. }) => host.clone(),
        Some(Target::Mcp { server, .. }) => server.clone(),
        None => "unknown".into(),
    });
    let act = action
        .action
        .clone()
        .unwrap_or_else(|| match &action.target {
            Some(Target::Mcp { tool, .. }) => escaped(tool),
            _ => "undeclared".into(),
        });
    (tool, act, target)
}

/// Tier 2, after the forward: tells the owner what was sent (`request`, as
/// approvers would see it), with the compensation that can undo the call
/// while its window is open.
pub(crate) fn supervised(
    gw: &Shared,
    action: &Action,
    decision: &Decision,
    request: &serde_json::Value,
    upstream_status: u16,
    compensation: Option<&super::compensate::Compensable>,
) {
    gw.alerts.owner(&json!({
        "event": "action.supervised",
        "at": UnixMillis::now(),
        "agent": action.agent,
        "action": action,
        "decision": decision,
        "request": request,
        "upstream_status": upstream_status,
        "compensation": compensation.map(|c| json!({
            "id": c.id,
            "action": c.compensation,
            "until": c.until,
            "input": c.input,
            "request": c.request,
            "trigger": format!("POST /v1/compensations/{}/trigger", c.id),
        })),
    }));
}
