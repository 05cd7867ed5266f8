//! The gateway's admin routes, served with the approvals API on the admin
//! listener (same bearer token; unreachable from the agent's cgroup):
//!
//! - `GET /v1/compensations`: tier-2 calls still inside their window;
//! - `POST /v1/compensations/{id}/trigger` with an optional JSON object
//!   merged into the compensating request;
//! - `GET /v1/quarantine`; `POST /v1/quarantine/release` with
//!   `{"operator": "...", "reason": "..."}`.

use std::{future::Future, pin::Pin};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    compensate::{CompensationError, Trigger, trigger},
    state::Gateway,
};
use crate::approvals::AdminRoutes;

impl AdminRoutes for Gateway {
    fn handle<'a>(
        &'a self,
        method: &'a Method,
        path: &'a str,
        body: Bytes,
    ) -> Pin<Box<dyn Future<Output = Option<(StatusCode, Value)>> + Send + 'a>> {
        Box::pin(async move {
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            Some(match (method.as_str(), segments.as_slice()) {
                ("GET", ["v1", "compensations"]) => (
                    StatusCode::OK,
                    json!({ "compensations": self.shared.compensations.list() }),
                ),
                ("POST", ["v1", "compensations", id, "trigger"]) => {
                    let extra = if body.is_empty() {
                        json!({})
                    } else {
                        match serde_json::from_slice::<Value>(&body) {
                            Ok(v @ Value::Object(_)) => v,
                            _ => {
                                return Some(error(
                                    StatusCode::BAD_REQUEST,
                                    "invalid_body",
                                    "the body must be a JSON object (merged into the compensating request's body)",
                                ));
                            }
                        }
                    };
                    let gw = &self.shared;
                    let ctx = Trigger {
                        compensations: &gw.compensations,
                        policy: &gw.policy,
                        identity: &gw.identity,
                        upstream: &gw.upstream,
                    };
                    match trigger(&ctx, id, extra).await {
                        Ok((status, answer)) => (
                            StatusCode::OK,
                            json!({ "id": id, "upstream_status": status, "answer": answer }),
                        ),
                        Err(e) => {
                            let status = match e {
                                CompensationError::NotFound(_) => StatusCode::NOT_FOUND,
                                CompensationError::Closed(..) => StatusCode::GONE,
                                CompensationError::AlreadyTriggered(_) => StatusCode::CONFLICT,
                                CompensationError::Build(_) => StatusCode::UNPROCESSABLE_ENTITY,
                                CompensationError::Refused(_) => StatusCode::FORBIDDEN,
                                CompensationError::NotSent(_) | CompensationError::Upstream(_) => {
                                    StatusCode::BAD_GATEWAY
                                }
                            };
                            error(status, "compensation_failed", &e.to_string())
                        }
                    }
                }
                ("GET", ["v1", "quarantine"]) => (
                    StatusCode::OK,
                    json!({ "agent": self.shared.identity.id, "quarantined": self.shared.oversight.quarantine.active() }),
                ),
                ("POST", ["v1", "quarantine", "release"]) => {
                    let who: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (Some(operator), Some(reason)) = (
                        who.get("operator")
                            .and_then(Value::as_str)
                            .filter(|s| !s.trim().is_empty()),
                        who.get("reason")
                            .and_then(Value::as_str)
                            .filter(|s| !s.trim().is_empty()),
                    ) else {
                        return Some(error(
                            StatusCode::BAD_REQUEST,
                            "invalid_body",
                            "expected {\"operator\": \"...\", \"reason\": \"...\"}",
                        ));
                    };
                    match self.shared.oversight.quarantine.release() {
                        Ok(()) => {
                            tracing::warn!(agent = %self.shared.identity.id, operator, reason, "quarantine released");
                            self.shared.recorder.quarantine_released(
                                &self.shared.identity,
                                operator,
                                reason,
                            );
                            (
                                StatusCode::OK,
                                json!({ "agent": self.shared.identity.id, "quarantined": false, "released_by": operator }),
                            )
                        }
                        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "release_failed", &e),
                    }
                }
                _ => return None,
            })
        })
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({ "error": code, "message": message }))
}
