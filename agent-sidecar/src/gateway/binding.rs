//! What a tier-3 approval binds: a digest of everything the decision read
//! and everything the gateway will forward (method, path and query, every
//! forwarded header, the body bytes), keyed with the deployment's
//! redaction key so that the journal's digest cannot be used to check
//! guesses of a redacted field, and the view of that request approvers
//! (and the owner, for tier 2) are shown: redacted by policy like every
//! record (see [`crate::redaction`]). A retry under the same idempotency
//! key whose digest differs is refused (`409 idempotency_key_reused`), so
//! an approval can never be spent on bytes other than those approved.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use hyper::{
    HeaderMap,
    header::{self, HeaderName},
    http::request::Parts,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    policy::{Action, gateway::FieldRedaction},
    redaction::{InputView, Redacted, RedactionKey, header_view, key::hex, query_view},
};

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
    /// `hmac-sha256:HEX` (keyed) or `sha256:HEX` (no key) of the decided
    /// and forwarded bytes.
    pub(crate) binding: String,
    /// The JSON body or MCP arguments as kept by the policy's redaction.
    pub(crate) input: serde_json::Value,
    /// The request as approvers see it, redacted by policy.
    pub(crate) request: serde_json::Value,
}

/// How a request is redacted for display: the action's rules, the key,
/// and its body's view.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a> {
    pub(crate) rules: Option<&'a FieldRedaction>,
    pub(crate) key: Option<&'a RedactionKey>,
    pub(crate) view: &'a InputView,
}

/// The binding of a REST call (`parts` before the gateway touches the
/// headers, `body` as received) and its view for approvers.
pub(crate) fn rest(action: &Action, parts: &Parts, body: &[u8], shown: Shown<'_>) -> Held {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut h = Binding::new(shown.key);
    h.field(b"transport", b"http");
    h.field(b"method", parts.method.as_str().as_bytes());
    h.field(b"path", path.as_bytes());
    h.headers(&parts.headers);
    h.field(b"body", body);
    let mut redactions = shown.view.redactions.clone();
    let query = query_view(shown.rules, shown.key, parts.uri.query(), &mut redactions);
    let headers = shown_headers(&parts.headers, shown, &mut redactions);
    Held {
        binding: h.finish(),
        input: shown.view.body.clone(),
        request: json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": query,
            "headers": headers,
            "body": shown.view.body,
            "attributes": action.attributes,
            "redactions": redactions,
            "policy_version": shown.view.policy_version,
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
    shown: Shown<'_>,
) -> Held {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut h = Binding::new(shown.key);
    h.field(b"transport", b"mcp");
    h.field(b"method", parts.method.as_str().as_bytes());
    h.field(b"path", path.as_bytes());
    h.headers(&parts.headers);
    h.field(b"tool", tool.as_bytes());
    h.field(b"body", body);
    let mut redactions = shown.view.redactions.clone();
    let query = query_view(shown.rules, shown.key, parts.uri.query(), &mut redactions);
    let headers = shown_headers(&parts.headers, shown, &mut redactions);
    Held {
        binding: h.finish(),
        input: shown.view.body.clone(),
        request: json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": query,
            "headers": headers,
            "tool_name": escaped(tool.as_bytes()),
            "arguments": shown.view.body,
            "attributes": action.attributes,
            "redactions": redactions,
            "policy_version": shown.view.policy_version,
        }),
    }
}

/// The binding digest: HMAC-SHA256 with the redaction key, or SHA-256
/// without one.
enum Binding {
    Keyed(Hmac<Sha256>),
    Plain(Sha256),
}

