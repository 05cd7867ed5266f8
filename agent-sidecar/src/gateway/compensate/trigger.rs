//! Triggering a compensation: claimed once, then an HTTP request built
//! from the original one, or a call of an MCP tool (`mcp.rs`).

use bytes::Bytes;
use hyper::{Method, Request, header};
use serde_json::{Value, json};

use super::{
    entries::{Compensable, path_value},
    error::CompensationError,
    exchange::{Trigger, decide, exchange},
    mcp,
};
use crate::policy::{
    HttpRequest, Request as PolicyRequest,
    gateway::{ActionRoute, fill_path},
};

/// Runs the compensating action of `id` with `extra` (a JSON object)
/// merged into the original body, or first in line for an MCP tool's
/// arguments; returns the upstream's status and answer. At most once: a
/// compensation whose request was not sent may be triggered again.
pub(crate) async fn trigger(
    gw: &Trigger<'_>,
    id: &str,
    extra: Value,
) -> Result<(u16, Value), CompensationError> {
    let entry = gw.compensations.claim(id)?;
    let outcome = run(gw, &entry, extra).await;
    if let Err(
        CompensationError::Build(_) | CompensationError::NotSent(_) | CompensationError::Refused(_),
    ) = &outcome
    {
        gw.compensations.release(id);
    }
    if let Ok((status, _)) = &outcome {
        tracing::info!(id, tool = %entry.tool, action = %entry.compensation, status, "compensation triggered");
    }
    outcome
}

async fn run(
    gw: &Trigger<'_>,
    entry: &Compensable,
    extra: Value,
) -> Result<(u16, Value), CompensationError> {
    let policy = gw.policy.current();
    let route = policy
        .action_route(&entry.tool, &entry.compensation)
        .cloned()
        .ok_or_else(|| CompensationError::Build("the compensating action is gone".into()))?;
    let (method, path) = match route {
        ActionRoute::Http { method, path } => (method, path),
        ActionRoute::Mcp(tool) => {
            let Value::Object(extra) = extra else {
                return Err(CompensationError::Build(
                    "the trigger's body must be a JSON object".into(),
                ));
            };
            return mcp::call(gw, &policy, entry, &tool, extra).await;
        }
    };
    let orig = &entry.original;
    let target = fill_path(&path, &|name| path_value(orig, name)).map_err(|e| {
        CompensationError::Build(format!(
            "`{path}` cannot be filled from the original call: {e}"
        ))
    })?;
    let mut body = orig.body.clone().unwrap_or_else(|| json!({}));
    if let (Value::Object(b), Value::Object(x)) = (&mut body, extra) {
        b.extend(x);
    }
    let request = PolicyRequest::Http(HttpRequest {
        host: entry.host.clone(),
        method: method.clone(),
        path: target.clone(),
        headers: [("content-type".to_string(), "application/json".to_string())].into(),
        body: Some(body.clone()),
        ..HttpRequest::default()
    });
    decide(gw, &policy, entry, &request)?;
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|e| CompensationError::Build(e.to_string()))?;
    let req = Request::builder()
        .method(method)
        .uri(target)
        .header(header::CONTENT_TYPE, "application/json");
    let (status, _, answer) = exchange(
        gw,
        &policy,
        entry,
        req,
        bytes,
        &[],
        CompensationError::Upstream,
    )
    .await?;
    let answer = serde_json::from_slice(&answer)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer).into_owned()));
    Ok((status.as_u16(), answer))
}
