//! Fuzzes the gateway's reading of an MCP server's `text/event-stream`
//! answer as it streams: the input is cut into chunks where the fuzzer
//! says, and each chunk goes through what the gateway runs on it
//! (the stream's byte order mark dropped, `complete_prefix_len`, then `filter_sse_tools_list` for `tools/list`
//! answers and `rewrite_sse_messages` for server requests).
//!
//! Properties: the messages the gateway decides on, chunk by chunk, are
//! exactly the messages a client reads from the whole stream; a `tools/list`
//! answer the agent reads never lists a tool it may not call; and events
//! the gateway keeps reach the client byte for byte.
//!
//! Input: one byte giving the first cut (as a fraction of the rest), one
//! giving the second, then the stream. Seeds: `fuzz/corpus/mcp_sse/`.
//!
//! ```sh
//! cd fuzz && cargo +nightly fuzz run mcp_sse corpus/mcp_sse
//! ```
#![no_main]

use agent_sidecar::gateway::mcp::{
    Rewrite, complete_prefix_len, filter_sse_tools_list, rewrite_sse_messages, sse_messages,
    strip_stream_bom,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn allowed(name: &str) -> bool {
    name.starts_with('a')
}

/// `body` cut at two points chosen by `a` and `b`.
fn chunks(body: &[u8], a: u8, b: u8) -> Vec<&[u8]> {
    let len = body.len();
    let mut cuts = [len * a as usize / 255, len * b as usize / 255];
    cuts.sort_unstable();
    vec![&body[..cuts[0]], &body[cuts[0]..cuts[1]], &body[cuts[1]..]]
}

/// Runs `step` on each run of complete events as the chunks arrive, the
/// way the gateway streams; returns what it sent on and what was left
/// unfinished at the end.
fn stream(
    parts: &[&[u8]],
    mut step: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        let n = complete_prefix_len(&buf);
        assert!(n <= buf.len());
        if n > 0 {
            let events: Vec<u8> = buf.drain(..n).collect();
            out.extend(step(&events)?);
        }
    }
    Some((out, buf))
}

fuzz_target!(|data: &[u8]| {
    let [a, b, body @ ..] = data else {
        return;
    };
    // The stream's byte order mark is dropped once, as the gateway does
    // before reading any event.
    let Some(bom) = strip_stream_bom(body) else {
        return;
    };
    let body = &body[bom..];
    let parts = chunks(body, *a, *b);
    let whole = sse_messages(body);

    // Server requests: every message the gateway sees, chunk by chunk.
    let mut decided = Vec::new();
    let kept = stream(&parts, |events| {
        rewrite_sse_messages(events, |v| {
            decided.push(v);
            Rewrite::Keep
        })
        .ok()
    });
    if let Some((out, unfinished)) = kept {
        assert_eq!(
            decided, whole,
            "the gateway saw other messages than a client reads"
        );
        // Keeping everything keeps the JSON events as they were.
        assert_eq!(sse_messages(&[out.as_slice(), &unfinished].concat()), whole);
    }

    // tools/list answers to ids 1 and "l": nothing disallowed gets through.
    let ids = [Value::from(1), Value::from("l")];
    let filtered = stream(&parts, |events| {
        filter_sse_tools_list(events, &ids, allowed).ok()
    });
    if let Some((out, _)) = filtered {
        for message in sse_messages(&out) {
            for m in message.as_array().cloned().unwrap_or_else(|| vec![message]) {
                let answers = m.get("id").is_some_and(|id| ids.contains(id));
                if !answers || m.get("method").is_some() {
                    continue;
                }
                let Some(tools) = m.pointer("/result/tools").and_then(Value::as_array) else {
                    continue;
                };
                for tool in tools {
                    let name = tool.get("name").and_then(Value::as_str);
                    assert!(name.is_some_and(allowed), "listed to the agent: {tool}");
                }
            }
        }
    }
});
