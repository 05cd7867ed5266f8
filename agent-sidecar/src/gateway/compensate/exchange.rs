//! One compensating request: decided by the policy in force like any call,
//! then sent to the tool host with the tool's credential and its answer
//! read.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{
    entries::{Compensable, Compensations},
    error::CompensationError,
};
use crate::{
    gateway::{forward::Upstream, mcp::is_event_stream},
    policy::{
        AgentIdentity, CompiledPolicySet, McpCall, PolicyStore, Request as PolicyRequest, Tier,
    },
};

/// What triggering a compensation needs: the open entries, the policy in
/// force (the compensating call is decided like any other), the agent and
/// the upstream.
pub(crate) struct Trigger<'a> {
    pub(crate) compensations: &'a Compensations,
    pub(crate) policy: &'a PolicyStore,
    pub(crate) identity: &'a AgentIdentity,
    pub(crate) upstream: &'a Upstream,
}

/// Decides the compensating `request` like any call: it must be recognised
/// as exactly the declared compensating action (a value that would turn
/// the undo into another route is refused), and a policy that halts it
/// (tier 4) stops it. A `deny` or tier 3 does not: `deny` keeps the agent
/// from calling the action itself, and the owner's trigger is the human
/// decision tier 3 asks for.
pub(super) fn decide(
    gw: &Trigger<'_>,
    policy: &CompiledPolicySet,
    entry: &Compensable,
    request: &PolicyRequest,
) -> Result<(), CompensationError> {
    let action = policy.action_from_request(gw.identity.clone(), request);
    let recognised = (action.tool.as_deref(), action.action.as_deref());
    if recognised != (Some(entry.tool.as_str()), Some(entry.compensation.as_str())) {
        return Err(CompensationError::Build(format!(
            "the compensating request is recognised as {}.{}, not the declared compensation {}.{}; nothing was sent",
            recognised.0.unwrap_or("(no tool)"),
            recognised.1.unwrap_or("(undeclared action)"),
            entry.tool,
            entry.compensation
        )));
    }
    let decision = policy.decide(&action);
    tracing::info!(id = %entry.id, tool = %entry.tool, action = %entry.compensation, tier = %decision.tier.as_str(), rules = ?decision.rules.iter().map(|r| &*r.id).collect::<Vec<_>>(), "compensation decided");
    if decision.tier == Tier::Halt {
        return Err(CompensationError::Refused(format!(
            "the policy in force halts the compensating call: {}",
            decision.reason
        )));
    }
    Ok(())
}

/// Decides the compensating `tools/call` of MCP tool `name` with
/// `arguments` (see [`decide`]).
pub(super) fn decide_mcp(
    gw: &Trigger<'_>,
    policy: &CompiledPolicySet,
    entry: &Compensable,
    endpoint: &str,
    name: &str,
    arguments: &serde_json::Map<String, Value>,
) -> Result<(), CompensationError> {
    let server = policy
        .inspected(&entry.host)
        .and_then(|h| h.mcp.iter().find(|m| m.path == endpoint))
        .map(|m| m.server.clone())
        .ok_or_else(|| CompensationError::Build("the MCP endpoint is no longer declared".into()))?;
    let request = PolicyRequest::Mcp(McpCall {
        server,
        tool: name.to_string(),
        arguments: Value::Object(arguments.clone()),
    });
    decide(gw, policy, entry, &request)
}

/// Sends one request of a compensation to `entry`'s tool host with the
/// tool's credential and reads the answer (within the upstream timeout and
/// the body limit): in full, or for an SSE answer of an MCP server, until
/// the responses to the JSON-RPC ids in `awaited` are in. A request that
/// cannot be built is [`CompensationError::Build`]; a failure to send or
/// to read the answer is `failed(what went wrong)`.
pub(super) async fn exchange(
    gw: &Trigger<'_>,
    policy: &CompiledPolicySet,
    entry: &Compensable,
    req: hyper::http::request::Builder,
    body: Bytes,
    awaited: &[Value],
    failed: impl FnOnce(String) -> CompensationError,
) -> Result<(StatusCode, HeaderMap, Bytes), CompensationError> {
    let (parts, ()) = req
        .body(())
        .map_err(|e| CompensationError::Build(e.to_string()))?
        .into_parts();
    let body = Full::new(body).map_err(|never| match never {}).boxed();
    let tool = Some(entry.tool.as_str());
    let resp = match gw
        .upstream
        .send(policy, &entry.host, entry.port, tool, parts, body)
        .await
    {
        Ok(resp) => resp,
        Err(r) => return Err(failed(r.message)),
    };
    let (parts, body) = resp.into_parts();
    let event_stream = !awaited.is_empty() && is_event_stream(&parts.headers);
    // The unread rest of a stream left open is dropped with it.
    match gw.upstream.read_answer(body, event_stream, awaited).await {
        Ok(read) => Ok((parts.status, parts.headers, read.head)),
        Err(e) => Err(failed(e.to_string())),
    }
}
