//! The MCP path: JSON-RPC POSTed to a declared MCP endpoint. Every
//! `tools/call` (alone or in a batch) is an action decided on its own;
//! refused elements are answered by the gateway as JSON-RPC errors and the
//! rest is forwarded; `tools/list` answers are filtered to the tools the
//! agent may call at all.

use std::{collections::HashMap, sync::Arc, time::Instant};

use bytes::Bytes;
use futures_util::{StreamExt, future::join_all, stream};
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::{
    Response, StatusCode,
    body::{Frame, Incoming},
    header::{self, HeaderValue},
    http::request::Parts,
};
use serde_json::Value;

use super::{
    AgentBody, binding,
    body::{IDEMPOTENCY_KEY, close_h1, read_body},
    compensate::Original,
    conn_info::ConnInfo,
    mcp, mcp_peer,
    record::CallRecord,
    refusal::{bytes_response, full, json_response},
    state::Shared,
    tiers::{self, TierAction},
    tool_names, trace,
};
use crate::policy::{
    CompiledPolicySet, McpCall, Request as PolicyRequest, Tier,
    gateway::{Compensation, McpEndpoint},
};
use crate::redaction::InputView;

/// A decided `tools/call` of the request.
struct Call {
    index: usize,
    action: crate::policy::Action,
    decision: crate::policy::Decision,
    key: Option<String>,
    arguments: Value,
    held: binding::Held,
    /// The arguments as the policy's redaction keeps them.
    view: Arc<InputView>,
}

/// A forwarded `tools/call`, until its event is recorded.
struct Forwarded {
    id: Option<Value>,
    arguments: Value,
    /// The call as approvers and the owner see it.
    shown: Value,
    /// The arguments as the policy's redaction keeps them.
    view: Arc<InputView>,
    action: crate::policy::Action,
    decision: crate::policy::Decision,
    record: CallRecord,
}

