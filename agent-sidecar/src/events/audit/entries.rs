//! One action event as audit entries: the mapping `docs/audit.md`
//! documents kind by kind. Nothing here copies a raw request body: a tool
//! call's input context is the gateway's [`InputView`], the body as the
//! policy's redaction keeps it (see [`crate::redaction`]).

use serde_json::{Value, json};

use super::super::{ActionEvent, ApprovalEvent, ApprovalStep, PolicyEvent, SidecarStep};
use crate::{
    approvals::{ApprovalState, PendingApproval, UnixMillis, chain::ChainStep},
    audit::{
        AuditEntry, Phase, RecordKind,
        record::{
            ActionInfo, ActionTarget, ActionType, AgentIdentity, Decision as ApproverVerdict,
            InputContext, Outcome, OutcomeStatus, Oversight, PolicyResult, Redaction,
            RedactionMethod, TraceContext,
        },
        time::Timestamp,
    },
    dns::{DnsDecision, DnsEvent},
    gateway::{CallAttempt, CallOutcome, ToolCallEvent, trace},
    kernel::events::DenyRecord,
    policy::{self, Action, Decision, Tier},
    proxy::{ConnectionOutcome, ProxyEvent},
    redaction::InputView,
};

/// The input context of a call as records keep it: the body or MCP
/// arguments as the policy's redaction kept them (declared fields as
/// sent, hashed fields as keyed hashes), and what was redacted under which
/// policy version; never the raw input.
pub(super) fn input_context(view: Option<&InputView>) -> Option<InputContext> {
    let view = view?;
    if view.body.is_null() && view.redactions.is_empty() {
        return None;
    }
    Some(InputContext {
        value: view.body.clone(),
        redactions: view
            .redactions
            .iter()
            .map(|r| Redaction {
                path: r.path.clone(),
                method: match r.method {
                    policy::gateway::RedactMethod::Keep => RedactionMethod::Keep,
                    policy::gateway::RedactMethod::Hash => RedactionMethod::Hash,
                    policy::gateway::RedactMethod::Drop => RedactionMethod::Drop,
                },
                policy_version: view.policy_version.clone(),
            })
            .collect(),
    })
}

/// The record of a decided call, written before it is forwarded or held.
pub(super) fn attempt(agent: AgentIdentity, a: &CallAttempt<'_>) -> AuditEntry {
    let mut e = AuditEntry::new(RecordKind::ToolCall, Phase::Attempt, agent);
    e.trace = trace_of(a.traceparent, a.caller_span);
    e.action = Some(action_info(a.transport, a.action, true));
    e.input = input_context(a.input);
    e.policy = Some(policy_result(a.decision));
    if a.decision.tier == Tier::Approval {
        e.outcome = Some(Outcome {
            status: OutcomeStatus::Pending,
            upstream_status: None,
            bytes_in: None,
            bytes_out: None,
            latency_us: None,
            error: None,
        });
    }
    e
}

