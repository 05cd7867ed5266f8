//! Tier 2's reversal window: a forwarded call whose action declares a
//! `compensation` is remembered until the window closes, and its owner may
//! trigger the compensating action through the admin API meanwhile: an
//! HTTP request built from the original one, or a call of an MCP tool
//! (`mcp`).

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

use super::{forward::Upstream, mcp::is_event_stream};
use crate::{
    approvals::UnixMillis,
    policy::{
        AgentIdentity, CompiledPolicySet, HttpRequest, McpCall, PolicyStore,
        Request as PolicyRequest, Tier,
        gateway::{ActionRoute, Compensation, fill_path, path_params},
    },
};

/// What triggering a compensation needs: the open entries, the policy in
/// force (the compensating call is decided like any other), the agent and
/// the upstream.
pub(crate) struct Trigger<'a> {
    pub(crate) compensations: &'a Compensations,
    pub(crate) policy: &'a PolicyStore,
    pub(crate) identity: &'a AgentIdentity,
    pub(crate) upstream: &'a Upstream,
}

/// What the compensating call needs from the original one.
#[derive(Clone, Debug, Serialize)]
pub struct Original {
    /// `{name}` values of the original path.
    pub path_params: HashMap<String, String>,
    /// The original JSON body (MCP: arguments); only the compensation's
    /// `carry` fields are kept when it is registered.
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
    /// The compensating call as it would be sent without a trigger body:
    /// HTTP `method`, `path` and `body`; MCP `tool`, the `arguments` carried
    /// from the original call and the `result` values it may take. Shown to
    /// the owner in the supervised notice and the list.
    pub request: Value,
    /// The original call's whole JSON body (MCP: arguments), as the agent
    /// sent it, for the owner; only `request` is ever sent.
    pub input: Value,
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
    /// The policy in force halts the compensating call (tier 4). Nothing
    /// was sent; it may be triggered again once the policy allows it.
    #[error("{0}; nothing was sent")]
    Refused(String),
}

/// The compensable calls of one gateway.
#[derive(Default)]
pub struct Compensations {
    inner: Mutex<HashMap<String, Compensable>>,
}

