//! Fuzzes the gateway's MCP JSON-RPC handling of an agent's POST body and
//! of an upstream's JSON answer: `parse_body` and every accessor the
//! gateway decides with, the re-encoding of a batch after refusals
//! (`without`: the upstream must get exactly the values the gateway
//! decided on), the idempotency key, `merge_json` and `tools/list`
//! filtering (no tool the agent may not call survives).
//!
//! Seeds: `fuzz/corpus/mcp_jsonrpc/`.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run mcp_jsonrpc corpus/mcp_jsonrpc
//! ```
#![no_main]

use agent_sidecar::gateway::mcp::{
    POLICY_DENIED, answer_messages, error_object, filter_tools_list, idempotency_key, merge_json,
    parse_body, without,
};
use hyper::{HeaderMap, header};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The tools the fuzzed agent may call: names starting with `a`.
fn allowed(name: &str) -> bool {
    name.starts_with('a')
}

fuzz_target!(|data: &[u8]| {
    agent_body(data);
    upstream_answer(data);
});

fn agent_body(data: &[u8]) {
    let Ok(envelope) = parse_body(data) else {
        return;
    };
    assert!(!envelope.items.is_empty());
    let mut calls = Vec::new();
    for m in &envelope.items {
        let kinds = [m.is_request(), m.is_notification(), m.is_response()];
        assert!(kinds.iter().filter(|k| **k).count() <= 1, "{:?}", m.value());
        let _ = m.method();
        if let Some(id) = m.id() {
            if let Some(key) = idempotency_key(Some("session"), id) {
                assert!(key.starts_with("mcp:session:"));
            }
        }
        calls.push(m.tool_call().ok().flatten());
    }
    // The gateway refuses every other message and forwards the rest,
    // re-encoded: the upstream must read back exactly what was decided on.
    let drop: Vec<usize> = (0..envelope.items.len()).step_by(2).collect();
    match without(&envelope, &drop) {
        None => assert!(envelope.items.len() <= 1),
        Some(body) => {
            let again = parse_body(&body).expect("a forwarded body parses again");
            let kept: Vec<usize> = (1..envelope.items.len()).step_by(2).collect();
            assert_eq!(again.items.len(), kept.len());
            assert_eq!(again.batch, envelope.batch);
            for (m, &i) in again.items.iter().zip(&kept) {
                assert_eq!(m.value(), envelope.items[i].value());
                assert_eq!(m.tool_call().ok().flatten(), calls[i]);
            }
        }
    }
}

fn upstream_answer(data: &[u8]) {
    let mut json = HeaderMap::new();
    json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    let messages = answer_messages(&json, data);
    let refusal = error_object(Some(&Value::from(7)), POLICY_DENIED, "denied", Value::Null);
    if let Ok(merged) = merge_json(data, std::slice::from_ref(&refusal)) {
        let merged: Value = serde_json::from_slice(&merged).expect("a merged answer is JSON");
        let items = merged
            .as_array()
            .expect("a merged answer with a refusal is a batch");
        assert_eq!(items.last(), Some(&refusal));
        assert_eq!(items.len(), messages.len() + 1);
    }
    let Ok(mut answer) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    filter_tools_list(&mut answer, allowed);
    if let Some(tools) = answer.pointer("/result/tools").and_then(Value::as_array) {
        for tool in tools {
            let name = tool.get("name").and_then(Value::as_str);
            assert!(
                name.is_some_and(allowed),
                "a tool survived the filter: {tool}"
            );
        }
    }
}
