//! [`Envelope`]: the JSON body every webhook event of the sidecar has.
//!
//! ```json
//! {"id": "evt_0193...", "event": "approval.pending", "schema_version": 1,
//!  "timestamp": "2026-12-04T13:45:12.345Z", ...the event's own fields}
//! ```
//!
//! `id` is unique per event and stays the same on every retry (and in the
//! `webhook-id` header): receivers de-duplicate on it. `event` names the
//! kind; `schema_version` changes when a kind's fields change
//! incompatibly; `timestamp` is when the event was made, RFC 3339 in UTC.

use rand::Rng as _;
use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The version of the envelope and of the events' fields.
pub const SCHEMA_VERSION: u32 = 1;

/// One event, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The event id (`evt_` then 32 hex digits: the creation time in
    /// milliseconds, then random bits), also the `webhook-id`.
    pub id: String,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl Envelope {
    /// Wraps `event`, a JSON object whose `event` field names its kind
    /// (anything else is carried under `data`), made at `at_ms` (Unix
    /// milliseconds). The envelope's fields replace fields of the same
    /// name in `event`.
    pub fn wrap(event: &Value, at_ms: i64) -> Envelope {
        let id = event_id(at_ms);
        let mut out = Map::new();
        out.insert("id".into(), Value::String(id.clone()));
        let fields = match event {
            Value::Object(m) => m.clone(),
            other => {
                let mut m = Map::new();
                m.insert("data".into(), other.clone());
                m
            }
        };
        out.insert(
            "event".into(),
            fields
                .get("event")
                .cloned()
                .unwrap_or_else(|| Value::String("unknown".into())),
        );
        out.insert("schema_version".into(), Value::from(SCHEMA_VERSION));
        out.insert("timestamp".into(), Value::String(rfc3339(at_ms)));
        for (k, v) in fields {
            out.entry(k).or_insert(v);
        }
        let body = serde_json::to_vec(&Value::Object(out)).expect("a JSON value encodes");
        Envelope { id, body }
    }
}

/// A new event id for an event made at `at_ms`: `evt_`, 12 hex digits of
/// the time in milliseconds, 20 random hex digits (ids sort by time).
pub fn event_id(at_ms: i64) -> String {
    let r: u128 = rand::rng().random();
    format!(
        "evt_{:012x}{:020x}",
        at_ms.max(0) as u64 & 0xffff_ffff_ffff,
        r >> 48
    )
}

/// `at_ms` (Unix milliseconds) as RFC 3339 in UTC, e.g.
/// `2026-12-04T13:45:12.345Z`.
pub fn rfc3339(at_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