/// A POST to an MCP endpoint.
pub(crate) async fn handle(
    gw: &Arc<Shared>,
    conn: &ConnInfo,
    policy: &Arc<CompiledPolicySet>,
    ep: &McpEndpoint,
    mut parts: Parts,
    body: Incoming,
) -> Response<AgentBody> {
    let started = Instant::now();
    let bytes = match read_body(&gw.limits, body).await {
        Ok(b) => b,
        Err(r) => return close_h1(json_response(r.status, &r.rpc(None)), parts.version),
    };
    let envelope = match mcp::parse_body(&bytes) {
        Ok(e) => e,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &mcp::error_object(None, e.code(), &e.to_string(), Value::Null),
            );
        }
    };
    if let Err(e) = routing_headers_agree(&parts.headers, &envelope) {
        return close_h1(
            json_response(
                StatusCode::BAD_REQUEST,
                &mcp::error_object(None, e.code(), &e.to_string(), Value::Null),
            ),
            parts.version,
        );
    }
    let session = header_str(&parts, mcp::SESSION_HEADER);
    let header_key = header_str(&parts, IDEMPOTENCY_KEY);
    let caller = trace::caller_span(&parts.headers);
    let traceparent = trace::propagate(&mut parts.headers).to_string();
    let mut list_ids = Vec::new();
    let mut refused: Vec<(usize, Value)> = Vec::new();
    let mut calls = Vec::new();
    for (index, item) in envelope.items.iter().enumerate() {
        match item.tool_call() {
            Err(e) => refused.push((
                index,
                mcp::error_object(item.id(), e.code(), &e.to_string(), Value::Null),
            )),
            Ok(Some(call)) => {
                // The agent asking for a grant: answered here.
                if call.name == super::grant_request::REQUEST_ACCESS
                    && let Some(g) = gw.grants.as_ref().filter(|g| g.store().is_some())
                {
                    let answer = super::grant_request::answer(
                        g,
                        &gw.identity.id,
                        item.id(),
                        &call.arguments,
                    );
                    refused.push((index, answer));
                    continue;
                }
                if let Some(r) = tool_names::refusal(policy, &ep.server, &call.name) {
                    refused.push((index, r.rpc(item.id())));
                    continue;
                }
                let request = PolicyRequest::Mcp(McpCall {
                    server: ep.server.clone(),
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                });
                let action = policy.action_from_request(gw.identity.clone(), &request);
                let decided = policy.decide(&action);
                if let Some(shadow) = &gw.shadow {
                    shadow.observe(&action, &decided, Some(&traceparent));
                }
                let decided = match &gw.grants {
                    Some(g) => g.apply(&action, decided),
                    None => decided,
                };
                let decision = gw.oversight.floor.apply(decided);
                let decision = match &gw.quotas {
                    Some(q) => q.apply(&action, decision, bytes.len() as u64).await,
                    None => decision,
                };
                let view = Arc::new(gw.inputs.view(policy, &action, Some(&call.arguments), &[]));
                let held = binding::mcp(
                    &action,
                    &parts,
                    &bytes,
                    &call.name,
                    gw.inputs.shown(policy, &action, &view),
                );
                let key = header_key
                    .as_ref()
                    .filter(|_| !envelope.batch)
                    .map(|k| format!("mcp:{}:{k}", ep.server))
                    .or_else(|| {
                        item.id()
                            .and_then(|id| mcp::idempotency_key(session.as_deref(), id))
                    });
                calls.push(Call {
                    index,
                    action,
                    decision,
                    key,
                    arguments: call.arguments,
                    held,
                    view,
                });
            }
            Ok(None) => {
                if let Some(id) = item.id().filter(|_| item.method() == Some("tools/list")) {
                    list_ids.push(id.clone());
                }
            }
        }
    }
    // Held calls of a batch wait for their approvers side by side; a
    // refused call is recorded (and its halt alerted) as soon as it is
    // refused, not when the batch's last approver answers.
    let verdicts = join_all(calls.into_iter().map(|call| {
        let traceparent = traceparent.clone();
        let caller = caller.clone();
        async move {
            let mut record = CallRecord::new(traceparent, caller, started);
            record.input(call.view.clone());
            // A call of a delegated task stays within the delegation.
            if let Err(r) = gw.a2a.narrow(policy, &call.action, record.traceparent()) {
                record.refused(&r);
                record.finish(&gw.recorder, call.action, call.decision);
                return Err((call.index, r));
            }
            if let Err(r) = gw
                .journal
                .attempt(
                    "mcp",
                    &call.action,
                    &call.decision,
                    record.traceparent(),
                    record.caller_span(),
                    Some(&call.view),
                )
                .await
            {
                record.refused(&r);
                record.finish(&gw.recorder, call.action, call.decision);
                return Err((call.index, r));
            }
            let verdict = tiers::enforce(
                &gw.oversight,
                &call.action,
                &call.decision,
                call.key.clone(),
                Some(call.held.clone()),
            )
            .await;
            match verdict {
                TierAction::Refuse(r) => {
                    record.refused(&r);
                    record.finish(&gw.recorder, call.action, call.decision);
                    Err((call.index, r))
                }
                TierAction::Forward(approved) => Ok((call, approved, record)),
            }
        }
    }))
    .await;
    let mut tokens = Vec::new();
    let mut forwarded = Vec::new();
    for verdict in verdicts {
        let (call, approved, mut record) = match verdict {
            Ok(decided) => decided,
            Err((index, r)) => {
                refused.push((index, r.rpc(envelope.items[index].id())));
                continue;
            }
        };
        // Approved calls are claimed now, when every held call of the
        // request is decided, right before the forward.
        if let Some(id) = approved {
            match tiers::claim(&gw.oversight, &call.action, &call.decision, &id).await {
                Ok(token) => {
                    tokens.push(token);
                    record.approved(id.to_string());
                }
                Err(r) => {
                    refused.push((call.index, r.rpc(envelope.items[call.index].id())));
                    record.refused(&r);
                    record.finish(&gw.recorder, call.action, call.decision);
                    continue;
                }
            }
        }
        forwarded.push(Forwarded {
            id: envelope.items[call.index].id().cloned(),
            arguments: call.arguments,
            shown: call.held.request,
            view: call.view,
            action: call.action,
            decision: call.decision,
            record,
        });
    }
    refused.sort_by_key(|(i, _)| *i);
    let mut dropped: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
    dropped.extend(mcp_peer::unexpected_responses(
        gw,
        ep,
        session.as_deref(),
        &envelope,
    ));
    let errors: Vec<Value> = refused.into_iter().map(|(_, v)| v).collect();
    let body = if dropped.is_empty() {
        Some(bytes.to_vec())
    } else {
        mcp::without(&envelope, &dropped)
    };
    let Some(body) = body else {
        if errors.is_empty() {
            // Only responses nobody awaited: nothing to answer.
            return bytes_response(StatusCode::ACCEPTED, "application/json", Bytes::new());
        }
        // Nothing left to forward: the gateway answers alone.
        return bytes_response(
            StatusCode::OK,
            "application/json",
            Bytes::from(mcp::encode(envelope.batch, &errors)),
        );
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    let result = gw
        .upstream
        .send(policy, &conn.host, conn.port, Some(&ep.tool), parts, body)
        .await;
    let status = match &result {
        Ok(resp) => resp.status().as_u16(),
        Err(_) => 0,
    };
    for token in tokens {
        if let Err(e) = gw
            .oversight
            .approvals
            .record_upstream_status(token, status)
            .await
        {
            tracing::error!(error = %e, "cannot record the upstream status of an approved call");
        }
    }
    let mut compensable = Vec::new();
    for mut f in forwarded {
        match &result {
            Ok(_) => {
                f.record.forwarded(status);
                if f.decision.tier == Tier::Supervised {
                    if let Some(comp) = compensation_of(policy, &f.action) {
                        // Registered once the answer is read (its result
                        // feeds the compensating call).
                        compensable.push((f, comp));
                        continue;
                    }
                    f.record.shown(f.shown);
                }
            }
            Err(r) => f.record.upstream_failed(r),
        }
        f.record.finish(&gw.recorder, f.action, f.decision);
    }
    let resp = match result {
        Ok(resp) => resp,
        Err(r) => return json_response(r.status, &r.rpc(None)),
    };
    let awaited: Vec<Value> = envelope
        .items
        .iter()
        .enumerate()
        .filter(|(i, m)| m.is_request() && !dropped.contains(i))
        .filter_map(|(_, m)| m.id().cloned())
        .collect();
    let resp = mcp_peer::govern(
        resp,
        mcp_peer::ServerMessages::new(gw, conn, ep, session, &awaited),
    );
    let may_ask = gw.grants.as_ref().is_some_and(|g| g.store().is_some());
    // The sidecar's `request_access` is listed exactly when the agent may
    // ask for grants (an undeclared name would otherwise pass as tier 3).
    let filter = |name: &str| {
        if name == super::grant_request::REQUEST_ACCESS {
            return may_ask;
        }
        policy.may_call_mcp(&gw.identity, &ep.server, name)
    };
    let resp = shape(gw, resp, &list_ids, errors, &filter).await;
    if compensable.is_empty() {
        return resp;
    }
    remember(gw, policy, conn, &ep.path, resp, compensable).await
}

