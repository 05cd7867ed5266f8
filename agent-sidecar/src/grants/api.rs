//! The admin API's grant routes, answered from a [`GrantStore`]:
//!
//! - `GET /v1/grants[?state=pending|approved|denied|revoked|expired]`
//! - `POST /v1/grants` with a [`GrantRequest`]: 201 and the pending grant
//! - `POST /v1/grants/{id}/approve|deny|revoke` with
//!   `{"approver": "...", "reason": "..."}`
//!
//! A refusal is 400 (`grant_refused`, outside the bounds), 403
//! (`self_approval`, `not_an_approver`), 404 or 409 (`wrong_state`).

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{GrantError, GrantRequest, GrantState, GrantStore};

/// Whether `path` is one of these routes.
pub fn owns(path: &str) -> bool {
    path == "/v1/grants" || path.starts_with("/v1/grants/") || path.starts_with("/v1/grants?")
}

#[derive(Deserialize)]
struct Decision {
    approver: String,
    #[serde(default)]
    reason: String,
}

/// Answers one request: the status and the JSON body.
pub fn route(
    store: &GrantStore,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    match answer(store, method, path, query, body) {
        Ok(ok) => ok,
        Err((status, code, message)) => (status, json!({"error": code, "message": message})),
    }
}

type Refusal = (StatusCode, &'static str, String);

fn refusal(e: GrantError) -> Refusal {
    let (status, code) = match &e {
        GrantError::SelfApproval { .. } => (StatusCode::FORBIDDEN, "self_approval"),
        GrantError::NotAnApprover(_) => (StatusCode::FORBIDDEN, "not_an_approver"),
        GrantError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        GrantError::WrongState { .. } => (StatusCode::CONFLICT, "wrong_state"),
        GrantError::Io { .. } | GrantError::Corrupt { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "store_failed")
        }
        _ => (StatusCode::BAD_REQUEST, "grant_refused"),
    };
    (status, code, e.to_string())
}

fn answer(
    store: &GrantStore,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<(StatusCode, Value), Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, "invalid_body", m);
    let rest = path.strip_prefix("/v1/grants").unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (&Method::GET, []) => {
            let state = match query.and_then(|q| q.strip_prefix("state=")) {
                None => None,
                Some(s) => Some(
                    serde_json::from_value::<GrantState>(Value::String(s.into())).map_err(
                        |_| {
                            (
                                StatusCode::BAD_REQUEST,
                                "invalid_query",
                                "expected ?state= one of pending, approved, denied, revoked, expired"
                                    .to_string(),
                            )
                        },
                    )?,
                ),
            };
            Ok((StatusCode::OK, json!({"grants": store.list(state)})))
        }
        (&Method::POST, []) => {
            let req: GrantRequest = serde_json::from_slice(body).map_err(|e| {
                bad(format!(
                    "expected {{\"agent\", \"kind\", \"target\", \"purpose\", \"ttl_secs\", \"requested_by\"}}: {e}"
                ))
            })?;
            let g = store.request(req).map_err(refusal)?;
            Ok((StatusCode::CREATED, json!(g)))
        }
        (&Method::POST, [id, verb @ ("approve" | "deny" | "revoke")]) => {
            let d: Decision = serde_json::from_slice(body).map_err(|e| {
                bad(format!(
                    "expected {{\"approver\": \"...\", \"reason\": \"...\"}}: {e}"
                ))
            })?;
            let g = match *verb {
                "approve" => store.approve(id, &d.approver, &d.reason),
                "deny" => store.deny(id, &d.approver, &d.reason),
                _ => store.revoke(id, &d.approver, &d.reason),
            }
            .map_err(refusal)?;
            Ok((StatusCode::OK, json!(g)))
        }
        _ => Err((
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {method} {path}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::grants::{GrantBounds, GrantKind};

    #[test]
    fn request_approve_and_the_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = GrantBounds {
            kinds: vec![GrantKind::Egress],
            targets: vec!["198.51.100.9:8080".into()],
            max_ttl: Duration::from_secs(600),
            approvers: vec![],
            never: vec![],
        };
        let (store, _) = GrantStore::open(dir.path(), bounds).unwrap();
        let req = |target: &str, ttl: u64| {
            json!({"agent": "payer", "kind": "egress", "target": target, "purpose": "p",
                   "ttl_secs": ttl, "requested_by": "payer"})
            .to_string()
        };
        let (s, v) = route(
            &store,
            &Method::POST,
            "/v1/grants",
            None,
            req("198.51.100.9:8080", 60).as_bytes(),
        );
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        for (target, ttl) in [("198.51.100.9:8081", 60), ("198.51.100.9:8080", 601)] {
            let (s, v) = route(
                &store,
                &Method::POST,
                "/v1/grants",
                None,
                req(target, ttl).as_bytes(),
            );
            assert_eq!(
                (s, v["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("grant_refused"))
            );
        }
        let approve = |who: &str| {
            route(
                &store,
                &Method::POST,
                &format!("/v1/grants/{id}/approve"),
                None,
                json!({"approver": who}).to_string().as_bytes(),
            )
        };
        assert_eq!(approve("payer").0, StatusCode::FORBIDDEN);
        assert_eq!(approve("lead").0, StatusCode::OK);
        assert_eq!(approve("lead").0, StatusCode::CONFLICT);
        let (s, v) = route(
            &store,
            &Method::GET,
            "/v1/grants",
            Some("state=approved"),
            b"",
        );
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["grants"].as_array().unwrap().len(), 1);
    }
}
