//! One request on a terminated connection: framing checks, the MCP or REST
//! path, the tier, the forward, the event.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderMap},
    http::request::Parts,
};
use serde_json::Value;

use super::{
    AgentBody, binding,
    compensate::{self, Original},
    events::{GatewayEvent, Outcome, emit},
    forward,
    limits::{BodyError, check_framing, collect_limited},
    mcp_call, mcp_transport,
    refusal::Refusal,
    request_checks,
    state::Shared,
    tiers::{self, Verdict},
    trace,
};
use crate::{
    approvals::UnixMillis,
    policy::{Action, CompiledPolicySet, Decision, HttpRequest, Request as PolicyRequest, Tier},
};

/// The header a client sets to make retries attach to one approval.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// What the connection knows: the tool host (from SNI) and port.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Longest wait between a quarantining refusal and the kernel quarantine
/// when the refusal's delivery is not observed.
const KERNEL_QUARANTINE_DELAY: Duration = Duration::from_secs(2);

/// Serves one request. A call that quarantined the agent gets its refusal
/// first; the kernel quarantine follows when the answer has been handed to
/// the connection.
pub(crate) async fn handle(
    gw: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<AgentBody> {
    let resp = serve(&gw, &conn, req).await;
    if !gw.quarantine.kernel_pending() {
        return resp;
    }
    let switch = gw.quarantine.clone();
    let fallback = gw.quarantine.clone();
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
    let (parts, body) = req.into_parts();
    if let Err(e) = check_framing(&parts) {
        let resp = Refusal::new(StatusCode::BAD_REQUEST, "bad_framing", e.to_string()).response();
        return close_h1(resp, parts.version);
    }
    if let Some(asked) = asked_host(&parts).filter(|a| !a.eq_ignore_ascii_case(&conn.host)) {
        return Refusal::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            format!(
                "this connection is for {} (TLS server name); the request names {asked}",
                conn.host
            ),
        )
        .response();
    }
    if gw.quarantine.active() {
        return Refusal::new(
            StatusCode::FORBIDDEN,
            "quarantined",
            "the agent is quarantined; an operator must release it",
        )
        .response();
    }
    let policy = gw.policy.current();
    if let Err(r) = request_checks::check_request(&policy, &conn.host, &parts) {
        return refuse_unread(gw, conn, &policy, parts, r);
    }
    let mcp = policy
        .inspected(&conn.host)
        .and_then(|e| e.mcp.iter().find(|m| m.path == parts.uri.path()).cloned());
    match mcp {
        Some(endpoint) if parts.method == Method::POST => {
            mcp_call::handle(gw, conn, &policy, &endpoint, parts, body).await
        }
        Some(endpoint) => mcp_transport::handle(gw, conn, &policy, &endpoint, parts, body).await,
        None => rest(gw, conn, &policy, parts, body).await,
    }
}

/// Refuses a request before its body is read, with the event of the call
/// it names (so that refusals are audited and counted like decisions).
fn refuse_unread(
    gw: &Shared,
    conn: &ConnInfo,
    policy: &CompiledPolicySet,
    mut parts: Parts,
    refusal: Refusal,
) -> Response<AgentBody> {
    let request = PolicyRequest::Http(HttpRequest {
        host: conn.host.clone(),
        method: parts.method.as_str().to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        query: BTreeMap::new(),
        headers: header_view(&parts.headers),
        body: None,
    });
    let action = policy.action_from_request(gw.identity.clone(), &request);
    let decision = policy.decide(&action);
    let traceparent = trace::propagate(&mut parts.headers).to_string();
    let mut event = Event::new(traceparent, Instant::now());
    event.refused(&refusal);
    event.emit(gw, action, decision);
    close_h1(refusal.response(), parts.version)
}

/// The host the request itself names (`:authority` or `Host`), without port.
fn asked_host(parts: &Parts) -> Option<String> {
    let raw = parts
        .uri
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            let h = parts.headers.get(header::HOST)?.to_str().ok()?;
            Some(
                h.parse::<hyper::http::uri::Authority>()
                    .map(|a| a.host().to_string())
                    .unwrap_or_else(|_| h.to_string()),
            )
        })?;
    Some(raw.trim_end_matches('.').to_string())
}

