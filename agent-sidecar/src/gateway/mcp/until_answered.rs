//! Reading an MCP server's answer only as far as the gateway needs it.
//!
//! A server may answer a POST with an SSE stream and keep that stream open
//! after its responses (for later notifications and server-to-client
//! requests; the Streamable HTTP transport allows it). A gateway that read
//! such a stream to its end would keep the agent waiting until the upstream
//! timeout. [`read_until_answered`] stops as soon as every awaited response
//! is in complete events and hands back the unread rest of the body, which
//! then streams to the agent untouched.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;
use serde_json::Value;

use super::{answer::flatten_batches, complete_prefix_len, sse_messages, strip_stream_bom};

/// An upstream answer the gateway could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The part of the answer the gateway has to inspect is larger than
    /// the limit.
    #[error(
        "the upstream's answer is larger than {limit} bytes before its responses are complete; \
         the gateway inspects at most that much"
    )]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The awaited responses did not arrive within the time allowed.
    #[error("the upstream's responses did not arrive within {0:?}")]
    Timeout(Duration),
    /// The connection failed or the body was malformed.
    #[error("the upstream's answer could not be read: {0}")]
    Read(String),
}

/// What was read of an answer, and the body's unread rest.
pub struct ReadAnswer<B> {
    /// The bytes read, in order: for an SSE stream, every awaited response
    /// is in complete events of these bytes (unless the stream ended
    /// first), possibly followed by the start of a later event.
    pub head: Bytes,
    /// The body's unread rest; `None` once the body has ended.
    pub rest: Option<B>,
}