/// The entries of one event (none for the events the trail does not keep).
pub(super) fn of_event(
    agent: &dyn Fn(&str) -> AgentIdentity,
    event: ActionEvent<'_>,
) -> Vec<AuditEntry> {
    match event {
        ActionEvent::ToolCall(c) => tool_call(agent(c.agent_id()), c),
        ActionEvent::KernelDeny(d) => vec![kernel_deny(agent(d.agent_id), d.record)],
        ActionEvent::Dns(d) => dns(agent(&d.agent_id), d).into_iter().collect(),
        ActionEvent::Connection(p) => vec![proxy(agent(&p.agent_id), p)],
        ActionEvent::QuarantineReleased(q) => {
            let mut e = AuditEntry::new(
                RecordKind::QuarantineReleased,
                Phase::Event,
                agent(&q.agent.id),
            );
            e.action = Some(sidecar_action());
            e.detail = Some(json!({"operator": q.operator, "reason": q.reason}));
            vec![e]
        }
        ActionEvent::Approval(a) => approval(agent(&a.approval.agent_id), a)
            .into_iter()
            .collect(),
        ActionEvent::Policy(p) => vec![policy_event(agent(p.agent_id), p)],
        ActionEvent::Sidecar(s) => {
            let kind = match s.step {
                SidecarStep::Started => RecordKind::SidecarStarted,
                SidecarStep::Stopped => RecordKind::SidecarStopped,
            };
            let mut e = AuditEntry::new(kind, Phase::Event, agent(s.agent_id));
            e.action = Some(sidecar_action());
            e.detail = Some(s.detail.clone());
            vec![e]
        }
        ActionEvent::Response(r) => {
            let mut e = AuditEntry::new(
                RecordKind::DetectionResponse,
                Phase::Event,
                agent(&r.agent_id),
            );
            e.action = Some(sidecar_action());
            e.detail = serde_json::to_value(r).ok();
            vec![e]
        }
        ActionEvent::KillSwitch(k) => {
            let mut e = AuditEntry::new(RecordKind::KillSwitch, Phase::Event, agent(k.agent_id));
            e.action = Some(sidecar_action());
            e.detail = serde_json::to_value(k).ok();
            vec![e]
        }
        ActionEvent::Grant(g) => {
            let mut e = AuditEntry::new(RecordKind::Grant, Phase::Event, agent(g.agent_id));
            e.action = Some(sidecar_action());
            e.detail = serde_json::to_value(g).ok();
            vec![e]
        }
        ActionEvent::Shadow(d) => {
            let mut e = AuditEntry::new(
                RecordKind::ShadowDifference,
                Phase::Event,
                agent(d.agent_id),
            );
            e.trace = d.traceparent.and_then(|t| trace_of(t, None));
            let transport = match d.action.target {
                Some(policy::ActionTarget::Mcp { .. }) => "mcp",
                _ => "rest",
            };
            e.action = Some(action_info(transport, d.action, true));
            e.detail = serde_json::to_value(d).ok();
            vec![e]
        }
        ActionEvent::Delegation(d) => {
            let mut e = AuditEntry::new(RecordKind::Delegation, Phase::Event, agent(d.agent_id));
            e.trace = d.traceparent.and_then(|t| trace_of(t, None));
            e.action = Some(sidecar_action());
            e.detail = serde_json::to_value(d).ok();
            vec![e]
        }
        // Dropped MCP messages carry no call (the log and metrics keep them).
        ActionEvent::McpMessageDropped(_) => Vec::new(),
    }
}

fn sidecar_action() -> ActionInfo {
    ActionInfo {
        kind: ActionType::Sidecar,
        tool: None,
        name: None,
        target: None,
        attributes: None,
    }
}

/// A traceparent's trace id and span id (the span of the gateway's hop),
/// and the agent's span as its parent when the agent sent one.
fn trace_of(traceparent: &str, caller_span: Option<&str>) -> Option<TraceContext> {
    let t = trace::TraceContext::parse(traceparent)?;
    let span: String = t.parent_id.iter().map(|b| format!("{b:02x}")).collect();
    Some(TraceContext {
        trace_id: t.trace_id_hex(),
        span_id: span,
        parent_span_id: caller_span.map(str::to_string),
    })
}

fn action_info(transport: &str, action: &Action, attributes: bool) -> ActionInfo {
    let target = action.target.as_ref().map(|t| match t {
        policy::ActionTarget::Http { host, method, path } => ActionTarget {
            method: Some(method.clone()),
            host: Some(host.clone()),
            path: Some(path.clone()),
            ..ActionTarget::default()
        },
        policy::ActionTarget::Mcp { server, tool } => ActionTarget {
            host: Some(server.clone()),
            mcp_tool: Some(tool.clone()),
            ..ActionTarget::default()
        },
    });
    ActionInfo {
        kind: if transport == "mcp" {
            ActionType::Mcp
        } else {
            ActionType::Rest
        },
        tool: action.tool.clone(),
        name: action.action.clone(),
        target,
        attributes: if attributes {
            serde_json::to_value(&action.attributes)
                .ok()
                .filter(|v| v.as_object().is_none_or(|o| !o.is_empty()))
        } else {
            None
        },
    }
}