/// Marks an HTTP/1 refusal `Connection: close`: no byte after a refused
/// (possibly unread) body is ever parsed as another request.
pub(crate) fn close_h1(
    mut resp: Response<AgentBody>,
    version: hyper::Version,
) -> Response<AgentBody> {
    if version < hyper::Version::HTTP_2 {
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Reads the body within the limits; refusals for too large and too slow.
pub(crate) async fn read_body<B>(gw: &Shared, body: B) -> Result<Bytes, Refusal>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = &gw.config.limits;
    collect_limited(body, limits.max_body_bytes, limits.body_read_timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies of inspected tools are limited to {limit} bytes; the request was refused, not truncated"),
            ),
            BodyError::Timeout => Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {:?}", limits.body_read_timeout),
            ),
            other => Refusal::new(StatusCode::BAD_REQUEST, "body_unreadable", other.to_string()),
        })
}

/// Headers as the policy's attribute sources see them (credentials left
/// out).
pub(crate) fn header_view(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(n, _)| {
            *n != header::AUTHORIZATION && *n != header::PROXY_AUTHORIZATION && *n != header::COOKIE
        })
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// A REST call.
async fn rest(
    gw: &Shared,
    conn: &ConnInfo,
    policy: &CompiledPolicySet,
    mut parts: Parts,
    body: Incoming,
) -> Response<AgentBody> {
    let started = Instant::now();
    let bytes = match read_body(gw, body).await {
        Ok(b) => b,
        Err(r) => return close_h1(r.response(), parts.version),
    };
    let json: Option<Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let request = PolicyRequest::Http(HttpRequest {
        host: conn.host.clone(),
        method: parts.method.as_str().to_string(),
        path: path.clone(),
        query: BTreeMap::new(),
        headers: header_view(&parts.headers),
        body: json.clone(),
    });
    let action = policy.action_from_request(gw.identity.clone(), &request);
    if action.action.is_none()
        && let Some(similar) = policy.lookalike_route(&conn.host, parts.method.as_str(), &path)
    {
        tracing::warn!(path = %path, similar = %similar, "request refused: a look-alike of a declared route");
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "confusable_route",
            format!(
                "{} {path} is not a declared route, but a server could take it for `{similar}`; routes are matched exactly: send the path as declared",
                parts.method
            ),
        )
        .response();
    }
    let decision = policy.decide(&action);
    let held = binding::rest(&action, &parts, &bytes, json.as_ref());
    let shown = held.request.clone();
    let traceparent = trace::propagate(&mut parts.headers).to_string();
    if let Err(r) = request_checks::check_body(&parts, &bytes) {
        let mut event = Event::new(traceparent, started);
        event.refused(&r);
        event.emit(gw, action, decision);
        return r.response();
    }
    let key = parts
        .headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("http:{}:{k}", conn.host));
    let mut event = Event::new(traceparent, started);
    let approved = match tiers::enforce(gw, &action, &decision, key, held).await {
        Verdict::Refuse(r) => {
            event.refused(&r);
            event.emit(gw, action, decision);
            return r.response();
        }
        Verdict::Forward(approved) => approved,
    };
    let token = match approved {
        None => None,
        Some(id) => match tiers::claim(gw, &action, &decision, &id).await {
            Ok(token) => Some((token, id.to_string())),
            Err(r) => {
                event.refused(&r);
                event.emit(gw, action, decision);
                return r.response();
            }
        },
    };
    let tool = action.tool.clone();
    let body = Full::new(bytes).map_err(|never| match never {}).boxed();
    let result = forward::send(
        gw,
        policy,
        &conn.host,
        conn.port,
        tool.as_deref(),
        parts,
        body,
    )
    .await;
    let resp = match result {
        Ok(resp) => resp,
        Err(r) => {
            if let Some((token, _)) = token {
                let _ = gw.approvals.record_upstream_status(token, 0).await;
            }
            event.upstream_failed(&r);
            event.emit(gw, action, decision);
            return r.response();
        }
    };
    let status = resp.status().as_u16();
    event.forwarded(status);
    if let Some((token, id)) = token {
        event.approved(id);
        let recorded = gw.approvals.record_upstream_status(token, status).await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record the upstream status of an approved call");
        }
    }
    let compensation = match (&action.tool, &action.action) {
        (Some(t), Some(a)) if decision.tier == Tier::Supervised => policy.compensation(t, a),
        _ => None,
    };
    let Some(comp) = compensation.cloned() else {
        if decision.tier == Tier::Supervised {
            tiers::supervised(gw, &action, &decision, &shown, status, None);
        }
        event.emit(gw, action, decision);
        return resp.map(|b| b.boxed());
    };
    // Compensable: keep the answer's JSON for the compensating call.
    let (rparts, rbody) = resp.into_parts();
    let answer = match read_body(gw, rbody).await {
        Ok(b) => b,
        Err(r) => {
            event.emit(gw, action, decision);
            return r.response();
        }
    };
    let (tool, act) = (
        action.tool.clone().unwrap_or_default(),
        action.action.clone().unwrap_or_default(),
    );
    let route = policy.action_route(&tool, &act);
    let entry = gw.compensations.register(
        policy,
        &tool,
        &act,
        &comp,
        &conn.host,
        conn.port,
        Original {
            path_params: compensate::params_of(route, path.split('?').next().unwrap_or("/")),
            body: json,
            response: serde_json::from_slice(&answer).ok(),
            endpoint: None,
        },
    );
    tiers::supervised(gw, &action, &decision, &shown, status, Some(&entry));
    event.compensable(entry.id.clone());
    event.emit(gw, action, decision);
    let mut resp = Response::from_parts(rparts, super::refusal::full(answer));
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp
}

