//! The four tiers applied to one decided action: forward (1, 2), hold for
//! an approver (3), or block with an alert and maybe a quarantine (4, and
//! `deny`).

use hyper::StatusCode;
use serde_json::{Value, json};

use super::{refusal::Refusal, refusal::for_tier, state::Shared};
use crate::{
    approvals::{ActionSummary, ApprovalError, ForwardToken, NewApproval, Outcome, UnixMillis},
    policy::{Action, Decision, Target, Tier},
};

/// What to do with a decided call.
pub(crate) enum Verdict {
    /// Forward it; with a token when it was approved (tier 3).
    Forward(Option<(ForwardToken, String)>),
    /// Refuse it.
    Refuse(Refusal),
}

/// Applies `decision` to `action`. `key` is the idempotency key of the call
/// (tier 3); `input` what the approver sees of the request.
pub(crate) async fn enforce(
    gw: &Shared,
    action: &Action,
    decision: &Decision,
    key: Option<String>,
    input: Value,
) -> Verdict {
    match decision.tier {
        Tier::Autonomous | Tier::Supervised => Verdict::Forward(None),
        Tier::Approval => hold(gw, action, decision, key, input).await,
        Tier::Halt | Tier::Deny => Verdict::Refuse(block(gw, action, decision)),
    }
}

/// Tier 4 and deny: refuse; for tier 4 alert the SOC and the owner and, if
/// a rule says so, quarantine the agent.
fn block(gw: &Shared, action: &Action, decision: &Decision) -> Refusal {
    let (status, reason) = for_tier(decision.tier);
    let mut message = format!("refused by policy: {}", decision.reason);
    if decision.tier == Tier::Halt {
        if decision.quarantine {
            tracing::warn!(agent = %action.agent.id, reason = %decision.reason, "quarantining the agent");
            gw.quarantine.engage(&decision.reason);
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
    input: Value,
) -> Verdict {
    let key = key.unwrap_or_else(|| format!("anon:{}", crate::approvals::ApprovalId::random()));
    let (tool, act, target) = describe(action);
    let request = NewApproval {
        agent_id: action.agent.id.clone(),
        action: ActionSummary {
            tool,
            action: act,
            target,
            input,
        },
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
    let with_id = |v: Verdict| match v {
        Verdict::Refuse(r) => Verdict::Refuse(r.with_approval(id.clone())),
        other => other,
    };
    match handle.wait().await {
        Ok(Outcome::Approved(_)) => match handle.claim_forward().await {
            Ok(token) => Verdict::Forward(Some((token, id))),
            Err(e @ ApprovalError::AlreadyForwarded(_)) => with_id(refuse(
                StatusCode::CONFLICT,
                "already_forwarded",
                format!("{e}; an approved call is forwarded once"),
            )),
            Err(e) => with_id(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "approval_unavailable",
                e.to_string(),
            )),
        },
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

/// Tool, action and target as shown to approvers.
fn describe(action: &Action) -> (String, String, String) {
    let target = match &action.target {
        Some(Target::Http { host, method, path }) => format!("{method} https://{host}{path}"),
        Some(Target::Mcp { server, tool }) => format!("mcp://{server}/{tool}"),
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
            Some(Target::Mcp { tool, .. }) => tool.clone(),
            _ => "undeclared".into(),
        });
    (tool, act, target)
}

/// Tier 2, after the forward: tells the owner, with the compensation that
/// can undo the call while its window is open.
pub(crate) fn supervised(
    gw: &Shared,
    action: &Action,
    decision: &Decision,
    upstream_status: u16,
    compensation: Option<&super::compensate::Compensable>,
) {
    gw.alerts.owner(&json!({
        "event": "action.supervised",
        "at": UnixMillis::now(),
        "agent": action.agent,
        "action": action,
        "decision": decision,
        "upstream_status": upstream_status,
        "compensation": compensation.map(|c| json!({
            "id": c.id,
            "action": c.compensation,
            "until": c.until,
            "trigger": format!("POST /v1/compensations/{}/trigger", c.id),
        })),
    }));
}
