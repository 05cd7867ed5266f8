//! MCP (Model Context Protocol) JSON-RPC 2.0 over Streamable HTTP, as the
//! gateway needs it (<https://modelcontextprotocol.io/specification>).
//!
//! An agent POSTs one JSON-RPC message or a batch; the gateway
//! [parses](parse_body) it, decides on every [`ToolCall`], forwards the
//! messages it allows ([`without`] the refused ones) and answers the
//! refused ones itself with [`error_object`] and one of the gateway's error
//! codes ([`POLICY_DENIED`]...). The upstream answers with JSON or with an
//! SSE stream; the refusals go into the first with [`merge_json`] and ahead
//! of the second with [`sse_events`]. `tools/list` answers are cut down to
//! the tools the agent may call ([`filter_tools_list`],
//! [`filter_sse_tools_list`]).
//!
//! Messages forwarded after a partial refusal are re-encoded from what the
//! gateway parsed: integers beyond 64 bits and floats come out as
//! `serde_json` writes an `f64`.

mod answer;
mod body;
mod error;
mod message;
mod sse;
mod tools;
mod until_answered;

use serde_json::Value;

pub use answer::{answer_messages, is_event_stream, response_to};
pub use body::{encode, merge_json, without};
pub use error::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, McpError, PARSE_ERROR, error_object,
};
pub use message::{Envelope, Message, TOOLS_CALL, TOOLS_LIST, ToolCall, parse_body};
pub use sse::{
    Rewrite, complete_prefix_len, filter_sse_tools_list, rewrite_sse_messages, sse_events,
    sse_messages, strip_stream_bom,
};
pub use tools::filter_tools_list;
pub use until_answered::{AnswerError, ReadAnswer, read_until_answered};

/// The HTTP header carrying the MCP session id (`Mcp-Session-Id`), which
/// the server assigns at initialization and the client repeats.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Gateway error code: the policy denies this call (tier "deny", or no
/// rule allows it). Retrying the same call will be denied again.
pub const POLICY_DENIED: i64 = -32001;
/// Gateway error code: the call needed a human approval and the approver
/// refused it.
pub const APPROVAL_DENIED: i64 = -32002;
/// Gateway error code: the call needed a human approval and none came in
/// time; the agent may ask again.
pub const APPROVAL_EXPIRED: i64 = -32003;
/// Gateway error code: the request (or one of its arguments) is larger than
/// the gateway accepts.
pub const TOO_LARGE: i64 = -32004;

/// The key under which a `tools/call` held for approval is remembered, so
/// that the agent's retry of the same request finds the same approval:
/// `mcp:<session>:<id as compact JSON>`, e.g. `mcp:abc:"req-1"` or
/// `mcp:abc:7`.
///
/// `None` without a session (or with an empty one) or when `id` is null,
/// an object or an array: such a request cannot be recognised again.
pub fn idempotency_key(session: Option<&str>, id: &Value) -> Option<String> {
    let session = session.filter(|s| !s.is_empty())?;
    match id {
        Value::String(_) | Value::Number(_) => Some(format!("mcp:{session}:{id}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn idempotency_keys() {
        assert_eq!(
            idempotency_key(Some("s1"), &json!(7)).as_deref(),
            Some("mcp:s1:7")
        );
        assert_eq!(
            idempotency_key(Some("s1"), &json!("7")).as_deref(),
            Some("mcp:s1:\"7\"")
        );
        assert_eq!(
            idempotency_key(Some("sé"), &json!("ü\"x")).as_deref(),
            Some("mcp:sé:\"ü\\\"x\"")
        );
        assert_eq!(idempotency_key(None, &json!(7)), None);
        assert_eq!(idempotency_key(Some(""), &json!(7)), None);
        assert_eq!(idempotency_key(Some("s1"), &Value::Null), None);
        assert_eq!(idempotency_key(Some("s1"), &json!({"a": 1})), None);
        assert_ne!(
            idempotency_key(Some("s1"), &json!(1)),
            idempotency_key(Some("s1"), &json!("1"))
        );
    }

    #[test]
    fn gateway_codes_are_server_defined() {
        // JSON-RPC reserves -32000..=-32099 for implementation-defined
        // server errors.
        for code in [POLICY_DENIED, APPROVAL_DENIED, APPROVAL_EXPIRED, TOO_LARGE] {
            assert!((-32099..=-32000).contains(&code), "{code}");
        }
        assert_eq!(SESSION_HEADER, "mcp-session-id");
    }

    #[test]
    fn gateway_flow_batch_with_refusal() {
        let body = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read"}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "wipe"}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"}
        ])
        .to_string();
        let envelope = parse_body(body.as_bytes()).unwrap();
        let mut refused = Vec::new();
        let mut refusals = Vec::new();
        for (i, message) in envelope.items.iter().enumerate() {
            if let Some(call) = message.tool_call().unwrap()
                && call.name == "wipe"
            {
                refused.push(i);
                refusals.push(error_object(
                    message.id(),
                    POLICY_DENIED,
                    "denied",
                    Value::Null,
                ));
            }
        }
        let forwarded = without(&envelope, &refused).unwrap();
        assert_eq!(parse_body(&forwarded).unwrap().items.len(), 2);
        let sse = sse_events(&refusals);
        assert!(std::str::from_utf8(&sse).unwrap().contains("\"id\":2"));
        let merged = merge_json(br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#, &refusals).unwrap();
        let merged: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(merged.as_array().unwrap().len(), 2);
        assert_eq!(merged[1]["error"]["code"], POLICY_DENIED);
    }
}
