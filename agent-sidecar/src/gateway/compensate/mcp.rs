//! Compensating through an MCP tool. The gateway opens an MCP session of
//! its own with the tool's server (Streamable HTTP, the endpoint the
//! original `tools/call` went to, the tool's credential), reads the
//! compensating tool's input schema from `tools/list`, fills its arguments
//! and calls it once, then ends the session.
//!
//! Each argument the schema declares comes from, in this order: the
//! trigger's JSON body, the original call's arguments that the
//! compensation's `carry` names, the original result's `structuredContent`. Nothing is sent to the compensating tool
//! until every required argument has a value.

use bytes::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Map, Value, json};

use super::{
    entries::Compensable,
    error::CompensationError,
    exchange::{Trigger, decide_mcp, exchange},
};
use crate::{gateway::mcp, policy::CompiledPolicySet};

/// The protocol revision the gateway asks for; the server may answer with
/// another one it supports, which the session then uses.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// The header repeating the negotiated revision on later requests.
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
/// Most `tools/list` pages read while looking for the compensating tool.
const MAX_LIST_PAGES: usize = 20;

/// Calls MCP tool `tool` of `entry`'s server as the compensation of
/// `entry`, with `extra` (the trigger's body) first in line for its
/// arguments. Returns the HTTP status and the JSON-RPC `result` (or
/// `error`) of the `tools/call`.
pub(super) async fn call(
    gw: &Trigger<'_>,
    policy: &CompiledPolicySet,
    entry: &Compensable,
    tool: &str,
    extra: Map<String, Value>,
) -> Result<(u16, Value), CompensationError> {
    let endpoint = entry.original.endpoint.as_deref().ok_or_else(|| {
        CompensationError::Build("the original call did not go to an MCP endpoint".into())
    })?;
    let mut session = Session {
        gw,
        policy,
        entry,
        endpoint,
        id: None,
        version: None,
        next_id: 0,
    };
    let outcome = session.compensate(tool, extra).await;
    session.close().await;
    outcome
}

/// One MCP session of the gateway with a tool's server.
struct Session<'a> {
    gw: &'a Trigger<'a>,
    policy: &'a CompiledPolicySet,
    entry: &'a Compensable,
    endpoint: &'a str,
    /// `Mcp-Session-Id` the server assigned, if any.
    id: Option<String>,
    /// The negotiated protocol revision.
    version: Option<String>,
    next_id: u64,
}

