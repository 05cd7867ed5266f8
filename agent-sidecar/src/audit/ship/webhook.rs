//! The webhook payload and its signature, in the Standard Webhooks style:
//! the body is the batch's stored record lines (JSON lines, each exactly
//! as stored), `webhook-id` names the batch (the same on every retry),
//! `webhook-timestamp` is the Unix time of the attempt and
//! `webhook-signature` is `v1,` then base64 of HMAC-SHA256 over
//! `id.timestamp.body` with the secret's bytes.

use super::reader::StoredLine;

/// The media type of the body.
pub const JSON_LINES: &str = "application/x-ndjson";

/// The body of a batch: each stored line then a newline.
pub fn body(lines: &[StoredLine]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.line.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(&l.line);
        out.push(b'\n');
    }
    out
}

/// The `webhook-id` of a batch: `msg_` then the first record's id and
/// the number of records (stable across retries of the same batch).
pub fn message_id(first_record_id: &str, count: usize) -> String {
    format!("msg_{first_record_id}_{count}")
}

pub use crate::webhook::signature;
