//! Parsing an agent's MCP body into JSON-RPC messages.

use serde_json::{Map, Value};

use super::McpError;

/// The method name of an MCP tool call.
pub const TOOLS_CALL: &str = "tools/call";
/// The method name of an MCP tool listing.
pub const TOOLS_LIST: &str = "tools/list";

/// A parsed MCP POST body: one message, or a batch (a JSON array).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Whether the body was a JSON array; a batch is answered by an array
    /// even when only one answer is left.
    pub batch: bool,
    /// The messages, in body order (one for a non-batch body).
    pub items: Vec<Message>,
}

/// One JSON-RPC 2.0 message, validated and kept as its raw JSON value.
///
/// Clients send requests (`method` and `id`), notifications (`method`, no
/// `id`) and, answering server requests such as sampling, responses
/// (`result` or `error`, and `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    value: Value,
}

/// The tool an MCP `tools/call` request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// `params.name`: the tool's name.
    pub name: String,
    /// `params.arguments`: the call's arguments, `{}` when absent or null.
    pub arguments: Value,
}

/// Parses an MCP POST body: a single JSON-RPC 2.0 message or a non-empty
/// batch of them.
///
/// Fails with [`McpError::Parse`] (-32700) when the body is not JSON and
/// with [`McpError::InvalidRequest`] (-32600) when it is not JSON-RPC 2.0:
/// not an object, `jsonrpc` other than `"2.0"`, an `id` that is not a
/// string, number or null, a `method` that is not a string, `params` that
/// are neither object nor array, a response without exactly one of
/// `result` and `error`, or an empty batch. One bad message fails the whole
/// batch: the gateway decides on every message it forwards.
pub fn parse_body(body: &[u8]) -> Result<Envelope, McpError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| McpError::Parse {
        reason: e.to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    match value {
        Value::Array(values) => {
            if values.is_empty() {
                return Err(McpError::invalid(
                    None,
                    "the batch is an empty array; a batch must hold at least one message",
                ));
            }
            let items = values
                .into_iter()
                .enumerate()
                .map(|(i, v)| Message::new(v, Some(i)))
                .collect::<Result<_, _>>()?;
            Ok(Envelope { batch: true, items })
        }
        value => Ok(Envelope {
            batch: false,
            items: vec![Message::new(value, None)?],
        }),
    }
}

impl Message {
    /// Validates `value` as a JSON-RPC 2.0 message; `index` is its position
    /// in a batch, for the error message.
    fn new(value: Value, index: Option<usize>) -> Result<Self, McpError> {
        let Value::Object(object) = &value else {
            return Err(McpError::invalid(
                index,
                format!("expected a JSON object, found {}", kind(&value)),
            ));
        };
        validate(object).map_err(|reason| McpError::invalid(index, reason))?;
        Ok(Message { value })
    }

    /// The message as received.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The message as received, by value.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// The message's `id`: present on requests and responses, absent on
    /// notifications. May be JSON `null`.
    pub fn id(&self) -> Option<&Value> {
        self.value.get("id")
    }

    /// The method of a request or notification; `None` for a response.
    pub fn method(&self) -> Option<&str> {
        self.value.get("method").and_then(Value::as_str)
    }

    /// Whether this is a request: a method and an id, so an answer is due.
    pub fn is_request(&self) -> bool {
        self.method().is_some() && self.id().is_some()
    }

    /// Whether this is a notification: a method and no id, so no answer.
    pub fn is_notification(&self) -> bool {
        self.method().is_some() && self.id().is_none()
    }

    /// Whether this is a response (to a request the server sent).
    pub fn is_response(&self) -> bool {
        self.method().is_none()
    }

