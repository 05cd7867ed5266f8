//! One request on a terminated connection, top to bottom. Every call goes
//! through the same stages, in this order, each in its own file and each
//! given only the handles it needs:
//!
//! 1. **accept** ([`accept`](super::accept)): framing, the host the request
//!    names, the quarantine, the method, overrides and path;
//! 2. **recognise**: the REST route ([`rest`](super::rest)) or, on a
//!    declared MCP endpoint, each `tools/call` of the JSON-RPC body
//!    ([`mcp_call`](super::mcp_call)); MCP transport requests (GET, DELETE)
//!    carry no call ([`mcp_transport`](super::mcp_transport));
//! 3. **decide**: the compiled policy's tier, rules and version;
//! 4. **enforce the tier** ([`tiers`](super::tiers)): forward, hold for an
//!    approver, block, quarantine;
//! 5. **forward** ([`forward`](super::forward)): the sidecar's credential,
//!    the trace context, the address the sidecar resolved;
//! 6. **record** ([`record`](super::record)): one
//!    [`ToolCallEvent`](super::ToolCallEvent) per call, which the log,
//!    metrics, webhooks and audit trail consume.
//!
//! A call that quarantined the agent gets its refusal first; the kernel
//! quarantine follows when the answer has been handed to the connection.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Request, Response, body::Incoming};

use super::{
    AgentBody, accept::accept, conn_info::ConnInfo, mcp_call, mcp_transport, rest, state::Shared,
};

/// Longest wait between a quarantining refusal and the kernel quarantine
/// when the refusal's delivery is not observed.
const KERNEL_QUARANTINE_DELAY: Duration = Duration::from_secs(2);

/// Serves one request.
pub(crate) async fn handle(
    gw: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<AgentBody> {
    let resp = serve(&gw, &conn, req).await;
    let quarantine = &gw.oversight.quarantine;
    if !quarantine.kernel_pending() {
        return resp;
    }
    let switch = quarantine.clone();
    let fallback = quarantine.clone();
    tokio::spawn(async move {
        tokio::time::sleep(KERNEL_QUARANTINE_DELAY).await;
        fallback.apply_kernel();
    });
    resp.map(|body| OnDrop::new(body, move || switch.apply_kernel()).boxed())
}

async fn serve(
    gw: &Arc<Shared>,
    conn: &Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<AgentBody> {
    let (mut parts, body) = req.into_parts();
    let policy = gw.policy.current();
    if let Some(refused) = accept(
        &gw.identity,
        &gw.oversight.quarantine,
        &gw.recorder,
        conn,
        &policy,
        &mut parts,
    ) {
        return refused;
    }
    let mcp = policy
        .inspected(&conn.host)
        .and_then(|e| e.mcp.iter().find(|m| m.path == parts.uri.path()).cloned());
    match mcp {
        Some(endpoint) if parts.method == Method::POST => {
            mcp_call::handle(gw, conn, &policy, &endpoint, parts, body).await
        }
        Some(endpoint) => mcp_transport::handle(gw, conn, &policy, &endpoint, parts, body).await,
        None => rest::handle(gw, conn, &policy, parts, body).await,
    }
}

/// A body that runs `done` when it is dropped (after hyper wrote it, or
/// gave up on it).
struct OnDrop<F: FnOnce()> {
    body: AgentBody,
    done: Option<F>,
}

impl<F: FnOnce()> OnDrop<F> {
    fn new(body: AgentBody, done: F) -> Self {
        OnDrop {
            body,
            done: Some(done),
        }
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done();
        }
    }
}

impl<F: FnOnce() + Unpin> hyper::body::Body for OnDrop<F> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