/// The declared compensation of a supervised call's action, if any.
fn compensation_of(
    policy: &CompiledPolicySet,
    action: &crate::policy::Action,
) -> Option<Compensation> {
    let (tool, act) = (action.tool.as_deref()?, action.action.as_deref()?);
    policy.compensation(tool, act).cloned()
}

/// Reads the answer, registers each compensable call with its arguments
/// and the `structuredContent` of its result, tells the owner, emits the
/// calls' events and gives the agent the answer unchanged. A call the
/// server answered with a JSON-RPC error did not run: it gets a notice
/// without a compensation.
async fn remember(
    gw: &Shared,
    policy: &CompiledPolicySet,
    conn: &ConnInfo,
    endpoint: &str,
    resp: Response<AgentBody>,
    calls: Vec<(Forwarded, Compensation)>,
) -> Response<AgentBody> {
    let (parts, body) = resp.into_parts();
    let ids: Vec<Value> = calls.iter().filter_map(|(f, _)| f.id.clone()).collect();
    let answer = gw
        .upstream
        .read_answer(body, mcp::is_event_stream(&parts.headers), &ids)
        .await;
    let messages = match &answer {
        Ok(read) => mcp::answer_messages(&parts.headers, &read.head),
        Err(_) => Vec::new(),
    };
    for (mut f, comp) in calls {
        let response = f.id.as_ref().and_then(|id| mcp::response_to(&messages, id));
        if response.is_some_and(|r| r.get("error").is_some()) {
            f.record.shown(f.shown);
            f.record.finish(&gw.recorder, f.action, f.decision);
            continue;
        }
        let result = response
            .and_then(|r| r.pointer("/result/structuredContent"))
            .filter(|v| v.is_object())
            .cloned();
        let entry = gw.compensations.register(
            policy,
            f.action.tool.as_deref().unwrap_or_default(),
            f.action.action.as_deref().unwrap_or_default(),
            &comp,
            &conn.host,
            conn.port,
            Original {
                path_params: HashMap::new(),
                body: Some(f.arguments),
                response: result,
                endpoint: Some(endpoint.to_owned()),
            },
            Some(&f.view),
        );
        f.record.shown(f.shown);
        f.record.compensable(entry);
        f.record.finish(&gw.recorder, f.action, f.decision);
    }
    match answer {
        Ok(read) => Response::from_parts(parts, then_rest(read.head, read.rest)),
        Err(e) => unreadable(&e),
    }
}

