use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse},
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::KeyValue,
    common::v1::any_value::Value as Any,
    trace::v1::{span::SpanKind, status::StatusCode},
};
use prost::Message as _;

use super::{attributes::*, *};
use crate::audit::{
    hash::Hash,
    record::{AuditRecord, OutcomeStatus, Phase, Retention},
    ship::reader::StoredLine,
    test_support,
    time::Timestamp,
};

fn stored(i: u64) -> StoredLine {
    let r = AuditRecord::from_entry(
        test_support::entry(i),
        i,
        format!("0190f000-0000-7000-8000-{i:012}"),
        Timestamp(1_760_000_000_000_000_000 + i as i64),
        Hash([0u8; 32]),
        Retention {
            class: "standard".into(),
            expires_at: Timestamp(1_800_000_000_000_000_000),
        },
    );
    StoredLine {
        seq: i,
        time: r.time,
        line: r.to_line(),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Any> {
    attrs
        .iter()
        .find(|k| k.key == key)
        .and_then(|k| k.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[test]
fn every_record_is_a_log_record_with_its_line_and_id() {
    let lines: Vec<_> = (0..4).map(stored).collect();
    let parsed: Vec<_> = lines
        .iter()
        .map(|s| Parsed {
            stored: s,
            record: AuditRecord::parse(&s.line).unwrap(),
        })
        .collect();
    let req = logs_request(&parsed, &resource(Some("pod-1")));
    let bytes = encode_logs(&req);
    let back = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
        bytes.as_slice(),
    )
    .unwrap();
    let res = back.resource_logs[0].resource.as_ref().unwrap();
    assert!(
        matches!(attr(&res.attributes, "service.name"), Some(Any::StringValue(s)) if s == "agent-sidecar")
    );
    assert!(
        matches!(attr(&res.attributes, "service.instance.id"), Some(Any::StringValue(s)) if s == "pod-1")
    );
    let logs = &back.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(logs.len(), 4);
    for (l, s) in logs.iter().zip(&lines) {
        let r = AuditRecord::parse(&s.line).unwrap();
        // The body is the stored line, byte for byte.
        assert!(
            matches!(&l.body.as_ref().unwrap().value, Some(Any::StringValue(b)) if b.as_bytes() == s.line.as_slice())
        );
        assert!(
            matches!(attr(&l.attributes, RECORD_UID), Some(Any::StringValue(id)) if *id == r.id)
        );
        assert!(
            matches!(attr(&l.attributes, "agent_sidecar.audit.seq"), Some(Any::IntValue(n)) if *n == s.seq as i64)
        );
        assert!(
            matches!(attr(&l.attributes, "agent_sidecar.policy.tier"), Some(Any::IntValue(n)) if *n == 1 + (s.seq % 4) as i64)
        );
        assert_eq!(l.time_unix_nano, r.time.nanos() as u64);
        assert_eq!(l.trace_id.len(), 16);
        assert_eq!(l.span_id.len(), 8);
        assert_eq!(l.event_name, "agent_sidecar.audit.tool_call");
    }
}

#[test]
fn finished_tool_calls_are_execute_tool_spans_in_the_agents_trace() {
    let lines: Vec<_> = (0..6).map(stored).collect();
    let mut parsed: Vec<_> = lines
        .iter()
        .map(|s| Parsed {
            stored: s,
            record: AuditRecord::parse(&s.line).unwrap(),
        })
        .collect();
    // Record 3 failed upstream; record 5 has a parent span.
    if let Some(o) = parsed[3].record.outcome.as_mut() {
        o.status = OutcomeStatus::Failure;
        o.upstream_status = Some(502);
        o.error = Some("bad gateway".into());
    }
    parsed[5].record.trace.as_mut().unwrap().parent_span_id = Some("00f067aa0ba902b7".into());
    let req = traces_request(&parsed, &resource(None)).unwrap();
    let back = ExportTraceServiceRequest::decode(encode_traces(&req).as_slice()).unwrap();
    let spans = &back.resource_spans[0].scope_spans[0].spans;
    // Only the outcome records (odd seq in the fixture) are spans.
    let outcomes: Vec<_> = parsed
        .iter()
        .filter(|p| p.record.phase == Phase::Outcome)
        .collect();
    assert_eq!(spans.len(), outcomes.len());
    for (span, p) in spans.iter().zip(&outcomes) {
        let t = p.record.trace.as_ref().unwrap();
        let a = p.record.action.as_ref().unwrap();
        let tool = format!(
            "{}.{}",
            a.tool.as_deref().unwrap(),
            a.name.as_deref().unwrap()
        );
        assert_eq!(span.name, format!("execute_tool {tool}"));
        assert_eq!(span.kind, SpanKind::Internal as i32);
        assert_eq!(hex(&span.trace_id), t.trace_id);
        assert_eq!(hex(&span.span_id), t.span_id);
        assert!(
            matches!(attr(&span.attributes, "gen_ai.operation.name"), Some(Any::StringValue(s)) if s == "execute_tool")
        );
        assert!(
            matches!(attr(&span.attributes, "gen_ai.tool.name"), Some(Any::StringValue(s)) if *s == tool)
        );
        assert!(
            matches!(attr(&span.attributes, "gen_ai.tool.call.id"), Some(Any::StringValue(s)) if *s == t.span_id)
        );
        assert!(
            matches!(attr(&span.attributes, "agent_sidecar.audit.record_id"), Some(Any::StringValue(s)) if *s == p.record.id)
        );
        assert_eq!(span.end_time_unix_nano - span.start_time_unix_nano, 850_000);
    }
    let failed = &spans[1];
    assert_eq!(
        failed.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert!(
        matches!(attr(&failed.attributes, "error.type"), Some(Any::StringValue(s)) if s == "502")
    );
    assert_eq!(
        spans[0].status.as_ref().unwrap().code,
        StatusCode::Ok as i32
    );
    assert_eq!(hex(&spans[2].parent_span_id), "00f067aa0ba902b7");
    // Nothing to send for attempts alone.
    assert!(traces_request(&parsed[..1], &resource(None)).is_none());
}

#[test]
fn partial_success_is_read_from_the_answer() {
    let body = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 3,
            error_message: "too old".into(),
        }),
    }
    .encode_to_vec();
    assert_eq!(
        logs_partial(&body),
        PartialSuccess {
            rejected: 3,
            message: "too old".into()
        }
    );
    assert_eq!(logs_partial(b""), PartialSuccess::default());
    assert_eq!(
        traces_partial(b"\xff\xff garbage"),
        PartialSuccess::default()
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