impl Binding {
    fn new(key: Option<&RedactionKey>) -> Self {
        match key {
            Some(k) => Binding::Keyed(k.mac()),
            None => Binding::Plain(Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Binding::Keyed(m) => m.update(bytes),
            Binding::Plain(h) => Digest::update(h, bytes),
        }
    }

    /// A length-prefixed, tagged field: no two different requests hash
    /// alike.
    fn field(&mut self, tag: &[u8], value: &[u8]) {
        self.update(&(tag.len() as u64).to_be_bytes());
        self.update(tag);
        self.update(&(value.len() as u64).to_be_bytes());
        self.update(value);
    }

    /// Every bound header, by name in byte order, the values of one name
    /// in the order received.
    fn headers(&mut self, headers: &HeaderMap) {
        let mut names: Vec<&HeaderName> = headers
            .keys()
            .filter(|n| !UNBOUND.contains(&n.as_str()))
            .collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        for name in names {
            for value in headers.get_all(name) {
                self.field(name.as_str().as_bytes(), value.as_bytes());
            }
        }
    }

    fn finish(self) -> String {
        match self {
            Binding::Keyed(m) => format!("hmac-sha256:{}", hex(&m.finalize().into_bytes())),
            Binding::Plain(h) => format!("sha256:{}", hex(&h.finalize())),
        }
    }
}

/// The bound headers as approvers see them: the exact bytes, escaped
/// where they are not printable ASCII; cookies redacted; those the policy
/// names hashed or dropped.
fn shown_headers(
    headers: &HeaderMap,
    shown: Shown<'_>,
    redactions: &mut Vec<Redacted>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if UNBOUND.contains(&name.as_str()) {
            continue;
        }
        let display = if SECRET_HEADERS.contains(name) {
            "[redacted]".to_string()
        } else {
            escaped(value.as_bytes())
        };
        let Some(display) = header_view(
            shown.rules,
            shown.key,
            name.as_str(),
            value.as_bytes(),
            display,
            redactions,
        ) else {
            continue;
        };
        out.entry(name.as_str().to_string())
            .or_default()
            .push(display);
    }
    out
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

    fn shown(view: &InputView) -> Shown<'_> {
        Shown {
            rules: None,
            key: None,
            view,
        }
    }

    #[test]
    fn every_forwarded_header_and_the_body_are_bound() {
        let a = Action::default();
        let v = InputView::default();
        let base = rest(&a, &parts(&[("x-amount", "150")]), b"{}", shown(&v)).binding;
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
                shown(&v)
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
                rest(&a, &parts(&headers), body, shown(&v)).binding,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn approvers_see_exact_header_bytes_escaped_and_the_body_as_redacted() {
        let a = Action::default();
        let v = InputView {
            body: json!({"amount": 1}),
            ..InputView::default()
        };
        let held = rest(
            &a,
            &parts(&[("x-amount", "150"), ("x-note", "n\u{0430}")]),
            b"{\"amount\":1,\"iban\":\"DE02\"}",
            shown(&v),
        );
        assert_eq!(held.request["query"], "x=1");
        assert_eq!(held.request["headers"]["x-amount"], json!(["150"]));
        assert_eq!(held.request["headers"]["x-note"], json!(["n\\xd0\\xb0"]));
        assert_eq!(held.request["body"], json!({"amount": 1}));
        assert_eq!(held.input, json!({"amount": 1}));
        assert!(held.binding.starts_with("sha256:"));
        assert_eq!(escaped("del\u{0430}".as_bytes()), "del\\xd0\\xb0");
    }

    #[test]
    fn with_a_key_the_binding_is_keyed() {
        let a = Action::default();
        let v = InputView::default();
        let key = RedactionKey::generate();
        let keyed = |k: &RedactionKey| {
            rest(
                &a,
                &parts(&[]),
                b"{}",
                Shown {
                    rules: None,
                    key: Some(k),
                    view: &v,
                },
            )
            .binding
        };
        let b = keyed(&key);
        assert!(b.starts_with("hmac-sha256:") && b.len() == 12 + 64, "{b}");
        assert_eq!(b, keyed(&key), "the same request binds alike");
        assert_ne!(b, keyed(&RedactionKey::generate()));
        assert_ne!(b, rest(&a, &parts(&[]), b"{}", shown(&v)).binding);
    }
}
