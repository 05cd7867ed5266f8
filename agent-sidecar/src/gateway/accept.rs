//! Stage 1 of a call: what is refused before its body is read. Framing
//! that could smuggle a second request, a request for another host than
//! the connection's, a quarantined agent, and a method, method override or
//! path that could make the tool run something other than what would be
//! decided ([`request_checks`](super::request_checks)).

use std::{collections::BTreeMap, time::Instant};

use hyper::{Response, StatusCode, header, http::request::Parts};

use super::{
    AgentBody,
    body::{close_h1, header_view},
    conn_info::ConnInfo,
    hooks::QuarantineSwitch,
    limits::check_framing,
    record::{CallRecord, Recorder},
    refusal::Refusal,
    request_checks, trace,
};
use crate::policy::{AgentIdentity, CompiledPolicySet, HttpRequest, Request as PolicyRequest};

/// Lets the request on (`None`), or answers it with a refusal. A refusal of a
/// request that names a call is recorded like a decision.
pub(crate) fn accept(
    identity: &AgentIdentity,
    quarantine: &QuarantineSwitch,
    recorder: &Recorder,
    conn: &ConnInfo,
    policy: &CompiledPolicySet,
    parts: &mut Parts,
) -> Option<Response<AgentBody>> {
    if let Err(e) = check_framing(parts) {
        let resp = Refusal::new(StatusCode::BAD_REQUEST, "bad_framing", e.to_string()).response();
        return Some(close_h1(resp, parts.version));
    }
    if let Some(asked) = other_host(parts, &conn.host) {
        return Some(
            Refusal::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected",
                format!(
                    "this connection is for {} (TLS server name); the request names {asked}",
                    conn.host
                ),
            )
            .response(),
        );
    }
    if quarantine.active() {
        return Some(
            Refusal::new(
                StatusCode::FORBIDDEN,
                "quarantined",
                "the agent is quarantined; an operator must release it",
            )
            .response(),
        );
    }
    if let Err(r) = request_checks::check_request(policy, &conn.host, parts) {
        return Some(refuse_unread(identity, recorder, conn, policy, parts, r));
    }
    None
}

/// Refuses a request before its body is read, with the event of the call
/// it names (so that refusals are audited and counted like decisions).
fn refuse_unread(
    identity: &AgentIdentity,
    recorder: &Recorder,
    conn: &ConnInfo,
    policy: &CompiledPolicySet,
    parts: &mut Parts,
    refusal: Refusal,
) -> Response<AgentBody> {
    let request = PolicyRequest::Http(HttpRequest {
        host: conn.host.clone(),
        method: parts.method.as_str().to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        query: BTreeMap::new(),
        headers: header_view(&parts.headers),
        body: None,
    });
    let action = policy.action_from_request(identity.clone(), &request);
    let decision = policy.decide(&action);
    let caller = trace::caller_span(&parts.headers);
    let traceparent = trace::propagate(&mut parts.headers).to_string();
    let mut record = CallRecord::new(traceparent, caller, Instant::now());
    record.refused(&refusal);
    record.finish(recorder, action, decision);
    close_h1(refusal.response(), parts.version)
}

/// The host the request itself names (`:authority` or `Host`), without
/// port, when it is not `host`.
fn other_host(parts: &Parts, host: &str) -> Option<String> {
    let other = |asked: &str| {
        let asked = asked.trim_end_matches('.');
        (!asked.eq_ignore_ascii_case(host)).then(|| asked.to_string())
    };
    if let Some(authority) = parts.uri.authority() {
        return other(authority.host());
    }
    let h = parts.headers.get(header::HOST)?.to_str().ok()?;
    match h.parse::<hyper::http::uri::Authority>() {
        Ok(a) => other(a.host()),
        Err(_) => other(h),
    }
}
