//! Tier 2's reversal window: a forwarded call whose action declares a
//! `compensation` is remembered until the window closes, and its owner may
//! trigger the compensating action through the admin API meanwhile: an
//! HTTP request built from the original one, or a call of an MCP tool
//! ([`mcp`]).

mod mcp;

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode, header};
use rand::Rng as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::{forward, mcp::is_event_stream, mcp_call::read_answer, state::Shared};
use crate::{
    approvals::UnixMillis,
    policy::{
        CompiledPolicySet,
        gateway::{ActionRoute, fill_path, path_params},
    },
};

/// What the compensating call needs from the original one.
#[derive(Clone, Debug, Serialize)]
pub struct Original {
    /// `{name}` values of the original path.
    pub path_params: HashMap<String, String>,
    /// The original JSON body.
    pub body: Option<Value>,
    /// The upstream's JSON answer (for an MCP tool, the result's
    /// `structuredContent`).
    pub response: Option<Value>,
    /// The MCP endpoint path the original `tools/call` was POSTed to
    /// (MCP tools only).
    pub endpoint: Option<String>,
}

/// One compensable forwarded call.
#[derive(Clone, Debug, Serialize)]
pub struct Compensable {
    /// Id given to the owner.
    pub id: String,
    /// Tool of the original call.
    pub tool: String,
    /// Action of the original call.
    pub action: String,
    /// The compensating action.
    pub compensation: String,
    /// Tool host and port.
    pub host: String,
    /// Tool port.
    pub port: u16,
    /// Until when it may be triggered.
    pub until: UnixMillis,
    /// Already triggered (once only).
    pub triggered: bool,
    #[serde(skip)]
    original: Original,
}

/// Why a compensation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CompensationError {
    /// No such id (or it was pruned after its window).
    #[error("no compensable call `{0}`")]
    NotFound(String),
    /// The window closed.
    #[error("the reversal window of `{0}` closed at {1}")]
    Closed(String, u64),
    /// Triggered before.
    #[error("`{0}` was already compensated")]
    AlreadyTriggered(String),
    /// The compensating request could not be built from the original.
    /// Nothing was sent; the compensation may be triggered again.
    #[error("cannot build the compensating request: {0}")]
    Build(String),
    /// The tool's server could not be reached, or refused the preparation
    /// of the compensating call, before it was sent. The compensation may
    /// be triggered again.
    #[error("{0}; the compensating call was not sent and may be triggered again")]
    NotSent(String),
    /// The compensating request was sent and failed: it may have run, so
    /// it is not sent again.
    #[error("{0}")]
    Upstream(String),
}

/// The compensable calls of one gateway.
#[derive(Default)]
pub struct Compensations {
    inner: Mutex<HashMap<String, Compensable>>,
}

impl Compensations {
    /// Remembers a forwarded call; returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register(
        &self,
        tool: &str,
        action: &str,
        compensation: &str,
        host: &str,
        port: u16,
        window: std::time::Duration,
        original: Original,
    ) -> Compensable {
        let now = UnixMillis::now();
        let entry = Compensable {
            id: format!("cmp_{:032x}", rand::rng().random::<u128>()),
            tool: tool.into(),
            action: action.into(),
            compensation: compensation.into(),
            host: host.into(),
            port,
            until: now.plus(window),
            triggered: false,
            original,
        };
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, e| e.until.0 > now.0);
        map.insert(entry.id.clone(), entry.clone());
        entry
    }

    /// Calls still inside their window, oldest first.
    pub fn list(&self) -> Vec<Compensable> {
        let now = UnixMillis::now();
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<_> = map
            .values()
            .filter(|e| e.until.0 > now.0)
            .cloned()
            .collect();
        v.sort_by_key(|e| e.until.0);
        v
    }

    fn claim(&self, id: &str) -> Result<Compensable, CompensationError> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let e = map
            .get_mut(id)
            .ok_or_else(|| CompensationError::NotFound(id.into()))?;
        if e.until.0 <= UnixMillis::now().0 {
            return Err(CompensationError::Closed(id.into(), e.until.0));
        }
        if e.triggered {
            return Err(CompensationError::AlreadyTriggered(id.into()));
        }
        e.triggered = true;
        Ok(e.clone())
    }

    /// Makes a claimed call triggerable again (its compensating request
    /// was never sent).
    fn release(&self, id: &str) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get_mut(id) {
            e.triggered = false;
        }
    }
}

/// Runs the compensating action of `id` with `extra` (a JSON object)
/// merged into the original body, or first in line for an MCP tool's
/// arguments; returns the upstream's status and answer. At most once: a
/// compensation whose request was not sent may be triggered again.
pub(crate) async fn trigger(
    gw: &Shared,
    id: &str,
    extra: Value,
) -> Result<(u16, Value), CompensationError> {
    let entry = gw.compensations.claim(id)?;
    let outcome = run(gw, &entry, extra).await;
    if let Err(CompensationError::Build(_) | CompensationError::NotSent(_)) = &outcome {
        gw.compensations.release(id);
    }
    if let Ok((status, _)) = &outcome {
        tracing::info!(id, tool = %entry.tool, action = %entry.compensation, status, "compensation triggered");
    }
    outcome
}

async fn run(
    gw: &Shared,
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
    let lookup = |name: &str| -> Option<String> {
        if let Some(v) = orig.path_params.get(name) {
            return Some(v.clone());
        }
        match orig.response.as_ref()?.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let target = fill_path(&path, &lookup).ok_or_else(|| {
        CompensationError::Build(format!(
            "`{path}` needs values the original call did not carry"
        ))
    })?;
    let mut body = orig.body.clone().unwrap_or_else(|| json!({}));
    if let (Value::Object(b), Value::Object(x)) = (&mut body, extra) {
        b.extend(x);
    }
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

/// Sends one request of a compensation to `entry`'s tool host with the
/// tool's credential and reads the answer (within the upstream timeout and
/// the body limit): in full, or for an SSE answer of an MCP server, until
/// the responses to the JSON-RPC ids in `awaited` are in. A request that
/// cannot be built is [`CompensationError::Build`]; a failure to send or
/// to read the answer is `failed(what went wrong)`.
async fn exchange(
    gw: &Shared,
    policy: &CompiledPolicySet,
    entry: &Compensable,
    req: hyper::http::request::Builder,
    body: Bytes,
    awaited: &[Value],
    failed: impl FnOnce(String) -> CompensationError,
) -> Result<(StatusCode, HeaderMap, Bytes), CompensationError> {
    let (parts, ()) = req
        .body(())
        .map_err(|e| CompensationError::Build(e.to_string()))?
        .into_parts();
    let body = Full::new(body).map_err(|never| match never {}).boxed();
    let tool = Some(entry.tool.as_str());
    let resp = match forward::send(gw, policy, &entry.host, entry.port, tool, parts, body).await {
        Ok(resp) => resp,
        Err(r) => return Err(failed(r.message)),
    };
    let (parts, body) = resp.into_parts();
    let event_stream = !awaited.is_empty() && is_event_stream(&parts.headers);
    // The unread rest of a stream left open is dropped with it.
    match read_answer(gw, body, event_stream, awaited).await {
        Ok(read) => Ok((parts.status, parts.headers, read.head)),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The `{name}` values of `path` for the action's route.
pub(crate) fn params_of(route: Option<&ActionRoute>, path: &str) -> HashMap<String, String> {
    match route {
        Some(ActionRoute::Http { path: pattern, .. }) => path_params(pattern, path),
        _ => HashMap::new(),
    }
}