/// Reads `body` until every request id in `ids` has a response (a message
/// with `result` or `error`, batches looked into) in complete SSE events,
/// when `event_stream` is true; else (a JSON answer) to its end. Reading
/// stops earlier when the body ends. `limit` bounds the bytes read and
/// `timeout` the whole read.
pub async fn read_until_answered<B>(
    mut body: B,
    event_stream: bool,
    ids: &[Value],
    limit: usize,
    timeout: Duration,
) -> Result<ReadAnswer<B>, AnswerError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(AnswerError::TooLarge { limit });
    }
    let read = async {
        let mut pending: Vec<&Value> = ids.iter().collect();
        let mut buf = BytesMut::new();
        let mut scanned = 0;
        let mut bom_checked = false;
        loop {
            if event_stream && pending.is_empty() {
                return Ok(ReadAnswer {
                    head: buf.freeze(),
                    rest: Some(body),
                });
            }
            let Some(frame) = body.frame().await else {
                return Ok(ReadAnswer {
                    head: buf.freeze(),
                    rest: None,
                });
            };
            let frame = frame.map_err(|e| AnswerError::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if buf.len() + data.len() > limit {
                return Err(AnswerError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
            if !event_stream {
                continue;
            }
            // The stream's byte order mark, if any, is skipped once.
            if !bom_checked {
                let Some(bom) = strip_stream_bom(&buf) else {
                    continue;
                };
                scanned = bom;
                bom_checked = true;
            }
            // Complete events start and end on event boundaries, so each
            // new run of them is decoded on its own.
            let complete = scanned + complete_prefix_len(&buf[scanned..]);
            if complete > scanned {
                for message in flatten_batches(sse_messages(&buf[scanned..complete])) {
                    if message.get("result").is_some() || message.get("error").is_some() {
                        pending.retain(|id| message.get("id") != Some(*id));
                    }
                }
                scanned = complete;
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| AnswerError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, pin::Pin};

    use futures_util::{Stream, StreamExt as _, stream};
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;
    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    type Chunk = Result<Frame<Bytes>, Infallible>;
    type Chunks = StreamBody<Pin<Box<dyn Stream<Item = Chunk> + Send>>>;

    /// A body fed chunk by chunk that stays open while the sender lives.
    fn open_body() -> (mpsc::Sender<Chunk>, Chunks) {
        let (tx, rx) = mpsc::channel(16);
        let chunks = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        (tx, StreamBody::new(Box::pin(chunks)))
    }

    async fn send(tx: &mpsc::Sender<Chunk>, text: &str) {
        tx.send(Ok(Frame::data(Bytes::copy_from_slice(text.as_bytes()))))
            .await
            .unwrap();
    }

    fn event(v: &Value) -> String {
        format!("event: message\r\ndata: {v}\r\n\r\n")
    }

    #[tokio::test]
    async fn stops_once_every_awaited_response_is_complete() {
        let (tx, body) = open_body();
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}});
        let one = json!({"jsonrpc": "2.0", "id": 1, "result": {"structuredContent": {"n": 1}}});
        let two = json!({"jsonrpc": "2.0", "id": "b", "error": {"code": -1, "message": "no"}});
        let later = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}});
        let first = event(&one);
        // A notice, then the first response split across two chunks, the
        // second response in a batch and the start of a later event.
        send(&tx, &event(&progress)).await;
        send(&tx, &first[..10]).await;
        send(&tx, &first[10..]).await;
        send(&tx, &format!("{}: keep", event(&json!([two])))).await;
        let ids = [json!(1), json!("b")];
        let read = read_until_answered(body, true, &ids, 1 << 20, SECOND)
            .await
            .expect("answered while the stream stays open");
        let head = std::str::from_utf8(&read.head).unwrap();
        assert!(
            head.starts_with(&event(&progress)) && head.ends_with(": keep"),
            "{head}"
        );
        // The rest streams on, byte for byte.
        send(&tx, &format!("-alive\n\n{}", event(&later))).await;
        drop(tx);
        let rest = BodyExt::collect(read.rest.expect("the rest of the stream"))
            .await
            .unwrap();
        assert_eq!(rest.to_bytes(), format!("-alive\n\n{}", event(&later)));
    }

    #[tokio::test]
    async fn a_stream_without_the_responses_is_read_to_its_end_or_times_out() {
        let (tx, body) = open_body();
        send(
            &tx,
            &event(&json!({"jsonrpc": "2.0", "id": 2, "result": {}})),
        )
        .await;
        let err = read_until_answered(body, true, &[json!(1)], 1 << 20, SECOND / 10)
            .await
            .err();
        assert_eq!(err, Some(AnswerError::Timeout(SECOND / 10)));

        let (tx, body) = open_body();
        send(&tx, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}").await;
        drop(tx);
        let read = read_until_answered(body, true, &[json!(1)], 1 << 20, SECOND)
            .await
            .expect("an ended stream is an answer");
        assert!(read.rest.is_none());
        assert!(read.head.ends_with(b"{}}"), "the unfinished event is kept");
    }

    #[tokio::test]
    async fn the_streams_bom_is_skipped_once_and_a_later_one_is_part_of_a_line() {
        let (tx, body) = open_body();
        let one = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        // A leading BOM in a chunk of its own, then a response.
        send(&tx, "\u{feff}").await;
        send(&tx, &event(&one)).await;
        let read = read_until_answered(body, true, &[json!(1)], 1 << 20, SECOND)
            .await
            .expect("the response after the BOM is read");
        assert!(read.rest.is_some(), "answered while the stream stays open");
        // Later, a BOM makes `\u{feff}data` a field no client reads: the
        // response behind it is not the answer.
        let (tx, body) = open_body();
        send(
            &tx,
            &event(&json!({"jsonrpc": "2.0", "method": "notifications/progress"})),
        )
        .await;
        send(&tx, &format!("\u{feff}data: {one}\r\n\r\n")).await;
        let err = read_until_answered(body, true, &[json!(1)], 1 << 20, SECOND / 10)
            .await
            .err();
        assert_eq!(err, Some(AnswerError::Timeout(SECOND / 10)));
    }

    #[tokio::test]
    async fn json_is_read_whole_and_limits_hold() {
        let text = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let read =
            read_until_answered(Full::new(Bytes::from(text)), false, &[json!(1)], 64, SECOND)
                .await
                .unwrap();
        assert_eq!(read.head, text);
        assert!(read.rest.is_none());
        assert_eq!(
            read_until_answered(Full::new(Bytes::from(text)), false, &[], 8, SECOND)
                .await
                .err(),
            Some(AnswerError::TooLarge { limit: 8 }),
            "a declared length over the limit"
        );
        let chunks = stream::iter(["data: {}\n\n", "data: {}\n\n"])
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from(c))));
        assert_eq!(
            read_until_answered(StreamBody::new(chunks), true, &[json!(1)], 15, SECOND)
                .await
                .err(),
            Some(AnswerError::TooLarge { limit: 15 }),
            "a streamed length over the limit"
        );
    }
}