impl Compensations {
    /// Remembers a forwarded call of `tool.action` (to `host:port`) that
    /// `comp` compensates; returns its entry. Of the original body only the
    /// `carry` fields are kept.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register(
        &self,
        policy: &CompiledPolicySet,
        tool: &str,
        action: &str,
        comp: &Compensation,
        host: &str,
        port: u16,
        mut original: Original,
    ) -> Compensable {
        let now = UnixMillis::now();
        let input = original.body.clone().unwrap_or(Value::Null);
        original.body = Some(Value::Object(carried(original.body.as_ref(), &comp.carry)));
        let request = preview(policy, tool, &comp.action, &original);
        let entry = Compensable {
            id: format!("cmp_{:032x}", rand::rng().random::<u128>()),
            tool: tool.into(),
            action: action.into(),
            compensation: comp.action.to_string(),
            host: host.into(),
            port,
            until: now.plus(comp.window),
            triggered: false,
            request,
            input,
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

/// The value of path segment `{name}`: from the original path, else from
/// the original JSON answer's top-level fields.
fn path_value(orig: &Original, name: &str) -> Option<String> {
    if let Some(v) = orig.path_params.get(name) {
        return Some(v.clone());
    }
    match orig.response.as_ref()?.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `carry` fields of the original body (MCP: arguments).
fn carried(body: Option<&Value>, carry: &[std::sync::Arc<str>]) -> serde_json::Map<String, Value> {
    carry
        .iter()
        .filter_map(|f| Some((f.to_string(), body?.get(f.as_ref())?.clone())))
        .collect()
}

/// The compensating call as the owner is shown it (see
/// [`Compensable::request`]).
fn preview(policy: &CompiledPolicySet, tool: &str, comp: &str, orig: &Original) -> Value {
    match policy.action_route(tool, comp) {
        Some(ActionRoute::Http { method, path }) => json!({
            "method": method,
            "path": fill_path(path, &|name| path_value(orig, name))
                .unwrap_or_else(|e| format!("{path} (cannot be filled: {e})")),
            "body": orig.body,
        }),
        Some(ActionRoute::Mcp(name)) => json!({
            "tool": name,
            "arguments": orig.body,
            "result": orig.response,
        }),
        None => Value::Null,
    }
}

/// Decides the compensating `request` like any call: it must be recognised
/// as exactly the declared compensating action (a value that would turn
/// the undo into another route is refused), and a policy that halts it
/// (tier 4) stops it. A `deny` or tier 3 does not: `deny` keeps the agent
/// from calling the action itself, and the owner's trigger is the human
/// decision tier 3 asks for.
fn decide(
    gw: &Trigger<'_>,
    policy: &CompiledPolicySet,
    entry: &Compensable,
    request: &PolicyRequest,
) -> Result<(), CompensationError> {
    let action = policy.action_from_request(gw.identity.clone(), request);
    let recognised = (action.tool.as_deref(), action.action.as_deref());
    if recognised != (Some(entry.tool.as_str()), Some(entry.compensation.as_str())) {
        return Err(CompensationError::Build(format!(
            "the compensating request is recognised as {}.{}, not the declared compensation {}.{}; nothing was sent",
            recognised.0.unwrap_or("(no tool)"),
            recognised.1.unwrap_or("(undeclared action)"),
            entry.tool,
            entry.compensation
        )));
    }
    let decision = policy.decide(&action);
    tracing::info!(id = %entry.id, tool = %entry.tool, action = %entry.compensation, tier = %decision.tier.as_str(), rules = ?decision.rules.iter().map(|r| &*r.id).collect::<Vec<_>>(), "compensation decided");
    if decision.tier == Tier::Halt {
        return Err(CompensationError::Refused(format!(
            "the policy in force halts the compensating call: {}",
            decision.reason
        )));
    }
    Ok(())
}

/// Decides the compensating `tools/call` of MCP tool `name` with
/// `arguments` (see [`decide`]).
pub(super) fn decide_mcp(
    gw: &Trigger<'_>,
    policy: &CompiledPolicySet,
    entry: &Compensable,
    endpoint: &str,
    name: &str,
    arguments: &serde_json::Map<String, Value>,
) -> Result<(), CompensationError> {
    let server = policy
        .inspected(&entry.host)
        .and_then(|h| h.mcp.iter().find(|m| m.path == endpoint))
        .map(|m| m.server.clone())
        .ok_or_else(|| CompensationError::Build("the MCP endpoint is no longer declared".into()))?;
    let request = PolicyRequest::Mcp(McpCall {
        server,
        tool: name.to_string(),
        arguments: Value::Object(arguments.clone()),
    });
    decide(gw, policy, entry, &request)
}

/// Sends one request of a compensation to `entry`'s tool host with the
/// tool's credential and reads the answer (within the upstream timeout and
/// the body limit): in full, or for an SSE answer of an MCP server, until
/// the responses to the JSON-RPC ids in `awaited` are in. A request that
/// cannot be built is [`CompensationError::Build`]; a failure to send or
/// to read the answer is `failed(what went wrong)`.
async fn exchange(
    gw: &Trigger<'_>,
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
    let resp = match gw
        .upstream
        .send(policy, &entry.host, entry.port, tool, parts, body)
        .await
    {
        Ok(resp) => resp,
        Err(r) => return Err(failed(r.message)),
    };
    let (parts, body) = resp.into_parts();
    let event_stream = !awaited.is_empty() && is_event_stream(&parts.headers);
    // The unread rest of a stream left open is dropped with it.
    match gw.upstream.read_answer(body, event_stream, awaited).await {
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
