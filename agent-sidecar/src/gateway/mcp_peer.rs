//! MCP traffic that does not go from the agent's requests to the server's
//! answers: what the server sends on its own, and what the agent answers.
//!
//! Server to agent, on the answer to a POST and on the GET event stream
//! ([`govern`]):
//! - a response passes only when its id is one the agent asked in that
//!   POST and that is not answered yet; a response for another call's id,
//!   a second response to one id, or any response on the GET stream is
//!   dropped (counted and logged);
//! - a server-initiated request (`sampling/createMessage`,
//!   `elicitation/create`, `roots/list`...) passes only when the tool's
//!   `mcp.server_requests` lists its method; otherwise the gateway answers
//!   the server itself with a JSON-RPC error and the agent never sees it;
//! - notifications pass; a message that is none of these is dropped.
//!
//! Agent to server ([`unexpected_responses`]): a JSON-RPC response the
//! agent POSTs passes only when it answers a server request the gateway
//! passed to the agent on that session and that is not answered yet.

use std::{
    collections::HashSet,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response,
    body::{Body, Frame, SizeHint},
    header,
};
use serde_json::{Value, json};

use super::{
    conn_info::ConnInfo,
    forward::Answer,
    mcp::{self, Rewrite},
    state::Shared,
};
use crate::policy::gateway::McpEndpoint;

/// The indexes of the responses in an agent's POST that answer no
/// outstanding server request of the session: they are not forwarded.
pub(crate) fn unexpected_responses(
    gw: &Shared,
    ep: &McpEndpoint,
    session: Option<&str>,
    envelope: &mcp::Envelope,
) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, item) in envelope.items.iter().enumerate() {
        if !item.is_response() {
            continue;
        }
        let id = item.id().cloned().unwrap_or(Value::Null);
        if !gw
            .mcp_sessions
            .answered(&ep.server, session.unwrap_or_default(), &id)
        {
            dropped(gw, ep, "to_server", "unexpected_response", &id);
            out.push(i);
        }
    }
    out
}

fn dropped(gw: &Shared, ep: &McpEndpoint, direction: &str, reason: &str, id: &Value) {
    tracing::warn!(
        target: "agent_sidecar::gateway",
        agent = %gw.identity.id,
        server = %ep.server,
        direction,
        reason,
        id = %id,
        "MCP message dropped"
    );
    gw.recorder
        .mcp_message_dropped(&gw.identity.id, direction, reason);
}

/// Decides the messages of one answer from the server.
pub(crate) struct ServerMessages {
    gw: Arc<Shared>,
    host: String,
    port: u16,
    ep: McpEndpoint,
    session: Option<String>,
    /// Ids of the agent's requests this answer may respond to.
    awaited: HashSet<String>,
}

impl ServerMessages {
    /// For the answer to the agent's requests `awaited` (none for the GET
    /// stream) on `session`.
    pub(crate) fn new(
        gw: &Arc<Shared>,
        conn: &ConnInfo,
        ep: &McpEndpoint,
        session: Option<String>,
        awaited: &[Value],
    ) -> Self {
        ServerMessages {
            gw: gw.clone(),
            host: conn.host.clone(),
            port: conn.port,
            ep: ep.clone(),
            session,
            awaited: awaited.iter().map(Value::to_string).collect(),
        }
    }

    /// What becomes of one message (or batch) of the server.
    fn decide(&mut self, message: Value) -> Rewrite {
        match message {
            Value::Array(items) => {
                let n = items.len();
                let kept: Vec<Value> = items.into_iter().filter(|m| self.keep(m)).collect();
                if kept.is_empty() {
                    Rewrite::Drop
                } else if kept.len() == n {
                    Rewrite::Keep
                } else {
                    Rewrite::Replace(Value::Array(kept))
                }
            }
            one => {
                if self.keep(&one) {
                    Rewrite::Keep
                } else {
                    Rewrite::Drop
                }
            }
        }
    }

    /// The answers still awaited when the server's answer ended (`error`:
    /// how; `None`, a stream that ended without them): each is logged and
    /// counted as a message dropped on its way to the agent, reason
    /// `answer_lost`. The agent sees the stream end (in error, when the
    /// server's connection failed) without its answer.
    fn answers_lost(&mut self, error: Option<&dyn std::fmt::Display>) {
        let error = error.map(ToString::to_string).unwrap_or_default();
        for id in std::mem::take(&mut self.awaited) {
            tracing::warn!(
                target: "agent_sidecar::gateway",
                agent = %self.gw.identity.id,
                server = %self.ep.server,
                host = %self.host,
                port = self.port,
                id = %id,
                error = %error,
                "MCP answer lost: the tool server's answer ended before the response to the agent's request"
            );
            self.gw
                .recorder
                .mcp_message_dropped(&self.gw.identity.id, "to_agent", "answer_lost");
        }
    }

    fn keep(&mut self, m: &Value) -> bool {
        let id = m.get("id").cloned();
        match (m.get("method").and_then(Value::as_str), id) {
            (Some(_), None) => true,
            (Some(method), Some(id)) => self.server_request(method, id),
            (None, Some(id)) if m.get("result").is_some() || m.get("error").is_some() => {
                if self.awaited.remove(&id.to_string()) {
                    return true;
                }
                dropped(&self.gw, &self.ep, "to_agent", "unexpected_response", &id);
                false
            }
            (None, id) => {
                let id = id.unwrap_or(Value::Null);
                dropped(&self.gw, &self.ep, "to_agent", "invalid_message", &id);
                false
            }
        }
    }

