//! The tool calls as OTLP spans, following the OpenTelemetry GenAI
//! semantic conventions for tool execution: one span per `tool_call`
//! record of phase `outcome` that carries a trace context, named
//! `execute_tool {gen_ai.tool.name}`, kind INTERNAL, with
//! `gen_ai.operation.name = execute_tool`, `gen_ai.tool.name`,
//! `gen_ai.tool.call.id` and `gen_ai.tool.type = extension`; its trace id,
//! span id and parent span id are the W3C trace context the gateway
//! propagated, so it joins the agent's own trace. It ends at the record's
//! time and starts `latency_us` before.

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode},
};

use super::{
    attributes::{Parsed, id_bytes, kv, scope},
    logs::record_attributes,
};
use crate::audit::record::{AuditRecord, OutcomeStatus, Phase, RecordKind};

/// The traces request of a batch; `None` when no record of it is a
/// finished tool call with a trace context.
pub fn traces_request(
    batch: &[Parsed<'_>],
    resource: &Resource,
) -> Option<ExportTraceServiceRequest> {
    let spans: Vec<Span> = batch.iter().filter_map(|p| span(&p.record)).collect();
    if spans.is_empty() {
        return None;
    }
    Some(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    })
}

/// The tool's name as the conventions want it: the MCP tool, else
/// `tool.action`, else the tool.
fn tool_name(r: &AuditRecord) -> Option<String> {
    let a = r.action.as_ref()?;
    if let Some(m) = a.target.as_ref().and_then(|t| t.mcp_tool.clone()) {
        return Some(m);
    }
    match (&a.tool, &a.name) {
        (Some(t), Some(n)) => Some(format!("{t}.{n}")),
        (Some(t), None) => Some(t.clone()),
        (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    }
}

/// The span of a finished tool call, if `r` is one.
pub(crate) fn span(r: &AuditRecord) -> Option<Span> {
    if r.kind != RecordKind::ToolCall || r.phase != Phase::Outcome {
        return None;
    }
    let trace = r.trace.as_ref()?;
    let trace_id = id_bytes(&trace.trace_id, 16);
    let span_id = id_bytes(&trace.span_id, 8);
    if trace_id.is_empty() || span_id.is_empty() {
        return None;
    }
    let parent_span_id = trace
        .parent_span_id
        .as_deref()
        .map(|p| id_bytes(p, 8))
        .unwrap_or_default();
    let tool = tool_name(r).unwrap_or_else(|| "unknown".into());
    let call_id = r
        .detail
        .as_ref()
        .and_then(|d| d.get("tool_call_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| trace.span_id.clone());
    let end = r.time.nanos().max(0) as u64;
    let latency_ns = r
        .outcome
        .as_ref()
        .and_then(|o| o.latency_us)
        .unwrap_or(0)
        .saturating_mul(1000);
    let mut attributes = vec![
        kv("gen_ai.operation.name", "execute_tool"),
        kv("gen_ai.tool.name", tool.clone()),
        kv("gen_ai.tool.call.id", call_id),
        kv("gen_ai.tool.type", "extension"),
    ];
    attributes.extend(record_attributes(r));
    let status = match r.outcome.as_ref().map(|o| o.status) {
        Some(OutcomeStatus::Success) => Status {
            message: String::new(),
            code: StatusCode::Ok as i32,
        },
        Some(s) => {
            let o = r.outcome.as_ref().expect("outcome present");
            attributes.push(kv(
                "error.type",
                o.upstream_status
                    .filter(|c| *c >= 400)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| s.as_str().to_string()),
            ));
            Status {
                message: o.error.clone().unwrap_or_else(|| s.as_str().to_string()),
                code: StatusCode::Error as i32,
            }
        }
        None => Status::default(),
    };
    Some(Span {
        trace_id,
        span_id,
        trace_state: String::new(),
        parent_span_id,
        flags: 0,
        name: format!("execute_tool {tool}"),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: end.saturating_sub(latency_ns),
        end_time_unix_nano: end,
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(status),
    })
}