impl Session<'_> {
    async fn compensate(
        &mut self,
        tool: &str,
        extra: Map<String, Value>,
    ) -> Result<(u16, Value), CompensationError> {
        let init = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "agent-sidecar", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
            .await?;
        self.version = init
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (status, _, _) = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        if !status.is_success() {
            return Err(self.unreachable(format!(
                "answered `notifications/initialized` with HTTP {status}"
            )));
        }
        let schema = self.input_schema(tool).await?;
        let original = &self.entry.original;
        let arguments = fill_arguments(
            tool,
            &schema,
            extra,
            original.body.as_ref(),
            original.response.as_ref(),
        )?;
        decide_mcp(
            self.gw,
            self.policy,
            self.entry,
            self.endpoint,
            tool,
            &arguments,
        )?;
        let message = self.message("tools/call", json!({"name": tool, "arguments": arguments}));
        let (status, headers, body) = self.post(&message).await.map_err(sent)?;
        let answer = answer(&headers, &body, &message["id"]).ok_or_else(|| {
            CompensationError::Upstream(format!(
                "the MCP server answered the compensating `tools/call` with HTTP {status} and no JSON-RPC response"
            ))
        })?;
        let outcome = answer
            .get("result")
            .or_else(|| answer.get("error"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok((status.as_u16(), outcome))
    }

    /// The `inputSchema` of `tool`, from the server's `tools/list`.
    async fn input_schema(&mut self, tool: &str) -> Result<Value, CompensationError> {
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = cursor.map_or_else(|| json!({}), |c| json!({"cursor": c}));
            let list = self.request("tools/list", params).await?;
            let found = list
                .get("tools")
                .and_then(Value::as_array)
                .and_then(|tools| {
                    tools
                        .iter()
                        .find(|t| t.get("name").and_then(Value::as_str) == Some(tool))
                });
            if let Some(t) = found {
                return Ok(t.get("inputSchema").cloned().unwrap_or(Value::Null));
            }
            cursor = list
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Err(CompensationError::Build(format!(
            "the MCP server of tool `{}` does not list the compensating tool `{tool}`",
            self.entry.tool
        )))
    }

    /// Sends request `method` and returns its `result`; anything else
    /// (transport failure, HTTP error, JSON-RPC error) is an error that
    /// leaves the compensation untriggered: the compensating tool was not
    /// called.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, CompensationError> {
        let message = self.message(method, params);
        let (status, headers, body) = self.post(&message).await?;
        if method == "initialize" {
            self.id = headers
                .get(mcp::SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        let Some(answer) = answer(&headers, &body, &message["id"]) else {
            return Err(self.unreachable(format!(
                "answered `{method}` with HTTP {status} and no JSON-RPC response"
            )));
        };
        if let Some(result) = answer.get("result") {
            return Ok(result.clone());
        }
        Err(self.unreachable(format!(
            "answered `{method}` with the error {}",
            answer.get("error").unwrap_or(&Value::Null)
        )))
    }

    fn message(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
    }

    /// POSTs one message to the endpoint; returns the answer's status,
    /// headers and body.
    async fn post(
        &self,
        message: &Value,
    ) -> Result<(StatusCode, HeaderMap, Bytes), CompensationError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(id) = &self.id {
            req = req.header(mcp::SESSION_HEADER, id);
        }
        if let Some(v) = &self.version {
            req = req.header(PROTOCOL_HEADER, v);
        }
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        let awaited: Vec<Value> = message.get("id").cloned().into_iter().collect();
        self.send(req, body, &awaited).await
    }

    /// Ends the session (`DELETE`), if the server gave one; failures only
    /// leave it to the server's own expiry.
    async fn close(&self) {
        let Some(id) = &self.id else { return };
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(self.endpoint)
            .header(mcp::SESSION_HEADER, id);
        if let Err(e) = self.send(req, Bytes::new(), &[]).await {
            tracing::debug!(error = %e, "ending the compensation's MCP session");
        }
    }

    async fn send(
        &self,
        req: hyper::http::request::Builder,
        body: Bytes,
        awaited: &[Value],
    ) -> Result<(StatusCode, HeaderMap, Bytes), CompensationError> {
        let failed = |e: String| self.unreachable(format!("failed: {e}"));
        exchange(self.gw, self.policy, self.entry, req, body, awaited, failed).await
    }

    fn unreachable(&self, what: String) -> CompensationError {
        CompensationError::NotSent(format!(
            "the MCP server of tool `{}` ({}:{}{}) {what}",
            self.entry.tool, self.entry.host, self.entry.port, self.endpoint
        ))
    }
}

/// A failure of the `tools/call` itself: the tool may have run.
fn sent(e: CompensationError) -> CompensationError {
    match e {
        CompensationError::NotSent(m) => CompensationError::Upstream(m),
        other => other,
    }
}

/// The JSON-RPC response to `id` in an answer (JSON or SSE).
fn answer(headers: &HeaderMap, body: &[u8], id: &Value) -> Option<Value> {
    mcp::response_to(&mcp::answer_messages(headers, body), id).cloned()
}

/// The compensating tool's arguments: each property of `schema` from
/// `extra`, else `arguments`, else `result`. A schema without properties
/// takes `arguments` with `extra` merged over them. Unknown names in
/// `extra` and required properties without a value are errors.
pub(super) fn fill_arguments(
    tool: &str,
    schema: &Value,
    extra: Map<String, Value>,
    arguments: Option<&Value>,
    result: Option<&Value>,
) -> Result<Map<String, Value>, CompensationError> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        let mut out = arguments
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        out.extend(extra);
        return Ok(out);
    };
    if let Some(unknown) = extra.keys().find(|k| !properties.contains_key(*k)) {
        return Err(CompensationError::Build(format!(
            "the compensating tool `{tool}` takes no argument `{unknown}`; it takes: {}",
            properties.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let from = |source: Option<&Value>, name: &str| source.and_then(|s| s.get(name)).cloned();
    let mut out = Map::new();
    for name in properties.keys() {
        let value = extra
            .get(name)
            .cloned()
            .or_else(|| from(arguments, name))
            .or_else(|| from(result, name));
        if let Some(v) = value {
            out.insert(name.clone(), v);
        }
    }
    let missing: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| !out.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(CompensationError::Build(format!(
            "the compensating tool `{tool}` needs {}, which neither the original call's arguments nor its result carry; give them in the trigger's JSON body",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "batch_id": {"type": "string"},
            "customer_ids": {"type": "array"},
            "status": {"type": "string"},
            "note": {"type": "string"}
        }, "required": ["batch_id", "customer_ids", "status"]})
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn arguments_come_from_the_trigger_then_the_call_then_its_result() {
        let args = json!({"customer_ids": ["c-1"], "status": "vip", "other": 1});
        let result = json!({"batch_id": "b-7", "status": "vip", "updated": 1});
        let out = fill_arguments(
            "restore",
            &schema(),
            obj(json!({"status": "active"})),
            Some(&args),
            Some(&result),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"batch_id": "b-7", "customer_ids": ["c-1"], "status": "active"}),
            "only declared properties; optional `note` left out"
        );
    }

    #[test]
    fn missing_and_unknown_arguments_are_refused_before_anything_is_sent() {
        let e = fill_arguments(
            "restore",
            &schema(),
            Map::new(),
            Some(&json!({"status": "x"})),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, CompensationError::Build(_)));
        let text = e.to_string();
        assert!(
            text.contains("`batch_id`, `customer_ids`") && text.contains("trigger's JSON body"),
            "{text}"
        );
        let e = fill_arguments("restore", &schema(), obj(json!({"bogus": 1})), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no argument `bogus`") && e.contains("batch_id"),
            "{e}"
        );
    }

    #[test]
    fn a_schema_without_properties_takes_the_original_arguments() {
        let out = fill_arguments(
            "undo",
            &json!({"type": "object"}),
            obj(json!({"reason": "owner"})),
            Some(&json!({"id": 4})),
            None,
        )
        .unwrap();
        assert_eq!(Value::Object(out), json!({"id": 4, "reason": "owner"}));
    }
}