    fn server_request(&mut self, method: &str, id: Value) -> bool {
        let session = self.session.clone().unwrap_or_default();
        if self.ep.server_requests.iter().any(|m| m == method)
            && self.gw.mcp_sessions.expect(&self.ep.server, &session, &id)
        {
            return true;
        }
        dropped(
            &self.gw,
            &self.ep,
            "to_agent",
            "server_request_refused",
            &id,
        );
        self.refuse(method, id);
        false
    }

    /// Answers a refused server request with a JSON-RPC error, so that
    /// the server does not wait for the agent.
    fn refuse(&self, method: &str, id: Value) {
        let message = format!(
            "the agent's gateway refuses the server request `{method}`: the policy does not list it in the tool's `mcp.server_requests`"
        );
        let answer = json!({"jsonrpc": "2.0", "id": id, "error": {"code": mcp::POLICY_DENIED, "message": message}});
        let (gw, ep, host, port) = (
            self.gw.clone(),
            self.ep.clone(),
            self.host.clone(),
            self.port,
        );
        let session = self.session.clone();
        tokio::spawn(async move {
            let mut req = Request::post(ep.path.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json, text/event-stream");
            if let Some(s) = &session {
                req = req.header(mcp::SESSION_HEADER, s.as_str());
            }
            let Ok(req) = req.body(()) else { return };
            let (parts, ()) = req.into_parts();
            let body = Full::new(Bytes::from(answer.to_string()))
                .map_err(|never| match never {})
                .boxed();
            let policy = gw.policy.current();
            let sent = gw
                .upstream
                .send(&policy, &host, port, Some(&ep.tool), parts, body);
            let read = async {
                if let Ok(resp) = sent.await {
                    let _ = resp.into_body().collect().await;
                }
            };
            let _ = tokio::time::timeout(gw.upstream.timeout, read).await;
        });
    }
}

/// An answer of the server with its messages decided.
pub(crate) type Governed = GovernedBody<Answer>;

/// Wraps the server's answer so that every message is decided before it
/// reaches the agent.
pub(crate) fn govern(resp: Response<Answer>, mut messages: ServerMessages) -> Response<Governed> {
    let sse = mcp::is_event_stream(resp.headers());
    if messages.session.is_none() {
        messages.session = resp
            .headers()
            .get(mcp::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    let limit = messages.gw.limits.max_body_bytes;
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        GovernedBody {
            inner: body,
            messages,
            sse,
            bom_checked: false,
            buf: Vec::new(),
            limit,
            done: false,
        },
    )
}

/// The body of a governed answer: SSE event by event as they complete,
/// a JSON answer once whole.
pub(crate) struct GovernedBody<B> {
    inner: B,
    messages: ServerMessages,
    sse: bool,
    /// Whether the stream's first bytes were checked for a byte order
    /// mark (SSE).
    bom_checked: bool,
    buf: Vec<u8>,
    limit: usize,
    done: bool,
}

impl<B> GovernedBody<B> {
    fn finish_json(&mut self) -> Option<Bytes> {
        let buf = std::mem::take(&mut self.buf);
        if buf.iter().all(u8::is_ascii_whitespace) {
            return (!buf.is_empty()).then(|| Bytes::from(buf));
        }
        match serde_json::from_slice::<Value>(&buf) {
            // Not JSON: no JSON-RPC message to decide (an error page).
            Err(_) => Some(Bytes::from(buf)),
            Ok(v) => match self.messages.decide(v) {
                Rewrite::Keep => Some(Bytes::from(buf)),
                Rewrite::Drop => None,
                Rewrite::Replace(v) => Some(Bytes::from(v.to_string())),
            },
        }
    }
}

impl<B> Body for GovernedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Err(e)) => {
                    this.done = true;
                    this.messages.answers_lost(Some(&e));
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(frame)) => {
                    // Trailers carry no message: not passed on.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.buf.extend_from_slice(&data);
                    if this.sse && !this.bom_checked {
                        // The stream's byte order mark is not sent on: the
                        // gateway may put its own events ahead of the
                        // upstream's, where a BOM would be part of a line.
                        match mcp::strip_stream_bom(&this.buf) {
                            None => continue,
                            Some(n) => {
                                this.buf.drain(..n);
                                this.bom_checked = true;
                            }
                        }
                    }
                    if this.sse {
                        let n = mcp::complete_prefix_len(&this.buf);
                        if n > 0 {
                            let events: Vec<u8> = this.buf.drain(..n).collect();
                            let messages = &mut this.messages;
                            match mcp::rewrite_sse_messages(&events, |v| messages.decide(v)) {
                                Ok(out) if out.is_empty() => {}
                                Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out.into())))),
                                Err(e) => {
                                    tracing::warn!(error = %e, "MCP event stream ended: unreadable");
                                    this.done = true;
                                }
                            }
                        }
                    }
                    if this.buf.len() > this.limit {
                        tracing::warn!(
                            limit = this.limit,
                            "MCP answer ended: a message exceeds the body limit"
                        );
                        this.done = true;
                    }
                }
                None => {
                    this.done = true;
                    if this.sse {
                        this.messages.answers_lost(None);
                        // An unfinished event is never dispatched.
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(this.finish_json().map(|b| Ok(Frame::data(b))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
