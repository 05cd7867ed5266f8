//! What a tier-3 approval binds: a SHA-256 digest of everything the
//! decision read and everything the gateway will forward (method, path and
//! query, every forwarded header, the body bytes), and the view of that
//! request approvers are shown. A retry under the same idempotency key
//! whose digest differs is refused (`409 idempotency_key_reused`), so an
//! approval can never be spent on bytes the approver did not see.

use std::collections::BTreeMap;

use hyper::{
    HeaderMap,
    header::{self, HeaderName},
    http::request::Parts,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::policy::Action;

/// Headers left out of the digest: framing and connection management
/// (re-done by the gateway on each hop), the agent's credentials (removed
/// before forwarding), the host (checked to equal the TLS server name), the
/// trace context (a new span per attempt; rewritten by the gateway) and the
/// MCP session id (transport state that changes when a client reconnects).
const UNBOUND: [&str; 14] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "authorization",
    "proxy-authorization",
    "traceparent",
    "tracestate",
    "mcp-session-id",
];

/// Headers shown to approvers only as `[redacted]` (still bound).
const SECRET_HEADERS: [HeaderName; 1] = [header::COOKIE];

/// What a held call hands the approval store.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    /// `sha256:HEX` of the decided and forwarded bytes.
    pub(crate) binding: String,
    /// The JSON body or MCP arguments, as before.
    pub(crate) input: Value,
    /// The request as approvers see it.
    pub(crate) request: Value,
}

/// The binding of a REST call (`parts` before the gateway touches the
/// headers, `body` as received) and its view for approvers.
pub(crate) fn rest(action: &Action, parts: &Parts, body: &[u8], json: Option<&Value>) -> Held {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut h = Sha256::new();
    field(&mut h, b"transport", b"http");
    field(&mut h, b"method", parts.method.as_str().as_bytes());
    field(&mut h, b"path", path.as_bytes());
    headers_into(&mut h, &parts.headers);
    field(&mut h, b"body", body);
    Held {
        binding: finish(h),
        input: json.cloned().unwrap_or(Value::Null),
        request: json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": shown_headers(&parts.headers),
            "body": shown_body(body, json),
            "attributes": action.attributes,
        }),
    }
}

/// The binding of one `tools/call` of an MCP POST: the endpoint, the
/// forwarded headers and the whole body as received (for a batch, every
/// element: what is forwarded is derived from those bytes).
pub(crate) fn mcp(
    action: &Action,
    parts: &Parts,
    body: &[u8],
    tool: &str,
    arguments: &Value,
) -> Held {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut h = Sha256::new();
    field(&mut h, b"transport", b"mcp");
    field(&mut h, b"method", parts.method.as_str().as_bytes());
    field(&mut h, b"path", path.as_bytes());
    headers_into(&mut h, &parts.headers);
    field(&mut h, b"tool", tool.as_bytes());
    field(&mut h, b"body", body);
    Held {
        binding: finish(h),
        input: arguments.clone(),
        request: json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": shown_headers(&parts.headers),
            "tool_name": escaped(tool.as_bytes()),
            "arguments": arguments,
            "attributes": action.attributes,
        }),
    }
}

/// A length-prefixed, tagged field: no two different requests hash alike.
fn field(h: &mut Sha256, tag: &[u8], value: &[u8]) {
    h.update((tag.len() as u64).to_be_bytes());
    h.update(tag);
    h.update((value.len() as u64).to_be_bytes());
    h.update(value);
}

/// Every bound header, by name in byte order, the values of one name in
/// the order received.
fn headers_into(h: &mut Sha256, headers: &HeaderMap) {
    let mut names: Vec<&HeaderName> = headers
        .keys()
        .filter(|n| !UNBOUND.contains(&n.as_str()))
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    for name in names {
        for value in headers.get_all(name) {
            field(h, name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

fn finish(h: Sha256) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The bound headers as approvers see them: the exact bytes, escaped
/// where they are not printable ASCII; cookies redacted.
fn shown_headers(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if UNBOUND.contains(&name.as_str()) {
            continue;
        }
        let shown = if SECRET_HEADERS.contains(name) {
            "[redacted]".to_string()
        } else {
            escaped(value.as_bytes())
        };
        out.entry(name.as_str().to_string())
            .or_default()
            .push(shown);
    }
    out
}

/// A JSON body as JSON; anything else as its exact bytes, escaped.
fn shown_body(body: &[u8], json: Option<&Value>) -> Value {
    match json {
        Some(v) => v.clone(),
        None if body.is_empty() => Value::Null,
        None => json!({ "text": escaped(body), "bytes": body.len() }),
    }
}

/// `bytes` with everything but printable ASCII escaped (`\n`, `\x00`,
/// `\xd0\xb0`...): what approvers read is exactly what was sent.
pub(crate) fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use hyper::Request;

    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method("POST").uri("/v1/wires?x=1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn every_forwarded_header_and_the_body_are_bound() {
        let a = Action::default();
        let base = rest(&a, &parts(&[("x-amount", "150")]), b"{}", None).binding;
        assert_eq!(
            base,
            rest(
                &a,
                &parts(&[
                    ("x-amount", "150"),
                    ("traceparent", "00-x"),
                    ("authorization", "b")
                ]),
                b"{}",
                None
            )
            .binding,
            "trace context and the agent's credentials are not bound"
        );
        for (headers, body) in [
            (vec![("x-amount", "1000000")], &b"{}"[..]),
            (vec![("x-amount", "150"), ("x-other", "1")], b"{}"),
            (vec![("x-amount", "150")], b"{} "),
            (vec![("x-amount", "150"), ("x-amount", "2")], b"{}"),
        ] {
            assert_ne!(
                base,
                rest(&a, &parts(&headers), body, None).binding,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn approvers_see_exact_bytes_escaped() {
        let a = Action::default();
        let held = rest(
            &a,
            &parts(&[("x-amount", "150")]),
            b"amount=1\x00\xd0",
            None,
        );
        assert_eq!(held.request["query"], "x=1");
        assert_eq!(held.request["headers"]["x-amount"], json!(["150"]));
        assert_eq!(held.request["body"]["text"], "amount=1\\x00\\xd0");
        assert_eq!(escaped("del\u{0430}".as_bytes()), "del\\xd0\\xb0");
    }
}
