//! Reading an MCP server's answer to a POST, whichever form it takes: one
//! JSON-RPC message, a JSON batch, or an SSE stream of messages.

use hyper::{HeaderMap, header};
use serde_json::Value;

use super::{sse_messages, strip_stream_bom};

/// Whether an answer with these headers is an SSE stream
/// (`Content-Type: text/event-stream`).
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The JSON-RPC messages of an answer body with `headers`, batches
/// flattened, in order. A body that is not valid JSON (or an SSE stream
/// without JSON events) yields none.
pub fn answer_messages(headers: &HeaderMap, body: &[u8]) -> Vec<Value> {
    let values = if is_event_stream(headers) {
        sse_messages(&body[strip_stream_bom(body).unwrap_or(0)..])
    } else {
        serde_json::from_slice(body).map_or_else(|_| Vec::new(), |v| vec![v])
    };
    flatten_batches(values)
}

/// `values` with every batch (a JSON array) replaced by its elements.
pub(super) fn flatten_batches(values: Vec<Value>) -> Vec<Value> {
    values
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items,
            one => vec![one],
        })
        .collect()
}

/// The response (a message with `result` or `error`) to request `id`.
pub fn response_to<'a>(messages: &'a [Value], id: &Value) -> Option<&'a Value> {
    messages.iter().find(|m| {
        m.get("id") == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn typed(content_type: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn json_batches_and_streams() {
        let one = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        let two = json!({"jsonrpc": "2.0", "id": "b", "error": {"code": -1, "message": "x"}});
        let batch = serde_json::to_vec(&json!([one, two])).unwrap();
        assert_eq!(
            answer_messages(&typed("application/json"), &batch),
            [one.clone(), two.clone()]
        );
        assert_eq!(
            answer_messages(&HeaderMap::new(), one.to_string().as_bytes()),
            std::slice::from_ref(&one)
        );
        let stream = format!("event: message\ndata: {one}\n\n");
        assert_eq!(
            answer_messages(
                &typed("text/event-stream; charset=utf-8"),
                stream.as_bytes()
            ),
            std::slice::from_ref(&one)
        );
        assert!(answer_messages(&typed("application/json"), b"{oops").is_empty());

        let notice =
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"id": 1}});
        let all = [notice, one.clone(), two.clone()];
        assert_eq!(response_to(&all, &json!(1)), Some(&one));
        assert_eq!(response_to(&all, &json!("b")), Some(&two));
        assert_eq!(response_to(&all, &json!(2)), None);
    }
}
