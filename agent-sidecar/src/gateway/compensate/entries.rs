//! The compensable calls of one gateway: what is kept of a forwarded call
//! whose action declares a `compensation`, until its window closes, and
//! the compensating call as the owner is shown it.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use rand::Rng as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::CompensationError;
use crate::{
    approvals::UnixMillis,
    policy::{
        CompiledPolicySet,
        gateway::{ActionRoute, Compensation, fill_path, path_params},
    },
    redaction::InputView,
};

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
    /// the owner in the supervised notice and the list, its carried fields
    /// as the policy's redaction keeps them (what is sent is kept apart).
    pub request: Value,
    /// The original call's JSON body (MCP: arguments) as the policy's
    /// redaction keeps it, for the owner.
    pub input: Value,
    #[serde(skip)]
    pub(super) original: Original,
}

/// The compensable calls of one gateway.
#[derive(Default)]
pub struct Compensations {
    inner: Mutex<HashMap<String, Compensable>>,
}

impl Compensations {
    /// Remembers a forwarded call of `tool.action` (to `host:port`) that
    /// `comp` compensates; returns its entry. Of the original body only the
    /// `carry` fields are kept; the owner is shown `input` (the body as
    /// the policy's redaction keeps it) and the carried fields of it.
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
        input: Option<&InputView>,
    ) -> Compensable {
        let now = UnixMillis::now();
        let input = input.map_or(Value::Null, |v| v.body.clone());
        original.body = Some(Value::Object(carried(original.body.as_ref(), &comp.carry)));
        let shown = Original {
            body: Some(Value::Object(carried(Some(&input), &comp.carry))),
            ..original.clone()
        };
        let request = preview(policy, tool, &comp.action, &shown);
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

    pub(super) fn claim(&self, id: &str) -> Result<Compensable, CompensationError> {
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
    pub(super) fn release(&self, id: &str) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get_mut(id) {
            e.triggered = false;
        }
    }
}

/// The value of path segment `{name}`: from the original path, else from
/// the original JSON answer's top-level fields.
pub(super) fn path_value(orig: &Original, name: &str) -> Option<String> {
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

/// The `{name}` values of `path` for the action's route.
pub(crate) fn params_of(route: Option<&ActionRoute>, path: &str) -> HashMap<String, String> {
    match route {
        Some(ActionRoute::Http { path: pattern, .. }) => path_params(pattern, path),
        _ => HashMap::new(),
    }
}