fn policy_result(d: &Decision) -> PolicyResult {
    PolicyResult {
        tier: (d.tier as u8).min(4),
        deny: d.tier == Tier::Deny,
        rules: d.rules.iter().map(|r| r.id.to_string()).collect(),
        version: d.policy_version.hash.to_string(),
        label: Some(d.policy_version.label.to_string()).filter(|l| !l.is_empty()),
        reason: Some(d.reason.clone()).filter(|r| !r.is_empty()),
    }
}

fn millis(t: UnixMillis) -> Timestamp {
    Timestamp(t.0 as i64 * 1_000_000)
}

/// A finished call: its outcome, and what it declared or caused.
fn tool_call(agent: AgentIdentity, c: &ToolCallEvent) -> Vec<AuditEntry> {
    let mut e = AuditEntry::new(RecordKind::ToolCall, Phase::Outcome, agent.clone());
    e.trace = trace_of(&c.traceparent, c.caller_span.as_deref());
    e.action = Some(action_info(c.transport, &c.action, true));
    e.policy = Some(policy_result(&c.decision));
    if c.approval_id.is_some() || c.compensation_id.is_some() {
        e.oversight = Some(Oversight {
            approval_id: c.approval_id.clone(),
            compensation_id: c.compensation_id.clone(),
            ..Oversight::default()
        });
    }
    let status = match c.outcome {
        CallOutcome::Forwarded if c.upstream_status.is_some_and(|s| s >= 400) => {
            OutcomeStatus::Failure
        }
        CallOutcome::Forwarded => OutcomeStatus::Success,
        CallOutcome::Refused => OutcomeStatus::Refused,
        CallOutcome::UpstreamFailed => OutcomeStatus::Failure,
    };
    e.outcome = Some(Outcome {
        status,
        upstream_status: c.upstream_status,
        bytes_in: None,
        bytes_out: None,
        latency_us: Some(c.duration_us),
        error: c.reason.clone(),
    });
    let mut out = vec![e];
    if let Some(comp) = &c.compensation {
        let mut d = AuditEntry::new(
            RecordKind::CompensationDeclared,
            Phase::Event,
            agent.clone(),
        );
        d.trace = trace_of(&c.traceparent, c.caller_span.as_deref());
        d.action = Some(action_info(c.transport, &c.action, false));
        d.oversight = Some(Oversight {
            compensation_id: Some(comp.id.clone()),
            ..Oversight::default()
        });
        d.detail = Some(json!({
            "compensation": comp.compensation,
            "until": millis(comp.until).to_rfc3339(),
        }));
        out.push(d);
    }
    if c.halted() && c.decision.quarantine {
        let mut q = AuditEntry::new(RecordKind::Quarantine, Phase::Event, agent);
        q.trace = trace_of(&c.traceparent, c.caller_span.as_deref());
        q.action = Some(action_info(c.transport, &c.action, false));
        q.policy = Some(policy_result(&c.decision));
        q.detail = Some(json!({"reason": c.decision.reason}));
        out.push(q);
    }
    out
}

fn refused(error: impl Into<String>) -> Outcome {
    Outcome {
        status: OutcomeStatus::Refused,
        upstream_status: None,
        bytes_in: None,
        bytes_out: None,
        latency_us: None,
        error: Some(error.into()),
    }
}