/// The agent's body: `head`, then whatever of the upstream's body is left.
fn then_rest<B>(head: Bytes, rest: Option<B>) -> AgentBody
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + Sync + 'static,
{
    let Some(rest) = rest else {
        return full(head);
    };
    let frames = stream::once(async move { Ok(Frame::data(head)) }).chain(BodyStream::new(rest));
    BodyExt::boxed(StreamBody::new(frames))
}

/// The answer to the agent when the upstream's answer cannot be read.
fn unreadable(e: &mcp::AnswerError) -> Response<AgentBody> {
    let message = format!("upstream answer unreadable: {e}");
    let body = mcp::error_object(None, mcp::INTERNAL_ERROR, &message, Value::Null);
    json_response(StatusCode::BAD_GATEWAY, &body)
}

/// Filters `tools/list` answers and adds the gateway's errors to the
/// upstream's answer (JSON or SSE).
async fn shape(
    gw: &Shared,
    resp: Response<mcp_peer::Governed>,
    list_ids: &[Value],
    errors: Vec<Value>,
    allowed: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Response<AgentBody> {
    if list_ids.is_empty() && errors.is_empty() {
        return resp.map(|b| b.boxed());
    }
    let sse = mcp::is_event_stream(resp.headers());
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if sse && list_ids.is_empty() {
        // Stream the upstream's events after the gateway's.
        return Response::from_parts(parts, then_rest(mcp::sse_events(&errors), Some(body)));
    }
    let read = match gw.upstream.read_answer(body, sse, list_ids).await {
        Ok(read) => read,
        Err(e) => return unreadable(&e),
    };
    let bytes = read.head;
    let shaped = if sse {
        // Only complete events are filtered: a later event the read
        // stopped in (perhaps inside a character) follows as it came.
        // Governed answers come without the stream's byte order mark;
        // drop one all the same, since the refusals go first.
        let bytes = &bytes[mcp::strip_stream_bom(&bytes).unwrap_or(0)..];
        let (events, unfinished) = bytes.split_at(mcp::complete_prefix_len(bytes));
        mcp::filter_sse_tools_list(events, list_ids, allowed).map(|filtered| {
            let mut out = mcp::sse_events(&errors).to_vec();
            out.extend_from_slice(&filtered);
            out.extend_from_slice(unfinished);
            out
        })
    } else {
        let filtered = match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut v) => {
                filter_json(&mut v, list_ids, allowed);
                serde_json::to_vec(&v).unwrap_or_default()
            }
            Err(_) => bytes.to_vec(),
        };
        mcp::merge_json(&filtered, &errors)
    };
    let out = match shaped {
        Ok(out) => out,
        Err(e) => {
            let message = format!("upstream answer unreadable: {e}");
            let body = mcp::error_object(None, e.code(), &message, Value::Null);
            return json_response(StatusCode::BAD_GATEWAY, &body);
        }
    };
    if !sse && parts.status == StatusCode::ACCEPTED && !errors.is_empty() {
        // Only notifications were forwarded: the gateway's errors are the
        // answer.
        parts.status = StatusCode::OK;
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Response::from_parts(parts, then_rest(Bytes::from(out), read.rest))
}

