//! Reading what the agent sent, within the limits, and what of it the
//! policy may see.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::{
    Response, StatusCode,
    header::{self, HeaderMap},
};

use super::{
    AgentBody,
    limits::{BodyError, GatewayLimits, collect_limited},
    refusal::Refusal,
};

/// The header a client sets to make retries attach to one approval.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Reads the body within the limits; refusals for too large and too slow.
pub(crate) async fn read_body<B>(limits: &GatewayLimits, body: B) -> Result<Bytes, Refusal>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
