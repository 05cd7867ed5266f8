//! GET (the server-to-client event stream) and DELETE (the end of a
//! session) on an MCP endpoint: transport, not tool calls. They carry no
//! JSON-RPC: a body on them (by `Content-Length`, chunked or HTTP/2 DATA)
//! is refused, since a server that dispatches JSON-RPC whatever the method
//! would run a `tools/call` nobody decided. Other methods than POST, GET
//! and DELETE are refused.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::{Method, Response, StatusCode, body::Incoming, header, http::request::Parts};

use super::{
    AgentBody,
    body::{close_h1, read_body},
    conn_info::ConnInfo,
    mcp,
    mcp_peer::{ServerMessages, govern},
    refusal::Refusal,
    state::Shared,
    trace,
};
use crate::policy::{CompiledPolicySet, gateway::McpEndpoint};

/// Serves a non-POST request to an MCP endpoint.
pub(crate) async fn handle(
    gw: &Arc<Shared>,
    conn: &ConnInfo,
    policy: &Arc<CompiledPolicySet>,
    ep: &McpEndpoint,
    mut parts: Parts,
    body: Incoming,
) -> Response<AgentBody> {
    // Read (within the limits) before answering, so that an HTTP/2
    // client gets the refusal rather than a reset stream; the headers may
    // announce no body and DATA still follow.
    let read = read_body(&gw.limits, body).await;
    if let Err(r) = check_transport(&parts) {
        return refuse(ep, &parts, r);
    }
    match read {
        Ok(b) if b.is_empty() => {}
        Ok(_) => return refuse(ep, &parts, body_refusal(&parts.method)),
        Err(r) => return refuse(ep, &parts, r),
    }
    trace::propagate(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    let session = parts
        .headers
        .get(mcp::SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Empty::new().map_err(|never| match never {}).boxed();
    match gw
        .upstream
        .send(policy, &conn.host, conn.port, Some(&ep.tool), parts, body)
        .await
    {
        // No request of the agent is awaited on this stream: responses on
        // it are dropped, server requests decided.
        Ok(resp) => {
            let messages = ServerMessages::new(gw, conn, ep, session, &[]);
            govern(resp, messages).map(|b| b.boxed())
        }
        Err(r) => r.response(),
    }
}

/// The method and framing headers of a transport request.
fn check_transport(parts: &Parts) -> Result<(), Refusal> {
    if parts.method != Method::GET && parts.method != Method::DELETE {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "an MCP endpoint takes POST (JSON-RPC), GET (the server's event stream) and DELETE (end of session), not {}",
                parts.method
            ),
        ));
    }
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    if length || parts.headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(body_refusal(&parts.method));
    }
    Ok(())
}

fn body_refusal(method: &Method) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "body_on_mcp_transport",
        format!(
            "a {method} to an MCP endpoint carries no body; send JSON-RPC messages with POST, where each tools/call is decided"
        ),
    )
}

fn refuse(ep: &McpEndpoint, parts: &Parts, r: Refusal) -> Response<AgentBody> {
    tracing::warn!(
        target: "agent_sidecar::gateway",
        server = %ep.server,
        method = %parts.method,
        reason = r.reason,
        "MCP transport request refused"
    );
    close_h1(r.response(), parts.version)
}
