//! The explicit proxy's HTTP replies, shared by its CONNECT and forwarding
//! paths: the body type, a refusal as a JSON response, and clearing a
//! request's target (checked and recorded).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::{
    Response,
    header::{CONTENT_TYPE, HeaderValue},
};

use super::{
    context::ProxyContext,
    gate::{Cleared, check_name},
    record::Record,
    refusal::Denial,
};

/// Body of every response the explicit proxy sends.
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Records `raw_host:port` as the request's target and checks it
/// ([`check_name`]): the cleared name (recorded too), or the refusal,
/// already recorded, as the response to send.
pub(crate) fn clear_target(
    ctx: &ProxyContext,
    mut record: Record,
    raw_host: &str,
    port: u16,
) -> Result<(Cleared, Record), Box<Response<ProxyBody>>> {
    record.target(raw_host, port);
    match check_name(ctx, raw_host, port) {
        Ok(cleared) => {
            record.target(&cleared.host, port);
            Ok((cleared, record))
        }
        Err(denial) => {
            record.denied(&denial);
            Err(Box::new(refusal_response(&denial, Some(raw_host), port)))
        }
    }
}

/// A refusal as an HTTP response with the JSON body.
pub(crate) fn refusal_response(
    denial: &Denial,
    host: Option<&str>,
    port: u16,
) -> Response<ProxyBody> {
    let mut response = Response::new(full(denial.json_body(host, port)));
    *response.status_mut() = denial.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A response body of `body`.
pub(crate) fn full(body: String) -> ProxyBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

/// An empty response body.
pub(crate) fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}
