//! What can be wrong with an MCP message, the JSON-RPC code that says so,
//! and the JSON-RPC error response that carries it.

use serde_json::{Map, Value, json};

/// JSON-RPC 2.0 "Parse error": the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0 "Invalid Request": JSON, but not a JSON-RPC 2.0 message.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0 "Invalid params": a known method with unusable parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0 "Internal error": here, an upstream answer the gateway
/// cannot read.
pub const INTERNAL_ERROR: i64 = -32603;

/// An MCP body or message the gateway cannot use.
///
/// [`McpError::code`] gives the JSON-RPC error code to answer with, and
/// the message (`to_string()`) is fit to send back to the agent: it names
/// what is wrong and what a valid message looks like, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// The agent's body is not JSON at all.
    #[error(
        "MCP request body is not valid JSON (line {line}, column {column}: {reason}); \
         send one JSON-RPC 2.0 message or a non-empty JSON array of them"
    )]
    Parse {
        /// What the JSON parser said.
        reason: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// JSON, but not a valid JSON-RPC 2.0 message (or batch).
    #[error("invalid JSON-RPC 2.0 request{}: {reason}", at_index(*.index))]
    InvalidRequest {
        /// Position in the batch, when the body is a batch.
        index: Option<usize>,
        /// What is wrong and what is expected instead.
        reason: String,
    },
    /// A known method (`tools/call`) whose `params` are unusable.
    #[error("invalid params for {method}: {reason}")]
    InvalidParams {
        /// The method, e.g. `tools/call`.
        method: String,
        /// What is wrong and what is expected instead.
        reason: String,
    },
    /// The upstream MCP server's answer cannot be read, so refusals cannot
    /// be merged into it or `tools/list` cannot be filtered.
    #[error("upstream MCP answer cannot be used: {reason}; check the upstream server")]
    Upstream {
        /// What is wrong with the answer.
        reason: String,
    },
}

fn at_index(index: Option<usize>) -> String {
    index.map_or_else(String::new, |i| format!(" at batch index {i}"))
}

impl McpError {
    /// The JSON-RPC error code for this error: -32700 (parse error),
    /// -32600 (invalid request), -32602 (invalid params) or -32603
    /// (internal error, for an unreadable upstream answer).
    pub fn code(&self) -> i64 {
        match self {
            McpError::Parse { .. } => PARSE_ERROR,
            McpError::InvalidRequest { .. } => INVALID_REQUEST,
            McpError::InvalidParams { .. } => INVALID_PARAMS,
            McpError::Upstream { .. } => INTERNAL_ERROR,
        }
    }

    /// A JSON-RPC error response carrying this error, for the message with
    /// `id` (`null` when the id is unknown, as for a parse error).
    pub fn to_response(&self, id: Option<&serde_json::Value>) -> serde_json::Value {
        error_object(id, self.code(), &self.to_string(), serde_json::Value::Null)
    }

    pub(super) fn invalid(index: Option<usize>, reason: impl Into<String>) -> Self {
        McpError::InvalidRequest {
            index,
            reason: reason.into(),
        }
    }
}

/// A JSON-RPC 2.0 error response: `{"jsonrpc": "2.0", "id": ..., "error":
/// {"code": ..., "message": ..., "data": ...}}`.
///
/// `id` is JSON `null` when `None` (the request's id is unknown, as for a
/// parse error). `data` is left out when it is `null`.
pub fn error_object(id: Option<&Value>, code: i64, message: &str, data: Value) -> Value {
    let mut error = Map::new();
    error.insert("code".to_owned(), Value::from(code));
    error.insert("message".to_owned(), Value::from(message));
    if !data.is_null() {
        error.insert("data".to_owned(), data);
    }
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": Value::Object(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_json_rpc() {
        let parse = McpError::Parse {
            reason: "EOF".into(),
            line: 1,
            column: 2,
        };
        assert_eq!(parse.code(), -32700);
        assert_eq!(McpError::invalid(None, "x").code(), -32600);
        let params = McpError::InvalidParams {
            method: "tools/call".into(),
            reason: "x".into(),
        };
        assert_eq!(params.code(), -32602);
        let upstream = McpError::Upstream { reason: "x".into() };
        assert_eq!(upstream.code(), -32603);
    }

    #[test]
    fn messages_say_where() {
        let err = McpError::invalid(Some(3), "missing \"jsonrpc\": \"2.0\"");
        assert_eq!(
            err.to_string(),
            "invalid JSON-RPC 2.0 request at batch index 3: missing \"jsonrpc\": \"2.0\""
        );
        let single = McpError::invalid(None, "not an object");
        assert_eq!(
            single.to_string(),
            "invalid JSON-RPC 2.0 request: not an object"
        );
    }

    #[test]
    fn to_response_has_code_and_null_id() {
        let err = McpError::invalid(None, "not an object");
        let response = err.to_response(None);
        assert_eq!(response["id"], serde_json::Value::Null);
        assert_eq!(response["error"]["code"], -32600);
        assert_eq!(response["jsonrpc"], "2.0");
    }
}
