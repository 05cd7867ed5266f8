//! Sending an allowed call upstream: the sidecar's credential instead of
//! the agent's, the trace context, no hop-by-hop headers, to the address
//! the sidecar resolved; the answer comes back without the credential
//! (see [`redacted`](super::redacted)). [`Upstream`] is this stage's
//! handle: the pooled client, the secrets and the upstream bounds.

use std::time::Duration;

use bytes::Bytes;

use hyper::{
    Request, Response, StatusCode, Uri, Version,
    body::Incoming,
    header::{self, HeaderMap, HeaderName, HeaderValue},
    http::{
        request::Parts,
        uri::{Authority, PathAndQuery, Scheme},
    },
};

use super::{
    mcp,
    redacted::{RedactedBody, redact_headers},
    refusal::Refusal,
    upstream::{UpstreamBody, UpstreamClient},
};
use crate::{
    credentials::{RedactorCache, SecretStore, strip_agent_credentials},
    policy::CompiledPolicySet,
};

/// An upstream answer as the agent may see it.
pub(crate) type Answer = RedactedBody<Incoming>;

/// Hop-by-hop headers (RFC 9110 7.6.1) never forwarded.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: look before removing (each removal hashes
    // the name). `Connection` is one of them, so this also covers the
    // headers it names.
    if !headers.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for h in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(h);
    }
}

/// What the forward stage needs: where and how to send, and how long to
/// wait for the answer.
pub(crate) struct Upstream {
    /// Pooled, verified TLS connections to the tool hosts.
    pub(crate) client: UpstreamClient,
    /// The credentials injected by tool.
    pub(crate) secrets: SecretStore,
    /// How long an upstream may take to answer (head, or the part of an
    /// MCP answer the gateway reads).
    pub(crate) timeout: Duration,
    /// Most bytes of an answer the gateway reads itself.
    pub(crate) max_answer_bytes: usize,
    /// The answers' redactors, one per injected credential.
    pub(crate) redactors: RedactorCache,
}

impl Upstream {
    /// Sends the request described by `parts` (path and headers from the
    /// agent) to `https://host:port` with `body`, authenticated as `tool`.
    pub(crate) async fn send(
        &self,
        policy: &CompiledPolicySet,
        host: &str,
        port: u16,
        tool: Option<&str>,
        parts: Parts,
        body: UpstreamBody,
    ) -> Result<Response<Answer>, Refusal> {
        self.send_via(&self.client, policy, host, port, tool, parts, body)
            .await
    }

    /// As [`send`](Self::send), with `client` (the mutual-TLS client of a
    /// call to another agent).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send_via(
        &self,
        client: &UpstreamClient,
        policy: &CompiledPolicySet,
        host: &str,
        port: u16,
        tool: Option<&str>,
        mut parts: Parts,
        body: UpstreamBody,
    ) -> Result<Response<Answer>, Refusal> {
        // The agent's path and query as they are (not copied), to
        // `https://host:port`.
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(Scheme::HTTPS);
        uri.authority = Some(upstream_authority(host, port)?);
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        parts.uri = Uri::from_parts(uri)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        strip_agent_credentials(&mut parts.headers);
        let mut redactor = None;
        if let Some(cred) = tool.and_then(|t| policy.credential(t)) {
            let Some(secret) = self.secrets.get(&cred.secret) else {
                return Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "credential_missing",
                    format!(
                        "the sidecar has no secret `{}` for this tool; the operator must pass --secret",
                        cred.secret
                    ),
                ));
            };
            cred.injection
                .apply(&mut parts.headers, secret)
                .map_err(|e| {
                    Refusal::new(StatusCode::BAD_GATEWAY, "credential_invalid", e.to_string())
                })?;
            let injected = parts
                .headers
                .get(&cred.injection.header)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            redactor = self.redactors.get(&[injected, secret.expose()]);
            // Answers are searched for the credential: they must come as
            // they are, not compressed.
            parts.headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        let req = Request::from_parts(parts, body);
        match tokio::time::timeout(self.timeout, client.request(req)).await {
            Ok(Ok(mut resp)) => {
                strip_hop_by_hop(resp.headers_mut());
                if let Some(r) = &redactor {
                    answer_searchable(resp.headers(), host, port)?;
                    redact_headers(r, resp.headers_mut());
                    // Redaction changes the length.
                    resp.headers_mut().remove(header::CONTENT_LENGTH);
                }
                Ok(resp.map(|b| RedactedBody::new(b, redactor)))
            }
            Ok(Err(e)) => {
                let detail = self.secrets.redact(&format!("{e:?}")).into_owned();
                Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_failed",
                    format!("{host}:{port}: {detail}"),
                ))
            }
            Err(_) => Err(Refusal::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("{host}:{port} did not answer within {:?}", self.timeout),
            )),
        }
    }

    /// Reads an upstream answer until the responses to `ids` are in (an SSE
    /// stream may stay open after them), within the body limit and the
    /// upstream timeout.
    pub(crate) async fn read_answer<B>(
        &self,
        body: B,
        event_stream: bool,
        ids: &[serde_json::Value],
    ) -> Result<mcp::ReadAnswer<B>, mcp::AnswerError>
    where
        B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
    {
        mcp::read_until_answered(body, event_stream, ids, self.max_answer_bytes, self.timeout).await
    }
}

/// `host`, with `:port` unless it is 443.
fn upstream_authority(host: &str, port: u16) -> Result<Authority, Refusal> {
    let parsed = if port == 443 {
        Authority::try_from(host)
    } else {
        Authority::try_from(format!("{host}:{port}"))
    };
    parsed.map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))
}

/// Refuses an answer whose body cannot be searched for the credential
/// (compressed although `identity` was asked for).
fn answer_searchable(headers: &HeaderMap, host: &str, port: u16) -> Result<(), Refusal> {
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "answer_encoded",
            format!(
                "{host}:{port} answered with a Content-Encoding although the gateway asked for identity; an answer to a call with an injected credential must be searchable for it"
            ),
        ));
    }
    Ok(())
}