    /// The tool call, when this message is a `tools/call` request.
    ///
    /// `Ok(None)` for any other message. Fails with
    /// [`McpError::InvalidParams`] (-32602) when `params.name` is not a
    /// string or `params.arguments` is neither an object nor absent/null.
    pub fn tool_call(&self) -> Result<Option<ToolCall>, McpError> {
        if self.method() != Some(TOOLS_CALL) {
            return Ok(None);
        }
        let invalid = |reason: &str| McpError::InvalidParams {
            method: TOOLS_CALL.to_owned(),
            reason: reason.to_owned(),
        };
        let params = self.value.get("params");
        let name = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid("params.name must be the tool's name as a string, e.g. {\"name\": \"search\", \"arguments\": {}}")
            })?;
        let arguments = match params.and_then(|p| p.get("arguments")) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(args @ Value::Object(_)) => args.clone(),
            Some(_) => {
                return Err(invalid(
                    "params.arguments must be a JSON object of argument names to values",
                ));
            }
        };
        Ok(Some(ToolCall {
            name: name.to_owned(),
            arguments,
        }))
    }
}

/// Checks the JSON-RPC 2.0 shape of one message object.
fn validate(object: &Map<String, Value>) -> Result<(), String> {
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(other) => {
            return Err(format!("\"jsonrpc\" must be \"2.0\", found {other}"));
        }
        None => return Err("missing \"jsonrpc\": \"2.0\"".to_owned()),
    }
    if let Some(id) = object.get("id")
        && !matches!(id, Value::String(_) | Value::Number(_) | Value::Null)
    {
        return Err(format!(
            "\"id\" must be a string, a number or null, found {}",
            kind(id)
        ));
    }
    match object.get("method") {
        Some(Value::String(_)) => {
            if let Some(params) = object.get("params")
                && !matches!(params, Value::Object(_) | Value::Array(_))
            {
                return Err(format!(
                    "\"params\" must be an object or an array, found {}",
                    kind(params)
                ));
            }
            Ok(())
        }
        Some(other) => Err(format!(
            "\"method\" must be a string, found {}",
            kind(other)
        )),
        None => {
            let result = object.contains_key("result");
            let error = object.contains_key("error");
            if result == error {
                return Err(
                    "a message needs a \"method\" (request or notification) or exactly one of \
                     \"result\" and \"error\" (response)"
                        .to_owned(),
                );
            }
            if !object.contains_key("id") {
                return Err("a response needs the \"id\" of the request it answers".to_owned());
            }
            Ok(())
        }
    }
}

