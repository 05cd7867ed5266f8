//! MCP answers sent as a `text/event-stream` (Server-Sent Events).
//!
//! The parser follows the WHATWG "interpreting an event stream" rules
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>):
//! lines end with CRLF, LF or a lone CR; a blank line dispatches the event;
//! lines starting with `:` are comments; a field's value follows the first
//! colon, less one leading space; `data` lines join with LF. It works on
//! raw byte spans rather than decoded events, so every event the gateway
//! does not rewrite, and every comment, `id:`, `retry:` and `event:` line,
//! reaches the agent byte for byte.
//!
//! The functions work on pieces of a stream cut at event boundaries, so
//! they never treat a UTF-8 byte order mark specially: a client skips a BOM
//! only as the stream's very first bytes, and one later is part of a line
//! (a field named `\u{FEFF}data` is not `data`). The stream's leading BOM
//! is removed once, before any piece is looked at, by [`strip_stream_bom`]
//! (the gateway never sends it on: it prepends its own events to streams).
//! (The maintained SSE crates, such as
//! `eventsource-stream` or `sse-stream`, decode events and so cannot give
//! the untouched bytes back.)

use bytes::Bytes;
use serde_json::Value;

use super::McpError;
use super::tools::filter_answer;

/// UTF-8 byte order mark, ignored once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What to do with the first bytes of an event stream, `start` (all that
/// arrived so far), about its byte order mark: `None` while `start` could
/// still be the beginning of one (wait for more bytes), else how many
/// leading bytes to drop (3 for a BOM, else 0). Once answered, the rest of
/// the stream is read without another look.
pub fn strip_stream_bom(start: &[u8]) -> Option<usize> {
    if start.len() < BOM.len() && BOM.starts_with(start) {
        None
    } else if start.starts_with(BOM) {
        Some(BOM.len())
    } else {
        Some(0)
    }
}

