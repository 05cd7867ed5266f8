//! The REST path of the pipeline: one request is one call. Its body is read
//! within the limits, the action recognised from the route, decided,
//! enforced, forwarded and recorded; a supervised call with a declared
//! compensation is remembered with its answer for the reversal window.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, body::Incoming, header, http::request::Parts};
use serde_json::Value;

use super::{
    AgentBody, binding,
    body::{IDEMPOTENCY_KEY, close_h1, header_view, read_body},
    compensate::{self, Original},
    conn_info::ConnInfo,
    input::Inputs,
    record::CallRecord,
    refusal::{Refusal, full},
    request_checks,
    state::Shared,
    tiers::{self, TierAction},
    trace,
};
use crate::policy::{CompiledPolicySet, HttpRequest, Request as PolicyRequest, Tier};

/// A REST call.
pub(crate) async fn handle(
    gw: &Shared,
    conn: &ConnInfo,
    policy: &CompiledPolicySet,
    mut parts: Parts,
    body: Incoming,
) -> Response<AgentBody> {
    let started = Instant::now();
    let bytes = match read_body(&gw.limits, body).await {
        Ok(b) => b,
        Err(r) => return close_h1(r.response(), parts.version),
    };
    // Recognise.
    let json: Option<Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
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
        body: json,
    });
    let action = policy.action_from_request(gw.identity.clone(), &request);
    // The path and the body's JSON back from the request (not copied).
    let (path, json) = match request {
        PolicyRequest::Http(h) => (h.path, h.body),
        PolicyRequest::Mcp(_) => (String::new(), None),
    };
    if action.action.is_none()
        && let Some(similar) = policy.lookalike_route(&conn.host, parts.method.as_str(), &path)
    {
        tracing::warn!(path = %path, similar = %similar, "request refused: a look-alike of a declared route");
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "confusable_route",
            format!(
                "{} {path} is not a declared route, but a server could take it for `{similar}`; routes are matched exactly: send the path as declared",
                parts.method
            ),
        )
        .response();
    }
    // Decide (at least at the minimum tier a behavioural alert imposed).
    let decided = policy.decide(&action);
    let shadowed = gw.shadow.as_ref().map(|s| (s, decided.clone()));
    // Grants in force lower it (never tier 4 or deny); the shadow
    // compares policies, before any grant.
    let decided = match &gw.grants {
        Some(g) => g.apply(&action, decided),
        None => decided,
    };
    let decision = gw.oversight.floor.apply(decided);
    let decision = match &gw.quotas {
        Some(q) => q.apply(&action, decision, bytes.len() as u64).await,
        None => decision,
    };
    // What the records, the approval and the owner's notice keep of the
    // input (the policy's redaction), made once when one of them reads it.
    let view = Inputs::needed(gw.journal.enabled(), decision.tier)
        .then(|| Arc::new(gw.inputs.view(policy, &action, json.as_ref(), &bytes)));
    // What an approval binds (tier 3) and the call as its owner is shown
    // (tier 2), from the request as received: no other tier reads them.
    let mut held = match (&view, decision.tier) {
        (Some(v), Tier::Supervised | Tier::Approval) => Some(binding::rest(
            &action,
            &parts,
            &bytes,
            gw.inputs.shown(policy, &action, v),
        )),
        _ => None,
    };
    let shown = match decision.tier {
        Tier::Supervised => held.take().map(|h| h.request),
        _ => None,
    };
    let caller = trace::caller_span(&parts.headers);
    let traceparent = trace::propagate(&mut parts.headers).to_string();
    if let Some((shadow, decided)) = &shadowed {
        shadow.observe(&action, decided, Some(&traceparent));
    }
    let mut record = CallRecord::new(traceparent, caller, started);
    if let Some(v) = &view {
        record.input(v.clone());
    }
    if let Err(r) = request_checks::check_body(&parts, &bytes) {
        record.refused(&r);
        record.finish(&gw.recorder, action, decision);
        return r.response();
    }
    // A call of a delegated task stays within the delegation.
    if let Err(r) = gw.a2a.narrow(policy, &action, record.traceparent()) {
        record.refused(&r);
        record.finish(&gw.recorder, action, decision);
        return r.response();
    }
    // Record the attempt: durable (tier >= 2) or written (tier 1) before
    // the call goes further.
    if let Err(r) = gw
        .journal
        .attempt(
            "http",
            &action,
            &decision,
            record.traceparent(),
            record.caller_span(),
            view.as_deref(),
        )
        .await
    {
        record.refused(&r);
        record.finish(&gw.recorder, action, decision);
        return r.response();
    }
    // Enforce the tier.
    let key = parts
        .headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("http:{}:{k}", conn.host));
    let approved = match tiers::enforce(&gw.oversight, &action, &decision, key, held).await {
        TierAction::Refuse(mut r) => {
            r.request_access = gw
                .grants
                .as_ref()
                .and_then(|g| super::grant_request::hint(g, &action, decision.tier))
                .map(Box::new);
            record.refused(&r);
            record.finish(&gw.recorder, action, decision);
            return r.response();
        }
        TierAction::Forward(approved) => approved,
    };
    let token = match approved {
        None => None,
        Some(id) => match tiers::claim(&gw.oversight, &action, &decision, &id).await {
            Ok(token) => Some((token, id.to_string())),
            Err(r) => {
                record.refused(&r);
                record.finish(&gw.recorder, action, decision);
                return r.response();
            }
        },
    };
    // Another agent: a delegation token and mutual TLS.
    let peer = match gw
        .a2a
        .outbound(policy, &action, &mut parts.headers, record.traceparent())
    {
        Ok(p) => p,
        Err(r) => {
            record.refused(&r);
            record.finish(&gw.recorder, action, decision);
            return r.response();
        }
    };
    // Forward.
    let body = Full::new(bytes).map_err(|never| match never {}).boxed();
    let client = peer.as_ref().map_or(&gw.upstream.client, |p| &p.client);
    let result = gw
        .upstream
        .send_via(
            client,
            policy,
            &conn.host,
            conn.port,
            action.tool.as_deref(),
            parts,
            body,
        )
        .await;
    let resp = match result {
        Ok(resp) => resp,
        Err(r) => {
            if let Some((token, _)) = token {
                let _ = gw
                    .oversight
                    .approvals
                    .record_upstream_status(token, 0)
                    .await;
            }
            record.upstream_failed(&r);
            record.finish(&gw.recorder, action, decision);
            return r.response();
        }
    };
    // Record.
    let status = resp.status().as_u16();
    record.forwarded(status);
    if let Some((token, id)) = token {
        record.approved(id);
        let recorded = gw
            .oversight
            .approvals
            .record_upstream_status(token, status)
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record the upstream status of an approved call");
        }
    }
    if let Some(peer) = &peer {
        // The callee's answer is checked before the agent sees it.
        let (rparts, rbody) = resp.into_parts();
        let answer = match read_body(&gw.limits, rbody).await {
            Ok(b) => b,
            Err(r) => {
                record.upstream_failed(&r);
                record.finish(&gw.recorder, action, decision);
                return r.response();
            }
        };
        if let Err(r) =
            gw.a2a
                .check_answer(peer, &action, rparts.status, &answer, record.traceparent())
        {
            record.refused(&r);
            record.finish(&gw.recorder, action, decision);
            return r.response();
        }
        if let Some(shown) = shown {
            record.shown(shown);
        }
        record.finish(&gw.recorder, action, decision);
        let mut resp = Response::from_parts(rparts, full(answer));
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        return resp;
    }
    let compensation = match (&action.tool, &action.action) {
        (Some(t), Some(a)) if decision.tier == Tier::Supervised => policy.compensation(t, a),
        _ => None,
    };
    let Some(comp) = compensation.cloned() else {
        if let Some(shown) = shown {
            record.shown(shown);
        }
        record.finish(&gw.recorder, action, decision);
        return resp.map(|b| b.boxed());
    };
    // Compensable: keep the answer's JSON for the compensating call.
    let (rparts, rbody) = resp.into_parts();
    let answer = match read_body(&gw.limits, rbody).await {
        Ok(b) => b,
        Err(r) => {
            record.finish(&gw.recorder, action, decision);
            return r.response();
        }
    };
    let (tool, act) = (
        action.tool.clone().unwrap_or_default(),
        action.action.clone().unwrap_or_default(),
    );
    let route = policy.action_route(&tool, &act);
    let entry = gw.compensations.register(
        policy,
        &tool,
        &act,
        &comp,
        &conn.host,
        conn.port,
        Original {
            path_params: compensate::params_of(route, path.split('?').next().unwrap_or("/")),
            body: json,
            response: serde_json::from_slice(&answer).ok(),
            endpoint: None,
        },
        view.as_deref(),
    );
    if let Some(shown) = shown {
        record.shown(shown);
    }
    record.compensable(entry);
    record.finish(&gw.recorder, action, decision);
    let mut resp = Response::from_parts(rparts, full(answer));
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp
}