/// The JSON type of `value`, for error messages (never the value itself).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn single_request() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}"#;
        let envelope = parse_body(body).unwrap();
        assert!(!envelope.batch);
        assert_eq!(envelope.items.len(), 1);
        let message = &envelope.items[0];
        assert!(message.is_request());
        assert_eq!(message.id(), Some(&json!(1)));
        assert_eq!(message.method(), Some("tools/call"));
        let call = message.tool_call().unwrap().unwrap();
        assert_eq!(call.name, "search");
        assert_eq!(call.arguments, json!({"q": "x"}));
    }

    #[test]
    fn batch_with_requests_notifications_and_responses() {
        let body = json!([
            {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "send_mail"}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 99, "result": {"content": []}},
            {"jsonrpc": "2.0", "id": null, "error": {"code": -1, "message": "no"}}
        ])
        .to_string();
        let envelope = parse_body(body.as_bytes()).unwrap();
        assert!(envelope.batch);
        let kinds: Vec<_> = envelope
            .items
            .iter()
            .map(|m| (m.is_request(), m.is_notification(), m.is_response()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (true, false, false),
                (false, true, false),
                (true, false, false),
                (false, false, true),
                (false, false, true),
            ]
        );
        let call = envelope.items[0].tool_call().unwrap().unwrap();
        assert_eq!(call.name, "send_mail");
        assert_eq!(call.arguments, json!({}));
        assert_eq!(envelope.items[1].id(), None);
        assert_eq!(envelope.items[1].tool_call().unwrap(), None);
        assert_eq!(envelope.items[2].tool_call().unwrap(), None);
        assert_eq!(envelope.items[4].id(), Some(&Value::Null));
    }

    #[test]
    fn batch_of_one_stays_a_batch() {
        let envelope = parse_body(br#"[{"jsonrpc":"2.0","method":"ping","id":0}]"#).unwrap();
        assert!(envelope.batch);
        assert_eq!(envelope.items.len(), 1);
    }

    #[test]
    fn invalid_json_is_parse_error() {
        for body in [
            &b""[..],
            b"{",
            b"{\"jsonrpc\":\"2.0\",}",
            b"\xff\xfe",
            b"nul",
        ] {
            let err = parse_body(body).unwrap_err();
            assert_eq!(err.code(), -32700, "{body:?}: {err}");
            assert!(err.to_string().contains("not valid JSON"), "{err}");
        }
    }

    #[test]
    fn non_json_rpc_is_invalid_request() {
        let cases: &[(&str, &str)] = &[
            ("[]", "empty array"),
            ("42", "found a number"),
            ("\"x\"", "found a string"),
            ("null", "found null"),
            (r#"{"id":1,"method":"ping"}"#, "missing \"jsonrpc\""),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                "must be \"2.0\"",
            ),
            (
                r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
                "must be \"2.0\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                "\"id\" must be",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
                "\"id\" must be",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                "\"method\" must be a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
                "\"params\"",
            ),
            (r#"{"jsonrpc":"2.0","id":1}"#, "exactly one of"),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
                "exactly one of",
            ),
            (r#"{"jsonrpc":"2.0","result":1}"#, "needs the \"id\""),
        ];
        for (body, needle) in cases {
            let err = parse_body(body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), -32600, "{body}: {err}");
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn bad_batch_member_names_its_index() {
        let body = br#"[{"jsonrpc":"2.0","method":"ping","id":1}, 5]"#;
        let err = parse_body(body).unwrap_err();
        assert_eq!(
            err,
            McpError::InvalidRequest {
                index: Some(1),
                reason: "expected a JSON object, found a number".into()
            }
        );
        assert!(err.to_string().contains("at batch index 1"));
    }

    #[test]
    fn tool_call_without_name_is_invalid_params() {
        for params in [
            json!(null),
            json!({}),
            json!({"name": 3}),
            json!(["search"]),
        ] {
            let mut message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"});
            if !params.is_null() {
                message["params"] = params.clone();
            }
            let envelope = parse_body(message.to_string().as_bytes()).unwrap();
            let err = envelope.items[0].tool_call().unwrap_err();
            assert_eq!(err.code(), -32602, "{params}");
            assert!(err.to_string().contains("params.name"), "{err}");
        }
    }

    #[test]
    fn tool_call_arguments() {
        let with = |args: Value| {
            let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "t", "arguments": args}});
            parse_body(message.to_string().as_bytes()).unwrap().items[0].tool_call()
        };
        assert_eq!(with(Value::Null).unwrap().unwrap().arguments, json!({}));
        assert_eq!(
            with(json!({"a": [1, 2]})).unwrap().unwrap().arguments,
            json!({"a": [1, 2]})
        );
        let err = with(json!("rm -rf /")).unwrap_err();
        assert_eq!(err.code(), -32602);
        assert!(err.to_string().contains("params.arguments"), "{err}");
    }

    #[test]
    fn unicode_names_and_arguments() {
        let body = r#"{"jsonrpc":"2.0","id":"élan-🚀","method":"tools/call","params":{"name":"résumé_搜索","arguments":{"q":"\u00e9t\u00e9 ☀","e":"👩‍👩‍👧"}}}"#;
        let envelope = parse_body(body.as_bytes()).unwrap();
        let message = &envelope.items[0];
        assert_eq!(message.id(), Some(&json!("élan-🚀")));
        let call = message.tool_call().unwrap().unwrap();
        assert_eq!(call.name, "résumé_搜索");
        assert_eq!(call.arguments["q"], "été ☀");
        assert_eq!(call.arguments["e"], "👩‍👩‍👧");
    }

    #[test]
    fn value_accessors_keep_the_message() {
        let raw = json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"extra": true}});
        let envelope = parse_body(raw.to_string().as_bytes()).unwrap();
        assert_eq!(envelope.items[0].value(), &raw);
        assert_eq!(envelope.items[0].clone().into_value(), raw);
    }
}
