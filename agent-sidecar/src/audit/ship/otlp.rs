//! OTLP/HTTP payloads (protobuf, from the `opentelemetry-proto`
//! definitions) built from stored audit records: a log record per audit
//! record ([`logs_request`]) and an `execute_tool` span per finished tool
//! call ([`traces_request`]), and the collector's partial-success answer.

use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use prost::Message as _;

mod attributes;
mod logs;
mod traces;

pub use attributes::{Parsed, RECORD_UID, SCOPE, resource};
pub use logs::logs_request;
pub use traces::traces_request;

/// The media type of OTLP/HTTP protobuf requests and answers.
pub const PROTOBUF: &str = "application/x-protobuf";
/// What a collector's 2xx answer said about the records it refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    /// Records (log records or spans) the collector rejected.
    pub rejected: i64,
    /// Its message (also sent alone as a warning).
    pub message: String,
}

/// Decodes the partial success of an OTLP logs answer (an empty or
/// undecodable body is full success).
pub fn logs_partial(body: &[u8]) -> PartialSuccess {
    ExportLogsServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map(|p| PartialSuccess {
            rejected: p.rejected_log_records,
            message: p.error_message,
        })
        .unwrap_or_default()
}

/// Decodes the partial success of an OTLP traces answer.
pub fn traces_partial(body: &[u8]) -> PartialSuccess {
    ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map(|p| PartialSuccess {
            rejected: p.rejected_spans,
            message: p.error_message,
        })
        .unwrap_or_default()
}

/// Encodes a logs request.
pub fn encode_logs(req: &ExportLogsServiceRequest) -> Vec<u8> {
    req.encode_to_vec()
}

/// Encodes a traces request.
pub fn encode_traces(req: &ExportTraceServiceRequest) -> Vec<u8> {
    req.encode_to_vec()
}

#[cfg(test)]
mod tests;
