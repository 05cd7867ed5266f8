//! The agent asking for a just-in-time grant itself: every governed MCP
//! server lists one more tool, `request_access`, which the sidecar answers
//! (the server never sees it) by filing a grant request in the agent's
//! grant store, within the policy's `grantable:` bounds, for an approver
//! to decide. A REST refusal that a grant could lift says how to ask.

use serde_json::{Value, json};

use crate::grants::{GrantKind, GrantRequest, GrantsInForce};
use crate::policy::{Action, Tier};

/// The name of the tool the sidecar answers.
pub(crate) const REQUEST_ACCESS: &str = "request_access";

/// Its `tools/list` entry.
pub(crate) fn tool_definition() -> Value {
    json!({
        "name": REQUEST_ACCESS,
        "description": "Ask an approver for just-in-time access this agent's policy holds back: a tool, an action (tool.action), a tier ceiling (1-3) or an egress destination (IP:PORT), for a bounded time and a stated purpose. Answered by the agent's sidecar; the grant is in force only once an approver approves it.",
        "inputSchema": {
            "type": "object",
            "required": ["kind", "target", "purpose", "ttl_secs"],
            "properties": {
                "kind": {"type": "string", "enum": ["tool", "action", "tier_ceiling", "egress"]},
                "target": {"type": "string"},
                "purpose": {"type": "string", "minLength": 1},
                "ttl_secs": {"type": "integer", "minimum": 1}
            },
            "additionalProperties": false
        }
    })
}

fn kind_of(s: &str) -> Option<GrantKind> {
    match s {
        "tool" => Some(GrantKind::Tool),
        "action" => Some(GrantKind::Action),
        "tier_ceiling" => Some(GrantKind::TierCeiling),
        "egress" => Some(GrantKind::Egress),
        _ => None,
    }
}

fn tool_result(id: Option<&Value>, text: String, structured: Value, is_error: bool) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "result": {
            "content": [{"type": "text", "text": text}],
            "structuredContent": structured,
            "isError": is_error,
        }
    })
}

/// Answers a `request_access` call of agent `agent` (JSON-RPC response
/// for request `id`): the grant filed, or why not.
pub(crate) fn answer(
    grants: &GrantsInForce,
    agent: &str,
    id: Option<&Value>,
    args: &Value,
) -> Value {
    let Some(store) = grants.store() else {
        return tool_result(
            id,
            "no grant can be asked for: the policy's grantable: section allows this agent none"
                .into(),
            json!({"error": "not_grantable"}),
            true,
        );
    };
    let field = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    let Some(kind) = kind_of(field("kind")) else {
        return tool_result(
            id,
            "`kind` must be tool, action, tier_ceiling or egress".into(),
            json!({"error": "bad_arguments"}),
            true,
        );
    };
    let request = GrantRequest {
        agent: agent.to_string(),
        kind,
        target: field("target").to_string(),
        purpose: field("purpose").to_string(),
        ttl_secs: args.get("ttl_secs").and_then(Value::as_u64).unwrap_or(0),
        requested_by: agent.to_string(),
    };
    match store.request(request) {
        Ok(g) => tool_result(
            id,
            format!(
                "grant {} requested ({} {} for {} s): an approver must approve it before it is in force; retry the refused action after that",
                g.id,
                g.request.kind.as_str(),
                g.request.target,
                g.request.ttl_secs
            ),
            json!({"grant_id": g.id, "state": g.state.as_str()}),
            false,
        ),
        Err(e) => tool_result(
            id,
            format!("grant request refused: {e}"),
            json!({"error": "refused", "reason": e.to_string()}),
            true,
        ),
    }
}

/// How to ask for a grant that would lift a refusal of `action` decided at
/// `tier`, when the agent's bounds allow one; `None` otherwise (tier 4 and
/// deny are never liftable).
pub(crate) fn hint(grants: &GrantsInForce, action: &Action, tier: Tier) -> Option<Value> {
    if tier >= Tier::Halt {
        return None;
    }
    let bounds = grants.store()?.bounds();
    let tool = action.tool.as_deref()?;
    let qualified = action.action.as_deref().map(|a| format!("{tool}.{a}"));
    let candidates = [
        (GrantKind::Action, qualified),
        (GrantKind::Tool, Some(tool.to_string())),
    ];
    let (kind, target) = candidates.into_iter().find_map(|(k, t)| {
        let t = t?;
        (bounds.kinds.contains(&k) && bounds.targets.contains(&t)).then_some((k, t))
    })?;
    Some(json!({
        "kind": kind.as_str(),
        "target": target,
        "max_ttl_secs": bounds.max_ttl.as_secs(),
        "how": format!(
            "ask for a just-in-time grant: MCP tool `{REQUEST_ACCESS}` with kind `{}` and target `{target}`, or an operator: agent-sidecar grants request --agent {} --kind {} --target {target} --purpose WHY --ttl SECS --requested-by NAME",
            kind.as_str(),
            action.agent.id,
            kind.as_str()
        ),
    }))
}