/// What happened to one call, until its event is emitted with the action
/// and decision (moved in, not copied).
pub(crate) struct Event {
    started: Instant,
    traceparent: String,
    outcome: Outcome,
    reason: Option<String>,
    upstream_status: Option<u16>,
    approval_id: Option<String>,
    compensation_id: Option<String>,
}

impl Event {
    pub(crate) fn new(traceparent: String, started: Instant) -> Self {
        Event {
            started,
            traceparent,
            outcome: Outcome::Refused,
            reason: None,
            upstream_status: None,
            approval_id: None,
            compensation_id: None,
        }
    }

    pub(crate) fn refused(&mut self, r: &Refusal) {
        self.outcome = Outcome::Refused;
        self.reason = Some(r.reason.to_string());
        self.approval_id = r.approval_id.clone();
    }

    pub(crate) fn upstream_failed(&mut self, r: &Refusal) {
        self.outcome = Outcome::UpstreamFailed;
        self.reason = Some(r.reason.to_string());
    }

    pub(crate) fn forwarded(&mut self, status: u16) {
        self.outcome = Outcome::Forwarded;
        self.upstream_status = Some(status);
    }

    pub(crate) fn approved(&mut self, approval_id: String) {
        self.approval_id = Some(approval_id);
    }

    pub(crate) fn compensable(&mut self, compensation_id: String) {
        self.compensation_id = Some(compensation_id);
    }

    pub(crate) fn emit(self, gw: &Shared, action: Action, decision: Decision) {
        let transport = match action.target {
            Some(crate::policy::Target::Mcp { .. }) => "mcp",
            _ => "http",
        };
        let event = GatewayEvent {
            at: UnixMillis::now(),
            transport,
            action,
            decision,
            outcome: self.outcome,
            reason: self.reason,
            upstream_status: self.upstream_status,
            approval_id: self.approval_id,
            compensation_id: self.compensation_id,
            traceparent: self.traceparent,
            duration_us: self.started.elapsed().as_micros() as u64,
        };
        emit(gw.sink.as_deref(), event);
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