fn kernel_deny(agent: AgentIdentity, r: &DenyRecord) -> AuditEntry {
    let mut e = AuditEntry::new(RecordKind::KernelDeny, Phase::Event, agent);
    e.action = Some(ActionInfo {
        kind: ActionType::Connect,
        tool: None,
        name: Some(r.hook.to_string()),
        target: r.destination.map(|d| ActionTarget {
            address: Some(d.ip().to_string()),
            port: Some(d.port()),
            ..ActionTarget::default()
        }),
        attributes: None,
    });
    e.outcome = Some(refused(r.reason));
    e.detail = Some(json!({
        "hook": r.hook,
        "reason": r.reason,
        "pid": r.pid,
        "uid": r.uid,
        "comm": r.comm,
        "protocol": r.protocol,
        "cgroup_id": r.cgroup_id,
    }));
    e
}

/// Refusals only: an allowed answer is the resolver's business (its log
/// and metrics), not an action of the agent.
fn dns(agent: AgentIdentity, d: &DnsEvent) -> Option<AuditEntry> {
    if !matches!(
        d.decision,
        DnsDecision::Refused | DnsDecision::RebindingDropped | DnsDecision::Malformed
    ) {
        return None;
    }
    let mut e = AuditEntry::new(RecordKind::DnsRefused, Phase::Event, agent);
    e.action = Some(ActionInfo {
        kind: ActionType::Dns,
        tool: None,
        name: d.qtype.clone(),
        target: Some(ActionTarget {
            host: d.qname.clone(),
            ..ActionTarget::default()
        }),
        attributes: None,
    });
    let reason = d
        .reason
        .map(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.and_then(|v| v.as_str().map(str::to_string)));
    e.outcome =
        Some(refused(reason.unwrap_or_else(|| {
            format!("{:?}", d.decision).to_lowercase()
        })));
    e.detail = serde_json::to_value(d).ok();
    Some(e)
}

fn proxy(agent: AgentIdentity, p: &ProxyEvent) -> AuditEntry {
    let (kind, status) = match p.decision {
        ConnectionOutcome::Refused => (RecordKind::ProxyRefused, OutcomeStatus::Refused),
        ConnectionOutcome::Allowed => (RecordKind::ProxyConnection, OutcomeStatus::Success),
        ConnectionOutcome::Failed => (RecordKind::ProxyConnection, OutcomeStatus::Failure),
    };
    let mut e = AuditEntry::new(kind, Phase::Event, agent);
    e.action = Some(ActionInfo {
        kind: ActionType::Proxy,
        tool: None,
        name: None,
        target: Some(ActionTarget {
            host: p.host.clone(),
            port: Some(p.port),
            address: p.upstream.map(|u| u.ip().to_string()),
            ..ActionTarget::default()
        }),
        attributes: None,
    });
    e.outcome = Some(Outcome {
        status,
        upstream_status: None,
        bytes_in: Some(p.bytes_up),
        bytes_out: Some(p.bytes_down),
        latency_us: Some(p.duration_us),
        error: p.reason.clone(),
    });
    e.detail = serde_json::to_value(p).ok();
    e
}

