//! Building the bodies the gateway sends: refusals, forwarded subsets of a
//! batch, and upstream answers with the refusals merged in.

use serde_json::Value;

use super::{Envelope, McpError};

/// Encodes messages as a body: a JSON array when `batch` is true, the
/// single object otherwise.
///
/// An empty `items` gives an empty body: JSON-RPC answers a batch of
/// notifications with nothing, never with `[]`. A non-batch with several
/// items (a caller's mistake) is encoded as an array rather than lose any.
pub fn encode(batch: bool, items: &[Value]) -> Vec<u8> {
    match items {
        [] => Vec::new(),
        [single] if !batch => single.to_string().into_bytes(),
        items => {
            let mut out = Vec::with_capacity(items.len() * 64);
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(item.to_string().as_bytes());
            }
            out.push(b']');
            out
        }
    }
}

/// The body to forward upstream once the messages at positions `drop`
/// (refused by the gateway) are taken out; `None` when nothing is left.
///
/// A batch stays a batch, even with one message left. The kept messages are
/// re-encoded from the parsed values the gateway decided on, not copied from
/// the agent's bytes, so JSON with duplicate keys cannot mean one thing to
/// the gateway and another to the upstream. Indices out of range are
/// ignored.
pub fn without(envelope: &Envelope, drop: &[usize]) -> Option<Vec<u8>> {
    let kept: Vec<Value> = envelope
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, m)| m.value().clone())
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(encode(envelope.batch, &kept))
    }
}

