//! One OTLP log record per audit record: the body is the record's stored
//! line (exactly the bytes its Merkle leaf hashes, so a collector-side
//! copy can be checked with `audit prove`), the attributes are its main
//! fields, and `log.record.uid` is its id for de-duplication.

use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value as Any},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber},
    resource::v1::Resource,
};

use super::attributes::{Parsed, RECORD_UID, id_bytes, kv, kv_bool, kv_int, kv_strings, scope};
use crate::audit::{
    record::{AuditRecord, OutcomeStatus, RecordKind},
    time::Timestamp,
};

/// The logs request of a batch.
pub fn logs_request(batch: &[Parsed<'_>], resource: &Resource) -> ExportLogsServiceRequest {
    let observed = Timestamp::now().nanos().max(0) as u64;
    let log_records = batch.iter().map(|p| log_record(p, observed)).collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn log_record(p: &Parsed<'_>, observed: u64) -> LogRecord {
    let r = &p.record;
    let (severity, text) = severity(r);
    let mut attributes = vec![kv(RECORD_UID, r.id.clone())];
    attributes.extend(record_attributes(r));
    let (trace_id, span_id) = match &r.trace {
        Some(t) => (id_bytes(&t.trace_id, 16), id_bytes(&t.span_id, 8)),
        None => (Vec::new(), Vec::new()),
    };
    LogRecord {
        time_unix_nano: r.time.nanos().max(0) as u64,
        observed_time_unix_nano: observed,
        severity_number: severity as i32,
        severity_text: text.into(),
        body: Some(AnyValue {
            value: Some(Any::StringValue(
                String::from_utf8_lossy(&p.stored.line).into_owned(),
            )),
        }),
        attributes,
        dropped_attributes_count: 0,
        flags: 0,
        trace_id,
        span_id,
        event_name: format!("agent_sidecar.audit.{}", r.kind.as_str()),
    }
}

/// WARN for what was refused, failed or went around a control; INFO
/// otherwise.
fn severity(r: &AuditRecord) -> (SeverityNumber, &'static str) {
    let refused = r.outcome.as_ref().is_some_and(|o| {
        matches!(
            o.status,
            OutcomeStatus::Refused | OutcomeStatus::Failure | OutcomeStatus::Partial
        )
    });
    let alarming = matches!(
        r.kind,
        RecordKind::KernelDeny
            | RecordKind::Quarantine
            | RecordKind::FailOpen
            | RecordKind::PolicyReloadRefused
            | RecordKind::LogRepaired
    );
    if refused || alarming || r.policy.as_ref().is_some_and(|p| p.deny) {
        (SeverityNumber::Warn, "WARN")
    } else {
        (SeverityNumber::Info, "INFO")
    }
}

/// The record's main fields as attributes (shared with the spans).
pub(crate) fn record_attributes(r: &AuditRecord) -> Vec<KeyValue> {
    let mut a = vec![
        kv("agent_sidecar.audit.record_id", r.id.clone()),
        kv_int("agent_sidecar.audit.seq", r.seq as i64),
        kv("agent_sidecar.audit.kind", r.kind.as_str()),
        kv(
            "agent_sidecar.audit.phase",
            serde_json::to_value(r.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
        kv("gen_ai.agent.id", r.agent.id.clone()),
        kv("agent_sidecar.retention.class", r.retention.class.clone()),
    ];
    let ag = &r.agent;
    for (k, v) in [
        ("agent_sidecar.agent.owner", &ag.owner),
        ("agent_sidecar.agent.team", &ag.team),
        ("agent_sidecar.agent.purpose", &ag.purpose),
        ("deployment.environment.name", &ag.environment),
        ("agent_sidecar.agent.instance", &ag.instance),
    ] {
        if let Some(v) = v {
            a.push(kv(k, v.clone()));
        }
    }
    if let Some(act) = &r.action {
        if let Ok(serde_json::Value::String(t)) = serde_json::to_value(act.kind) {
            a.push(kv("agent_sidecar.action.type", t));
        }
        if let Some(t) = &act.tool {
            a.push(kv("agent_sidecar.action.tool", t.clone()));
        }
        if let Some(n) = &act.name {
            a.push(kv("agent_sidecar.action.name", n.clone()));
        }
        if let Some(t) = &act.target {
            for (k, v) in [
                ("http.request.method", &t.method),
                ("server.address", &t.host),
                ("url.path", &t.path),
                ("agent_sidecar.action.mcp_tool", &t.mcp_tool),
                ("network.peer.address", &t.address),
            ] {
                if let Some(v) = v {
                    a.push(kv(k, v.clone()));
                }
            }
            if let Some(p) = t.port {
                a.push(kv_int("server.port", i64::from(p)));
            }
        }
    }
    if let Some(p) = &r.policy {
        a.push(kv_int("agent_sidecar.policy.tier", i64::from(p.tier)));
        if p.deny {
            a.push(kv_bool("agent_sidecar.policy.deny", true));
        }
        if !p.rules.is_empty() {
            a.push(kv_strings("agent_sidecar.policy.rules", &p.rules));
        }
        a.push(kv("agent_sidecar.policy.version", p.version.clone()));
        if let Some(l) = &p.label {
            a.push(kv("agent_sidecar.policy.label", l.clone()));
        }
    }
    if let Some(o) = &r.oversight {
        for (k, v) in [
            ("agent_sidecar.approval.id", &o.approval_id),
            ("agent_sidecar.approval.approver", &o.approver),
            ("agent_sidecar.compensation.id", &o.compensation_id),
        ] {
            if let Some(v) = v {
                a.push(kv(k, v.clone()));
            }
        }
        if let Some(Ok(serde_json::Value::String(d))) = o.decision.map(serde_json::to_value) {
            a.push(kv("agent_sidecar.approval.decision", d));
        }
    }
    if let Some(o) = &r.outcome {
        a.push(kv("agent_sidecar.outcome.status", o.status.as_str()));
        if let Some(s) = o.upstream_status {
            a.push(kv_int("http.response.status_code", i64::from(s)));
        }
        if let Some(l) = o.latency_us {
            a.push(kv_int("agent_sidecar.outcome.latency_us", l as i64));
        }
    }
    a
}
