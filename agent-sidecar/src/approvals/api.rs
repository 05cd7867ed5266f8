//! The approvals admin API, served on its own listener (the eBPF layer keeps
//! it out of the agent's reach):
//!
//! - `GET /v1/approvals[?state=pending|approved|denied|expired|cancelled|forwarded]`
//! - `GET /v1/approvals/{id}`
//! - `POST /v1/approvals/{id}/approve` and `/deny` with
//!   `{"approver": "...", "reason": "..."}`
//!
//! Every request needs `Authorization: Bearer <token>`. A peer that keeps
//! failing to authenticate must wait, doubling, before its next request is
//! looked at (`429` with `Retry-After`, see [`super::throttle`]). Errors
//! are `{"error": code, "message": ...}`.

use std::{convert::Infallible, future::Future, net::IpAddr, pin::Pin, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body, Incoming},
    header,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use super::{
    auth::BearerToken,
    error::ApprovalError,
    model::ApprovalId,
    store::ApprovalStore,
    throttle::{AuthThrottle, ThrottleConfig},
    wire::{DecisionBody, ErrorBody, ListBody, MAX_BODY},
};

const STATES: [&str; 6] = [
    "pending",
    "approved",
    "denied",
    "expired",
    "cancelled",
    "forwarded",
];

/// More admin routes, served under the same listener and token (the tool
/// gateway's compensations and quarantine).
pub trait AdminRoutes: Send + Sync {
    /// Answers `method path` with a status and JSON body, or `None` when the
    /// path is not one of its routes. `body` is at most [`MAX_BODY`] bytes.
    fn handle<'a>(&'a self, method: &'a Method, path: &'a str, body: Bytes) -> AdminFuture<'a>;
}

/// What [`AdminRoutes::handle`] returns: a status and a JSON body, or
/// `None` for "not mine".
pub type AdminFuture<'a> =
    Pin<Box<dyn Future<Output = Option<(StatusCode, serde_json::Value)>> + Send + 'a>>;

/// Serves the approvals API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, store: ApprovalStore, token: BearerToken) {
    serve_with(listener, store, token, None).await
}

/// Serves the approvals API and `extra` routes on `listener` until the task
/// is dropped.
pub async fn serve_with(
    listener: TcpListener,
    store: ApprovalStore,
    token: BearerToken,
    extra: Option<Arc<dyn AdminRoutes>>,
) {
    let token = Arc::new(token);
    let throttle = Arc::new(AuthThrottle::new(
        ThrottleConfig::default(),
        store.metrics(),
    ));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok((stream, peer)) => (stream, peer.ip()),
            Err(e) => {
                tracing::warn!(error = %e, "approvals API: accept failed");
                continue;
            }
        };
        let store = store.clone();
        let token = token.clone();
        let extra = extra.clone();
        let throttle = throttle.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let store = store.clone();
                let token = token.clone();
                let extra = extra.clone();
                let throttle = throttle.clone();
                async move {
                    let gate = Some((&*throttle, peer));
                    Ok::<_, Infallible>(
                        handle_with(req, &store, &token, extra.as_deref(), gate).await,
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// An error response: status, code, message, and for 405 the allowed method.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    allow: Option<Method>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            code,
            message,
            allow: None,
        }
    }
}

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ApprovalError::AlreadyDecided { .. }
            | ApprovalError::NotApproved { .. }
            | ApprovalError::AlreadyForwarded(_)
            | ApprovalError::Cancelled { .. }
            | ApprovalError::TooManyPending { .. }
            | ApprovalError::KeyReused(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_decided", e.to_string())
            }
            ApprovalError::Journal(_) | ApprovalError::Worker(_) | ApprovalError::Closed => {
                tracing::error!(error = %e, "approvals API: store failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the approval store failed; see the sidecar log".into(),
                )
            }
        }
    }
}

/// Answers one request.
#[cfg(test)]
pub(super) async fn handle<B>(
    req: Request<B>,
    store: &ApprovalStore,
    token: &BearerToken,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    handle_with(req, store, token, None, None).await
}

