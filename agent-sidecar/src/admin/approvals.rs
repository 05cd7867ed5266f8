//! The approvals routes: `GET /v1/approvals[?state=pending|approved|denied|expired|cancelled|forwarded]`,
//! `GET /v1/approvals/{id}`, and `POST /v1/approvals/{id}/approve` or
//! `/deny` with `{"approver": "...", "reason": "..."}`.

use bytes::Bytes;
use http_body_util::Full;
#[cfg(test)]
use hyper::header;
use hyper::{Method, Request, Response, StatusCode, body::Body};

use super::reply::{ApiError, allow, json, not_found, read_limited};
#[cfg(test)]
use crate::approvals::BearerToken;
use crate::approvals::{ApprovalId, ApprovalStore, Approver, Approvers, DecisionBody, ListBody};

const STATES: [&str; 6] = [
    "pending",
    "approved",
    "denied",
    "expired",
    "cancelled",
    "forwarded",
];

/// Whether `path` is one of these routes.
pub(super) fn owns(path: &str) -> bool {
    path.starts_with("/v1/approvals")
}

/// Answers one request as the admin listener does (token checked, no
/// throttle, no gateway routes).
#[cfg(test)]
async fn handle<B>(
    req: Request<B>,
    store: &ApprovalStore,
    token: &BearerToken,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let admin = super::Admin::api(store.clone(), token.clone());
    super::server::handle(req, &admin, None).await
}

/// Whether `path` is a decision an approver's own token may make: these
/// routes, the release of a kill switch, and approving or denying a
/// just-in-time grant.
fn decides(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    owns(path)
        || (p.starts_with("/v1/kill-switches/") && p.ends_with("/release"))
        || (p.starts_with("/v1/grants/") && (p.ends_with("/approve") || p.ends_with("/deny")))
}

/// The directory's approver named by the request's bearer token, on
/// decision routes only (elsewhere the admin token is required).
pub(super) fn approver<B>(
    req: &Request<B>,
    path: &str,
    approvers: Option<&Approvers>,
) -> Option<Approver> {
    if !decides(path) {
        return None;
    }
    approvers?.authenticate(req.headers().get(hyper::header::AUTHORIZATION))
}

/// The name a decision is recorded under: with a directory, the
/// authenticated approver's (a different `approver` in the body is
/// refused); without, the body's.
pub(super) fn decider(
    approvers: Option<&Approvers>,
    approver: Option<&Approver>,
    claimed: String,
) -> Result<String, ApiError> {
    if approvers.is_none() {
        return Ok(claimed);
    }
    let Some(who) = approver else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "approver_token_required",
            "an approver directory is configured: approving or denying needs the approver's own bearer token (the admin token may only list)".into(),
        ));
    };
    if !claimed.is_empty() && claimed != who.name {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "approver_mismatch",
            format!(
                "the bearer token is approver {:?}'s, not {claimed:?}; decide under your own name",
                who.name
            ),
        ));
    }
    Ok(who.name.clone())
}

pub(super) async fn route<B>(
    req: Request<B>,
    store: &ApprovalStore,
    approvers: Option<&Approvers>,
    approver: Option<Approver>,
) -> Result<Response<Full<Bytes>>, ApiError>
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
            let by = decider(approvers, approver.as_ref(), body.approver).inspect_err(|e| {
                tracing::warn!(approval = %id, error = %e.message, "approval decision refused");
                if let Some(m) = store.metrics() {
                    m.decision_refused(e.code);
                }
            })?;
            let record = match (approver.as_ref().filter(|_| approvers.is_some()), *verb) {
                (Some(who), "approve") => store.approve_as(&id, who, body.reason).await?,
                (Some(who), _) => store.deny_as(&id, who, body.reason).await?,
                (None, "approve") => store.approve(&id, by, body.reason).await?,
                (None, _) => store.deny(&id, by, body.reason).await?,
            };
            Ok(json(StatusCode::OK, &record))
        }
        _ => Err(not_found(&path)),
    }
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

#[cfg(test)]
mod tests;