/// Encodes JSON-RPC messages as SSE events, `event: message\ndata:
/// <json>\n\n` each, as MCP servers send them, so the gateway can send its
/// own answers (refusals) before streaming the upstream's events.
pub fn sse_events(items: &[Value]) -> Bytes {
    let mut out = Vec::with_capacity(items.len() * 96);
    for item in items {
        // Compact JSON never holds a raw CR or LF, so one data line is enough.
        out.extend_from_slice(b"event: message\ndata: ");
        out.extend_from_slice(item.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    Bytes::from(out)
}

/// Filters the `tools/list` answers in an SSE body: the events whose
/// JSON-RPC response (or batch of responses) has an `id` in `ids` get
/// their `data` rewritten with [`filter_tools_list`](super::filter_tools_list);
/// every other byte of the stream is kept as it was.
///
/// A rewritten event keeps its other lines (`event:`, `id:`, `retry:`,
/// comments) and line endings; its `data` lines become one. An event left
/// unfinished at the end of `body` (no blank line yet) is copied
/// unchanged: clients discard it, and a gateway filtering a stream chunk by
/// chunk should pass only [`complete_prefix_len`] bytes at a time.
///
/// Fails with [`McpError::Upstream`] when the stream is not UTF-8, as an
/// event stream always is: the agent's client would decode such bytes
/// differently from the gateway, so the gateway refuses to guess.
pub fn filter_sse_tools_list(
    body: &[u8],
    ids: &[Value],
    allowed: impl Fn(&str) -> bool,
) -> Result<Vec<u8>, McpError> {
    if std::str::from_utf8(body).is_err() {
        return Err(McpError::Upstream {
            reason: "its text/event-stream body is not UTF-8".to_owned(),
        });
    }
    let mut out = Vec::with_capacity(body.len());
    let mut event: Vec<RawLine<'_>> = Vec::new();
    for line in lines(body) {
        if !line.content.is_empty() || !line.terminated {
            event.push(line);
            continue;
        }
        // A blank line: dispatch.
        if event.is_empty() {
            out.extend_from_slice(line.raw);
        } else {
            write_event(&mut out, &event, ids, &allowed);
            out.extend_from_slice(line.raw);
            event.clear();
        }
    }
    // An unfinished event: never dispatched by a client, copied as is.
    for line in &event {
        out.extend_from_slice(line.raw);
    }
    Ok(out)
}

/// What to do with one event's JSON message ([`rewrite_sse_messages`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
    /// Pass the event as it came.
    Keep,
    /// Leave the event out.
    Drop,
    /// Pass the event with this message as its data.
    Replace(Value),
}

/// Passes each complete event of `body` whose data is JSON through
/// `decide`; events without data (comments, `id:`/`retry:` only) are
/// kept, events whose data is not JSON are dropped (no client can read a
/// JSON-RPC message from them). An unfinished event at the end is copied
/// as it is (pass only [`complete_prefix_len`] bytes to decide on
/// everything). Fails when the stream is not UTF-8.
pub fn rewrite_sse_messages(
    body: &[u8],
    mut decide: impl FnMut(Value) -> Rewrite,
) -> Result<Vec<u8>, McpError> {
    if std::str::from_utf8(body).is_err() {
        return Err(McpError::Upstream {
            reason: "its text/event-stream body is not UTF-8".to_owned(),
        });
    }
    let mut out = Vec::with_capacity(body.len());
    let mut event: Vec<RawLine<'_>> = Vec::new();
    for line in lines(body) {
        if !line.content.is_empty() || !line.terminated {
            event.push(line);
            continue;
        }
        if event.is_empty() {
            out.extend_from_slice(line.raw);
            continue;
        }
        let rewrite = match event_data(&event) {
            None => Rewrite::Keep,
            Some(data) => match serde_json::from_slice::<Value>(&data) {
                Ok(v) => decide(v),
                Err(_) => Rewrite::Drop,
            },
        };
        match rewrite {
            Rewrite::Keep => event.iter().for_each(|l| out.extend_from_slice(l.raw)),
            Rewrite::Drop => {
                event.clear();
                continue;
            }
            Rewrite::Replace(v) => {
                let mut wrote_data = false;
                for l in &event {
                    if !is_data(l) {
                        out.extend_from_slice(l.raw);
                    } else if !wrote_data {
                        wrote_data = true;
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(v.to_string().as_bytes());
                        out.extend_from_slice(&l.raw[l.content.len()..]);
                    }
                }
            }
        }
        out.extend_from_slice(line.raw);
        event.clear();
    }
    for line in &event {
        out.extend_from_slice(line.raw);
    }
    Ok(out)
}

/// How many leading bytes of `buf` form complete events (each closed by a
/// blank line), so a gateway streaming an SSE answer can filter and send
/// those and keep the rest until more bytes arrive. 0 when there is none.
pub fn complete_prefix_len(buf: &[u8]) -> usize {
    let mut len = 0;
    let mut end = 0;
    for line in lines(buf) {
        end += line.raw.len();
        if line.terminated && line.content.is_empty() {
            len = end;
        }
    }
    len
}

/// One line of the stream: its content and, in `raw`, the content with its
/// line ending.
#[derive(Debug, Clone, Copy)]
struct RawLine<'a> {
    content: &'a [u8],
    raw: &'a [u8],
    /// False for a last line that has no line ending yet.
    terminated: bool,
}

/// The lines of `body`, each ending at CRLF, LF or a lone CR.
fn lines(body: &[u8]) -> impl Iterator<Item = RawLine<'_>> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let line = match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => RawLine {
                content: rest,
                raw: rest,
                terminated: false,
            },
            Some(at) => {
                let ending = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                RawLine {
                    content: &rest[..at],
                    raw: &rest[..at + ending],
                    terminated: true,
                }
            }
        };
        rest = &rest[line.raw.len()..];
        Some(line)
    })
}