/// Merges the gateway's own answers (`extra`, e.g. refusals) into the
/// upstream's JSON answer.
///
/// - upstream empty (only notifications were forwarded, answered with
///   202): the answer is `extra` as an array (this happens only for a
///   batch, which is answered by an array), or empty when `extra` is too;
/// - upstream an array (a batch answer): `extra` is appended;
/// - upstream an object: returned unchanged when `extra` is empty, else an
///   array of it followed by `extra`.
///
/// Fails with [`McpError::Upstream`] when the upstream answer is not JSON,
/// or is JSON but neither an object nor an array.
pub fn merge_json(upstream: &[u8], extra: &[Value]) -> Result<Vec<u8>, McpError> {
    if upstream.iter().all(u8::is_ascii_whitespace) {
        return Ok(encode(true, extra));
    }
    let value: Value = serde_json::from_slice(upstream).map_err(|e| McpError::Upstream {
        reason: format!("its body is not JSON ({e})"),
    })?;
    match value {
        Value::Object(_) if extra.is_empty() => Ok(upstream.to_vec()),
        Value::Object(_) => {
            let mut items = Vec::with_capacity(1 + extra.len());
            items.push(value);
            items.extend_from_slice(extra);
            Ok(encode(true, &items))
        }
        Value::Array(mut items) => {
            if extra.is_empty() {
                return Ok(upstream.to_vec());
            }
            items.extend_from_slice(extra);
            Ok(encode(true, &items))
        }
        _ => Err(McpError::Upstream {
            reason: "its JSON body is neither a JSON-RPC message (object) nor a batch (array)"
                .to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{POLICY_DENIED, error_object, parse_body};
    use super::*;

    fn batch() -> Envelope {
        parse_body(
            json!([
                {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read"}},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete"}},
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 0}}
            ])
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn error_object_shape() {
        let refusal = error_object(
            Some(&json!("req-1")),
            POLICY_DENIED,
            "denied by policy",
            json!({"rule": "no-delete"}),
        );
        assert_eq!(
            refusal,
            json!({"jsonrpc": "2.0", "id": "req-1", "error": {
                "code": -32001, "message": "denied by policy", "data": {"rule": "no-delete"}}})
        );
        let bare = error_object(None, -32700, "parse error", Value::Null);
        assert_eq!(
            bare,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}})
        );
    }

    #[test]
    fn encode_single_and_batch() {
        let a = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        assert_eq!(
            encode(false, std::slice::from_ref(&a)),
            a.to_string().into_bytes()
        );
        assert_eq!(
            encode(true, std::slice::from_ref(&a)),
            format!("[{a}]").into_bytes()
        );
        assert_eq!(encode(true, &[]), Vec::<u8>::new());
        assert_eq!(encode(false, &[]), Vec::<u8>::new());
        let two = encode(false, &[a.clone(), a.clone()]);
        assert_eq!(
            serde_json::from_slice::<Value>(&two).unwrap(),
            json!([a, a])
        );
    }

    #[test]
    fn without_drops_refused_items() {
        let envelope = batch();
        let forwarded = without(&envelope, &[1]).unwrap();
        let reparsed = parse_body(&forwarded).unwrap();
        assert!(reparsed.batch);
        assert_eq!(reparsed.items.len(), 2);
        assert_eq!(reparsed.items[0], envelope.items[0]);
        assert_eq!(reparsed.items[1], envelope.items[2]);
        // a batch of one stays a batch
        let one = without(&envelope, &[0, 1]).unwrap();
        assert!(parse_body(&one).unwrap().batch);
        assert_eq!(without(&envelope, &[0, 1, 2]), None);
        assert_eq!(
            without(&envelope, &[]).map(|b| parse_body(&b).unwrap()),
            Some(envelope.clone())
        );
        assert_eq!(
            without(&envelope, &[7]).map(|b| parse_body(&b).unwrap()),
            Some(envelope)
        );
    }

    #[test]
    fn without_single_message() {
        let envelope = parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!(without(&envelope, &[0]), None);
        let kept = without(&envelope, &[]).unwrap();
        assert!(!parse_body(&kept).unwrap().batch);
    }

    #[test]
    fn without_then_merge_round_trip() {
        let envelope = batch();
        let refusal = error_object(envelope.items[1].id(), POLICY_DENIED, "denied", Value::Null);
        let forwarded = without(&envelope, &[1]).unwrap();
        assert!(!forwarded.is_empty());
        // upstream answers the one request it saw
        let upstream = json!([{"jsonrpc": "2.0", "id": 1, "result": {"content": []}}]).to_string();
        let merged = merge_json(upstream.as_bytes(), std::slice::from_ref(&refusal)).unwrap();
        let merged: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(
            merged,
            json!([{"jsonrpc": "2.0", "id": 1, "result": {"content": []}}, refusal])
        );
    }

    #[test]
    fn merge_into_empty_body_for_notifications_only() {
        let refusal = error_object(Some(&json!(2)), POLICY_DENIED, "denied", Value::Null);
        let merged = merge_json(b"", std::slice::from_ref(&refusal)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&merged).unwrap(),
            json!([refusal])
        );
        assert_eq!(merge_json(b" \r\n", &[]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn merge_into_single_object() {
        let upstream = br#"{"jsonrpc":"2.0","id":1,"result":{"x":"\u00e9"}}"#;
        assert_eq!(merge_json(upstream, &[]).unwrap(), upstream.to_vec());
        let refusal = error_object(Some(&json!(2)), POLICY_DENIED, "denied", Value::Null);
        let merged = merge_json(upstream, std::slice::from_ref(&refusal)).unwrap();
        let merged: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(merged[0]["result"]["x"], "é");
        assert_eq!(merged[1], refusal);
    }

    #[test]
    fn merge_keeps_array_untouched_without_extra() {
        let upstream = b"[ {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}} ]";
        assert_eq!(merge_json(upstream, &[]).unwrap(), upstream.to_vec());
    }

    #[test]
    fn merge_rejects_unusable_upstream() {
        let err = merge_json(b"<html>502</html>", &[]).unwrap_err();
        assert_eq!(err.code(), -32603);
        assert!(err.to_string().contains("not JSON"), "{err}");
        let err = merge_json(b"\"ok\"", &[]).unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
    }
}