fn filter_json(v: &mut Value, ids: &[Value], allowed: &(dyn Fn(&str) -> bool + Send + Sync)) {
    let mut one = |m: &mut Value| {
        if m.get("id").is_some_and(|id| ids.contains(id)) {
            let changed = mcp::filter_tools_list(m, allowed);
            if changed > 0 {
                tracing::info!(
                    changed,
                    "tools/list filtered to the tools the agent may call"
                );
            }
        }
    };
    match v {
        Value::Array(items) => items.iter_mut().for_each(&mut one),
        other => one(other),
    }
}

fn header_str(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Headers that name the method and tool (`Mcp-Method`, `Mcp-Name`, sent
/// by newer MCP clients so that servers and proxies can route without
/// reading the body) must agree with the body the policy decides on:
/// otherwise a server routing on headers could run something else.
fn routing_headers_agree(
    headers: &hyper::HeaderMap,
    envelope: &mcp::Envelope,
) -> Result<(), mcp::McpError> {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let (method, name) = (get(MCP_METHOD_HEADER), get(MCP_NAME_HEADER));
    if method.is_none() && name.is_none() {
        return Ok(());
    }
    let mismatch = |what: &str| mcp::McpError::InvalidRequest {
        index: None,
        reason: format!(
            "the {what} header does not match the JSON-RPC body; send the same method and tool name in both"
        ),
    };
    let [item] = envelope.items.as_slice() else {
        return Err(mismatch("Mcp-Method/Mcp-Name (on a batch)"));
    };
    if method.is_some_and(|m| item.method() != Some(m)) {
        return Err(mismatch("Mcp-Method"));
    }
    if let Some(n) = name {
        let body_name = item.tool_call().ok().flatten().map(|c| c.name);
        let named = item
            .value()
            .get("params")
            .and_then(|p| p.get("name").or_else(|| p.get("uri")))
            .and_then(Value::as_str);
        if body_name.as_deref().or(named) != Some(n) {
            return Err(mismatch("Mcp-Name"));
        }
    }
    Ok(())
}

/// The method header of newer MCP clients.
const MCP_METHOD_HEADER: &str = "mcp-method";
/// The tool (or resource) name header of newer MCP clients.
const MCP_NAME_HEADER: &str = "mcp-name";

#[cfg(test)]
mod tests {
    use hyper::HeaderMap;

    use super::*;

    fn envelope(body: &str) -> mcp::Envelope {
        mcp::parse_body(body.as_bytes()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let call = envelope(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund","arguments":{}}}"#,
        );
        assert!(routing_headers_agree(&headers(&[]), &call).is_ok());
        assert!(
            routing_headers_agree(
                &headers(&[("mcp-method", "tools/call"), ("mcp-name", "refund")]),
                &call
            )
            .is_ok()
        );
        let e =
            routing_headers_agree(&headers(&[("mcp-name", "get_customer")]), &call).unwrap_err();
        assert_eq!(e.code(), mcp::INVALID_REQUEST);
        assert!(e.to_string().contains("Mcp-Name"), "{e}");
        assert!(routing_headers_agree(&headers(&[("mcp-method", "tools/list")]), &call).is_err());
        let batch = envelope(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
        );
        assert!(routing_headers_agree(&headers(&[("mcp-method", "ping")]), &batch).is_err());
        let list = envelope(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
        assert!(routing_headers_agree(&headers(&[("mcp-method", "tools/list")]), &list).is_ok());
    }
}
