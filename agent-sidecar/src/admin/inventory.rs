//! `GET /v1/inventory`: who the governed agent is (owner, team, purpose,
//! environment), the policy version in force, and when it last acted.

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::inventory::Inventory;

/// Answers `method path`, or `None` when the path is not this route.
pub(super) fn route(
    inventory: &Inventory,
    method: &Method,
    path: &str,
) -> Option<(StatusCode, Value)> {
    if path.trim_end_matches('/') != "/v1/inventory" {
        return None;
    }
    if method != Method::GET {
        return Some((
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "method_not_allowed", "message": "GET /v1/inventory" }),
        ));
    }
    Some((
        StatusCode::OK,
        serde_json::to_value(inventory.snapshot()).unwrap_or(Value::Null),
    ))
}