fn approval(agent: AgentIdentity, a: ApprovalEvent<'_>) -> Option<AuditEntry> {
    let p: &PendingApproval = a.approval;
    let (kind, oversight) = match (a.step, &p.state) {
        (ApprovalStep::Requested, _) => (RecordKind::ApprovalRequested, Oversight::default()),
        (ApprovalStep::Decided, ApprovalState::Approved(d)) => (
            RecordKind::ApprovalDecided,
            Oversight {
                approver: Some(d.by.clone()),
                decision: Some(ApproverVerdict::Approved),
                reason: Some(d.reason.clone()),
                decided_at: Some(millis(d.at)),
                ..Oversight::default()
            },
        ),
        (ApprovalStep::Decided, ApprovalState::Denied(d)) => (
            RecordKind::ApprovalDecided,
            Oversight {
                approver: Some(d.by.clone()),
                decision: Some(ApproverVerdict::Denied),
                reason: Some(d.reason.clone()),
                decided_at: Some(millis(d.at)),
                ..Oversight::default()
            },
        ),
        (ApprovalStep::Decided, ApprovalState::Expired { at }) => (
            RecordKind::ApprovalExpired,
            Oversight {
                decision: Some(ApproverVerdict::Expired),
                decided_at: Some(millis(*at)),
                ..Oversight::default()
            },
        ),
        (ApprovalStep::Decided, ApprovalState::Cancelled { at, reason }) => (
            RecordKind::ApprovalCancelled,
            Oversight {
                decision: Some(ApproverVerdict::Cancelled),
                reason: Some(reason.clone()),
                decided_at: Some(millis(*at)),
                ..Oversight::default()
            },
        ),
        (ApprovalStep::Chain, _) => match a.chain? {
            ChainStep::PartiallyApproved { approver, .. } => (
                RecordKind::ApprovalPartiallyApproved,
                Oversight {
                    approver: Some((*approver).to_string()),
                    decision: Some(ApproverVerdict::Approved),
                    ..Oversight::default()
                },
            ),
            ChainStep::Escalated { .. } => (RecordKind::ApprovalEscalated, Oversight::default()),
            ChainStep::Refused {
                approver, message, ..
            } => (
                RecordKind::ApprovalDecisionRefused,
                Oversight {
                    approver: Some((*approver).to_string()),
                    reason: Some(message.clone()),
                    ..Oversight::default()
                },
            ),
        },
        (ApprovalStep::Decided, _) => return None,
    };
    let mut e = AuditEntry::new(kind, Phase::Event, agent);
    e.action = Some(ActionInfo {
        kind: if p.action.target.starts_with("mcp://") {
            ActionType::Mcp
        } else {
            ActionType::Rest
        },
        tool: Some(p.action.tool.clone()),
        name: Some(p.action.action.clone()),
        target: None,
        attributes: None,
    });
    e.policy = Some(PolicyResult {
        tier: (p.tier as u8).min(4),
        deny: false,
        rules: p.rule_ids.clone(),
        version: p.policy_version.clone(),
        label: None,
        reason: Some(p.reason.clone()).filter(|r| !r.is_empty()),
    });
    e.oversight = Some(Oversight {
        approval_id: Some(p.id.to_string()),
        requested_at: Some(millis(p.created_at)),
        ..oversight
    });
    // The target as approvers see it, and the SLA; never the held input.
    let mut detail = json!({
        "target": p.action.target,
        "sla_deadline": millis(p.sla_deadline).to_rfc3339(),
    });
    if let Some(chain) = &p.chain {
        detail["chain"] = json!({
            "name": chain.name,
            "required_approvals": chain.required_approvals,
            "approvals": chain.approvals,
            "first_eligible_step": chain.first_eligible,
            "eligible_until_step": chain.escalated_to,
        });
    }
    if let Some(step) = a.chain {
        detail["chain_step"] = json!(step);
    }
    e.detail = Some(detail);
    Some(e)
}

fn policy_event(agent: AgentIdentity, p: PolicyEvent<'_>) -> AuditEntry {
    let kind = match p.result {
        "loaded" => RecordKind::PolicyLoaded,
        "refused" | "failure" => RecordKind::PolicyReloadRefused,
        "fixtures_failed" => RecordKind::PolicyFixturesFailed,
        _ => RecordKind::PolicyReloaded,
    };
    let mut e = AuditEntry::new(kind, Phase::Event, agent);
    e.action = Some(sidecar_action());
    let mut detail = json!({"result": p.result});
    if let Some(v) = p.version {
        detail["version"] = Value::from(v.hash.to_string());
        detail["label"] = Value::from(v.label.to_string());
    }
    if let Some(r) = p.reason {
        detail["reason"] = Value::from(r);
    }
    e.detail = Some(detail);
    e
}
