//! The admin API's answers: JSON bodies, `{"error": code, "message": ...}`
//! errors (with `Allow` on a 405), and bounded request bodies.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode, body::Body, header};
use serde::Serialize;

use crate::approvals::{ApprovalError, ErrorBody, MAX_BODY};

/// An error response: status, code, message, and for 405 the allowed method.
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) allow: Option<Method>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: String) -> ApiError {
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
            ApprovalError::Chain { ref refusal, .. } => {
                ApiError::new(StatusCode::FORBIDDEN, refusal.reason(), e.to_string())
            }
            ApprovalError::ChainNeedsApprover { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "approver_token_required",
                e.to_string(),
            ),
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

pub(super) fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no resource at {path}"),
    )
}

pub(super) fn allow(method: &Method, allowed: &Method) -> Result<(), ApiError> {
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

/// Reads a body of at most [`MAX_BODY`] bytes.
pub(super) async fn read_limited<B>(req: Request<B>) -> Result<Bytes, ApiError>
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

pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => respond(status, body),
        Err(e) => error_response(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot encode the response: {e}"),
        )),
    }
}

pub(super) fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
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
