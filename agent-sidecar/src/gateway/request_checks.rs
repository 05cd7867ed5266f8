//! Checks on a request before any route is matched: the method it runs
//! and the path it names must be the ones the policy decides on
//! ([`method_check`](super::method_check), [`path_check`](super::path_check)).

use bytes::Bytes;
use hyper::{StatusCode, http::request::Parts};

use super::{
    method_check::{MethodError, check_body_overrides, check_method, check_overrides},
    path_check::check_path,
    refusal::Refusal,
};
use crate::policy::CompiledPolicySet;

/// Refuses a request whose method, method overrides or path could make
/// the tool run something other than what is decided.
pub(crate) fn check_request(
    policy: &CompiledPolicySet,
    host: &str,
    parts: &Parts,
) -> Result<(), Refusal> {
    check_method(&parts.method, |m| policy.declares_http_method(host, m))
        .map_err(method_refusal)?;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    check_overrides(&parts.headers, path_and_query).map_err(method_refusal)?;
    check_path(parts.uri.path())
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "ambiguous_path", e.to_string()))
}

/// Refuses a body that names another method.
pub(crate) fn check_body(parts: &Parts, body: &Bytes) -> Result<(), Refusal> {
    check_body_overrides(&parts.headers, body).map_err(method_refusal)
}

fn method_refusal(e: MethodError) -> Refusal {
    match e {
        MethodError::Forbidden(_) | MethodError::Undeclared(_) => Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            e.to_string(),
        ),
        MethodError::Override { .. } => {
            Refusal::new(StatusCode::BAD_REQUEST, "method_override", e.to_string())
        }
    }
}
