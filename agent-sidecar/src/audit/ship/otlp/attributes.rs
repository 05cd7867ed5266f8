//! What the OTLP payloads share: the parsed record, the resource and
//! scope, attribute builders and id encoding.

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value as Any},
    resource::v1::Resource,
};

use crate::audit::{record::AuditRecord, ship::reader::StoredLine};

/// The instrumentation scope of what the shipper sends.
pub const SCOPE: &str = "agent-sidecar.audit";
/// Attribute naming the audit record (its id): what collectors
/// de-duplicate on (`log.record.uid` in the OpenTelemetry conventions).
pub const RECORD_UID: &str = "log.record.uid";

/// A stored line and its parsed record.
pub struct Parsed<'a> {
    /// The stored line.
    pub stored: &'a StoredLine,
    /// The record it holds.
    pub record: AuditRecord,
}

/// The resource every payload names: `service.name` `agent-sidecar`, its
/// version, and `service.instance.id` when known.
pub fn resource(instance: Option<&str>) -> Resource {
    let mut attributes = vec![
        kv("service.name", "agent-sidecar"),
        kv("service.version", env!("CARGO_PKG_VERSION")),
    ];
    if let Some(i) = instance {
        attributes.push(kv("service.instance.id", i));
    }
    Resource {
        attributes,
        ..Resource::default()
    }
}

pub(super) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..InstrumentationScope::default()
    }
}

/// A string attribute.
pub(crate) fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
    }
}

/// An integer attribute.
pub(crate) fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(Any::IntValue(value)),
        }),
    }
}

/// A boolean attribute.
pub(crate) fn kv_bool(key: &str, value: bool) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(Any::BoolValue(value)),
        }),
    }
}

/// A string-array attribute.
pub(crate) fn kv_strings(key: &str, values: &[String]) -> KeyValue {
    KeyValue {
        key: key.into(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(Any::ArrayValue(
                opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: values
                        .iter()
                        .map(|v| AnyValue {
                            value: Some(Any::StringValue(v.clone())),
                        })
                        .collect(),
                },
            )),
        }),
    }
}

/// Hex (trace and span ids) to bytes of the expected length, or empty.
pub(crate) fn id_bytes(hex: &str, len: usize) -> Vec<u8> {
    if hex.len() != len * 2 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(len);
    for pair in hex.as_bytes().chunks(2) {
        let s = std::str::from_utf8(pair).ok();
        match s.and_then(|s| u8::from_str_radix(s, 16).ok()) {
            Some(b) => out.push(b),
            None => return Vec::new(),
        }
    }
    if out.iter().all(|&b| b == 0) {
        return Vec::new(); // all-zero ids are invalid
    }
    out
}