/// A field line's name and value, or `None` for a comment.
fn field(content: &[u8]) -> Option<(&[u8], &[u8])> {
    if content.first() == Some(&b':') {
        return None;
    }
    Some(match content.iter().position(|&b| b == b':') {
        None => (content, &[][..]),
        Some(at) => {
            let value = &content[at + 1..];
            (&content[..at], value.strip_prefix(b" ").unwrap_or(value))
        }
    })
}

fn is_data(line: &RawLine<'_>) -> bool {
    matches!(field(line.content), Some((b"data", _)))
}

/// Writes one complete event (without its closing blank line), filtered
/// when it answers one of `ids`, else unchanged.
fn write_event(
    out: &mut Vec<u8>,
    event: &[RawLine<'_>],
    ids: &[Value],
    allowed: &dyn Fn(&str) -> bool,
) {
    if let Some(json) = filtered_data(event, ids, allowed) {
        let mut wrote_data = false;
        for line in event {
            if !is_data(line) {
                out.extend_from_slice(line.raw);
            } else if !wrote_data {
                wrote_data = true;
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(json.as_bytes());
                out.extend_from_slice(&line.raw[line.content.len()..]);
            }
        }
    } else {
        for line in event {
            out.extend_from_slice(line.raw);
        }
    }
}

/// The event's data re-encoded with tools removed, or `None` when the
/// event has no data, is not JSON, answers none of `ids` or loses no tool.
fn filtered_data(
    event: &[RawLine<'_>],
    ids: &[Value],
    allowed: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let mut answer: Value = serde_json::from_slice(&event_data(event)?).ok()?;
    if filter_answer(&mut answer, ids, allowed) == 0 {
        return None;
    }
    Some(answer.to_string())
}

/// The event's `data` lines joined with LF, or `None` when it has none.
fn event_data(event: &[RawLine<'_>]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in event {
        if let Some((b"data", value)) = field(line.content) {
            match &mut data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            }
        }
    }
    data
}

/// The JSON values carried by the dispatched events of an SSE body, in
/// order, as a client decodes them: events without data or whose data is
/// not JSON are skipped, and so is an event left unfinished at the end.
pub fn sse_messages(body: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut event: Vec<RawLine<'_>> = Vec::new();
    for line in lines(body) {
        if !line.content.is_empty() || !line.terminated {
            event.push(line);
            continue;
        }
        if let Some(v) = event_data(&event).and_then(|d| serde_json::from_slice(&d).ok()) {
            out.push(v);
        }
        event.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn listing(id: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
            {"name": "search", "inputSchema": {"type": "object"}},
            {"name": "delete_repo", "inputSchema": {"type": "object"}}
        ]}})
    }

    /// Everything but `delete_repo` (and no grant requests).
    fn no_delete(name: &str) -> bool {
        name != "delete_repo" && name != "request_access"
    }

    #[test]
    fn sse_events_encoding() {
        let items = [
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "refusé ✋\nline"}}),
        ];
        let bytes = sse_events(&items);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("event: message\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"));
        assert_eq!(
            text.matches('\n').count(),
            3,
            "JSON escapes its newline: {text}"
        );
        let events = sse_messages(&bytes);
        assert_eq!(events[0], items[0]);
        assert!(sse_events(&[]).is_empty());
    }

    #[test]
    fn messages_of_a_stream() {
        let result = json!({"jsonrpc": "2.0", "id": 3, "result": {"structuredContent": {"batch_id": "b-7"}}});
        let body = format!(
            "\u{feff}: ping\r\n\r\nevent: message\r\ndata: {{\"jsonrpc\":\r\ndata: \"2.0\",\"method\":\"notifications/progress\"}}\r\n\r\ndata: not json\n\nid: 9\n\nevent: message\ndata: {result}\n\ndata: {result}"
        );
        assert_eq!(
            sse_messages(body.as_bytes()),
            [
                json!({"jsonrpc": "2.0", "method": "notifications/progress"}),
                result
            ],
            "multi-line data joined, comments, non-JSON, data-less and unfinished events skipped"
        );
        assert!(sse_messages(b"").is_empty());
    }

    #[test]
    fn python_sdk_stream_with_crlf() {
        // As the MCP Python SDK (sse-starlette) writes: CRLF endings, a ping
        // comment, `event: message`, one data line.
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 0.5}});
        let body = format!(
            ": ping - 2025-01-01 00:00:00\r\n\r\nevent: message\r\ndata: {progress}\r\n\r\nevent: message\r\nid: 42\r\ndata: {}\r\n\r\n",
            listing(json!(7))
        );
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(7)], no_delete).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, last) = text.split_at(text.rfind("event: message\r\nid: 42").unwrap());
        assert_eq!(
            head,
            &body[..head.len()],
            "events before are byte-identical"
        );
        assert!(
            last.starts_with("event: message\r\nid: 42\r\ndata: {"),
            "{last}"
        );
        assert!(last.ends_with("}\r\n\r\n"), "{last:?}");
        let events = sse_messages(text.as_bytes());
        assert_eq!(events.len(), 2);
        let answer = &events[1];
        assert_eq!(
            answer["result"]["tools"],
            json!([{"name": "search", "inputSchema": {"type": "object"}}])
        );
    }

    #[test]
    fn other_ids_and_non_json_are_byte_identical() {
        let body = format!(
            "event: message\ndata: {}\n\ndata: not json\n\nretry: 3000\n\n: comment\nevent: endpoint\ndata: /messages?session=1\n\n",
            listing(json!(8))
        );
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(7)], no_delete).unwrap();
        assert_eq!(out, body.as_bytes());
        // with nothing to remove or add, even the matching event is untouched
        let all_but_grants = |n: &str| n != "request_access";
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(8)], all_but_grants).unwrap();
        assert_eq!(out, body.as_bytes());
    }

    #[test]
    fn multi_line_data_and_mixed_endings() {
        let pretty = serde_json::to_string_pretty(&listing(json!("a"))).unwrap();
        let data: String = pretty.lines().map(|l| format!("data:{l}\r")).collect();
        let body = format!(": hello\nid: 5\n{data}retry: 10\n\r\n");
        let out = filter_sse_tools_list(body.as_bytes(), &[json!("a")], no_delete).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected_json = {
            let mut v = listing(json!("a"));
            v["result"]["tools"].as_array_mut().unwrap().pop();
            v.to_string()
        };
        assert_eq!(
            text,
            format!(": hello\nid: 5\ndata: {expected_json}\rretry: 10\n\r\n")
        );
    }

    #[test]
    fn lone_cr_endings() {
        let body = format!("event: message\rdata: {}\r\r", listing(json!(1)));
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(1)], no_delete).unwrap();
        let events = sse_messages(&out);
        assert_eq!(events.len(), 1);
        let answer = &events[0];
        assert_eq!(answer["result"]["tools"].as_array().unwrap().len(), 1);
        assert!(out.ends_with(b"\r\r"));
    }

    #[test]
    fn batch_answer_in_one_event() {
        let batch = json!([listing(json!(1)), listing(json!(2))]);
        let body = format!("data: {batch}\n\n");
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(2)], no_delete).unwrap();
        let answer = &sse_messages(&out)[0];
        assert_eq!(answer[0], listing(json!(1)));
        assert_eq!(answer[1]["result"]["tools"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn unfinished_event_kept() {
        let body = format!("data: {}\n\ndata: {}", listing(json!(1)), listing(json!(1)));
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(1)], no_delete).unwrap();
        let text = String::from_utf8(out).unwrap();
        let tail = format!("\n\ndata: {}", listing(json!(1)));
        assert!(text.ends_with(&tail), "unfinished event unchanged: {text}");
        assert!(!text[..text.len() - tail.len()].contains("delete_repo"));
    }

    #[test]
    fn only_the_streams_first_bytes_can_be_a_bom() {
        assert_eq!(strip_stream_bom(b""), None);
        assert_eq!(strip_stream_bom(b"\xEF\xBB"), None);
        assert_eq!(strip_stream_bom(b"\xEF\xBB\xBFdata: 1\n\n"), Some(3));
        assert_eq!(strip_stream_bom(b"\xEFdata"), Some(0));
        assert_eq!(strip_stream_bom(b"data: 1\n\n"), Some(0));
        // Later in the stream (a piece after the first), a BOM is part of
        // the line, as a client reads it: `\u{FEFF}data` is not `data`.
        // Found by the mcp_sse fuzz target: the gateway read a message
        // there that the agent's client does not see.
        let piece = format!("\u{feff}data: {}\n\ndata: [1]\n\n", listing(json!(1)));
        assert_eq!(sse_messages(piece.as_bytes()), vec![json!([1])]);
        assert_eq!(complete_prefix_len(piece.as_bytes()), piece.len());
        let mut seen = Vec::new();
        let out = rewrite_sse_messages(piece.as_bytes(), |v| {
            seen.push(v);
            Rewrite::Keep
        })
        .unwrap();
        assert_eq!(seen, vec![json!([1])]);
        assert_eq!(out, piece.as_bytes());
    }

    #[test]
    fn data_field_forms() {
        // "data" without colon is an empty data line; "data:x" has no space
        // to strip; a field named "database" is not data.
        assert_eq!(field(b"data"), Some((&b"data"[..], &b""[..])));
        assert_eq!(field(b"data:x"), Some((&b"data"[..], &b"x"[..])));
        assert_eq!(field(b"data:  x"), Some((&b"data"[..], &b" x"[..])));
        assert_eq!(field(b": c"), None);
        let body = format!("database: 1\ndata: {}\n\n", listing(json!(1)));
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(1)], no_delete).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("database: 1\ndata: {")
        );
    }

    #[test]
    fn unicode_tools_survive() {
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "搜索", "description": "Recherche d’été 🚀"},
            {"name": "supprimer"}
        ]}});
        let body = format!("event: message\r\ndata: {answer}\r\n\r\n");
        let out = filter_sse_tools_list(body.as_bytes(), &[json!(1)], |n| n == "搜索").unwrap();
        let events = sse_messages(&out);
        let filtered = &events[0];
        assert_eq!(
            filtered["result"]["tools"],
            json!([{"name": "搜索", "description": "Recherche d’été 🚀"}])
        );
    }

    #[test]
    fn non_utf8_stream_is_refused() {
        let err = filter_sse_tools_list(b"data: \xff\n\n", &[json!(1)], |_| true).unwrap_err();
        assert_eq!(err.code(), -32603);
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn complete_prefix() {
        assert_eq!(complete_prefix_len(b""), 0);
        assert_eq!(complete_prefix_len(b"data: 1\n"), 0);
        assert_eq!(complete_prefix_len(b"data: 1\n\n"), 9);
        assert_eq!(complete_prefix_len(b"data: 1\n\ndata: 2\n"), 9);
        assert_eq!(complete_prefix_len(b"data: 1\r\n\r\ndata"), 11);
        assert_eq!(complete_prefix_len(b": ping\r\n\r\n"), 10);
        // chunk-wise filtering gives the same bytes as filtering the whole
        let body = format!(
            "event: message\r\ndata: {}\r\n\r\n: ping\r\n\r\nevent: message\r\ndata: {}\r\n\r\n",
            listing(json!(1)),
            listing(json!(2))
        );
        let whole =
            filter_sse_tools_list(body.as_bytes(), &[json!(1), json!(2)], no_delete).unwrap();
        let mut chunked = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for chunk in body.as_bytes().chunks(7) {
            pending.extend_from_slice(chunk);
            let n = complete_prefix_len(&pending);
            let ready: Vec<u8> = pending.drain(..n).collect();
            chunked
                .extend(filter_sse_tools_list(&ready, &[json!(1), json!(2)], no_delete).unwrap());
        }
        chunked.extend(pending);
        assert_eq!(chunked, whole);
    }
}