/// Answers one request, trying `extra` for paths outside `/v1/approvals`.
/// `gate` throttles the peer's failed authentications.
async fn handle_with<B>(
    req: Request<B>,
    store: &ApprovalStore,
    token: &BearerToken,
    extra: Option<&dyn AdminRoutes>,
    gate: Option<(&AuthThrottle, IpAddr)>,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some((throttle, peer)) = gate
        && let Err(wait) = throttle.admit(peer)
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = error_response(&ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!(
                "too many failed authentications from this address; retry in {secs} s with the right bearer token"
            ),
        ));
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        return resp;
    }
    let authorized = token.authorizes(req.headers().get(header::AUTHORIZATION));
    if let Some((throttle, peer)) = gate {
        if authorized {
            throttle.succeeded(peer);
        } else {
            throttle.failed(peer);
        }
    }
    if !authorized {
        let mut resp = error_response(&ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token".into(),
        ));
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"agent-sidecar approvals\""),
        );
        return resp;
    }
    if let Some(extra) = extra.filter(|_| !req.uri().path().starts_with("/v1/approvals")) {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let body = match read_limited(req).await {
            Ok(b) => b,
            Err(e) => return error_response(&e),
        };
        if let Some((status, value)) = extra.handle(&method, &path, body).await {
            return json(status, &value);
        }
        return error_response(&not_found(&path));
    }
    match route(req, store).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

async fn route<B>(req: Request<B>, store: &ApprovalStore) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v1/approvals") else {
        return Err(not_found(&path));
    };
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let method = req.method().clone();
    match (rest.is_empty(), segments.as_slice()) {
        (true, _) => {
            allow(&method, &Method::GET)?;
            let state = state_filter(req.uri().query())?;
            let approvals = store.list(state).await?;
            Ok(json(StatusCode::OK, &ListBody { approvals }))
        }
        (false, [id]) => {
            allow(&method, &Method::GET)?;
            let id = parse_id(id, &path)?;
            Ok(json(StatusCode::OK, &store.get(&id).await?))
        }
        (false, [id, verb @ ("approve" | "deny")]) => {
            allow(&method, &Method::POST)?;
            let id = parse_id(id, &path)?;
            let body = read_decision(req).await?;
            let record = if *verb == "approve" {
                store.approve(&id, body.approver, body.reason).await?
            } else {
                store.deny(&id, body.approver, body.reason).await?
            };
            Ok(json(StatusCode::OK, &record))
        }
        _ => Err(not_found(&path)),
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no resource at {path}"),
    )
}

fn allow(method: &Method, allowed: &Method) -> Result<(), ApiError> {
    if method == allowed {
        return Ok(());
    }
    Err(ApiError {
        allow: Some(allowed.clone()),
        ..ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("use {allowed} on this resource"),
        )
    })
}

/// An unknown or malformed id is a 404 either way.
fn parse_id(id: &str, path: &str) -> Result<ApprovalId, ApiError> {
    ApprovalId::parse(id).ok_or_else(|| not_found(path))
}

fn state_filter(query: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("expected ?state= one of {}", STATES.join(", ")),
        )
    };
    let value = query.strip_prefix("state=").ok_or_else(bad)?;
    STATES
        .iter()
        .find(|s| **s == value)
        .copied()
        .map(Some)
        .ok_or_else(bad)
}

async fn read_decision<B>(req: Request<B>) -> Result<DecisionBody, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read_limited(req).await?;
    let invalid = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", msg);
    let body: DecisionBody = serde_json::from_slice(&bytes).map_err(|e| {
        invalid(format!(
            "expected {{\"approver\": \"...\", \"reason\": \"...\"}}: {e}"
        ))
    })?;
    body.validate().map_err(invalid)?;
    Ok(body)
}

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read_limited<B>(req: Request<B>) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {MAX_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("cannot read the body: {e}"),
        )),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => respond(status, body),
        Err(e) => error_response(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot encode the response: {e}"),
        )),
    }
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let body = ErrorBody {
        error: e.code.to_string(),
        message: e.message.clone(),
    };
    // Two strings always serialize.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = respond(e.status, bytes);
    if let Some(allow) = e
        .allow
        .as_ref()
        .and_then(|m| header::HeaderValue::from_str(m.as_str()).ok())
    {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    resp
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

#[cfg(test)]
mod tests;
