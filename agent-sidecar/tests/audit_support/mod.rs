//! Shared by the audit integration tests: logs written through the
//! library, the `agent-sidecar audit` binary run on them.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use agent_sidecar::audit::{
    AuditConfig, AuditEntry, AuditLog, FsyncPolicy, NoteSigner, Phase, RecordKind,
    record::{
        ActionInfo, ActionTarget, ActionType, AgentIdentity, Outcome, OutcomeStatus, PolicyResult,
        TraceContext,
    },
    store::segment::list_segments,
};

pub(crate) const ORIGIN: &str = "example.test/audit/agent-7";

pub(crate) fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[42u8; 32]).unwrap()
}

/// A tool call of agent `agent-7`, tier `1 + i % 4`.
pub(crate) fn entry(i: u64) -> AuditEntry {
    let mut e = AuditEntry::new(
        RecordKind::ToolCall,
        Phase::Outcome,
        AgentIdentity::id("agent-7"),
    );
    e.trace = Some(TraceContext {
        trace_id: format!("{:032x}", i + 1),
        span_id: format!("{:016x}", i + 1),
        parent_span_id: None,
    });
    e.action = Some(ActionInfo {
        kind: ActionType::Mcp,
        tool: Some("crm".into()),
        name: Some("update_customer".into()),
        target: Some(ActionTarget {
            mcp_tool: Some("update_customer".into()),
            host: Some("crm.tools.test".into()),
            ..ActionTarget::default()
        }),
        attributes: None,
    });
    e.policy = Some(PolicyResult {
        tier: (1 + i % 4) as u8,
        deny: false,
        rules: vec!["crm-writes".into()],
        version: "sha256:0123".into(),
        label: None,
        reason: None,
    });
    e.outcome = Some(Outcome {
        status: OutcomeStatus::Success,
        upstream_status: Some(200),
        bytes_in: Some(64),
        bytes_out: Some(512),
        latency_us: Some(900),
        error: None,
    });
    e
}

pub(crate) fn config(dir: &Path) -> AuditConfig {
    let mut c = AuditConfig::new(dir, ORIGIN, AgentIdentity::id("agent-7"));
    c.signer = Some(signer());
    c.fsync = FsyncPolicy::Always;
    c.checkpoint_interval = Duration::from_secs(3600);
    c
}

/// A closed log of `n` records (checkpoint at close), in a new directory.
pub(crate) fn log(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0..n);
    dir
}

/// Opens the log in `dir`, appends the entries of `range`, closes it.
pub(crate) fn append(dir: &Path, range: std::ops::Range<u64>) {
    let log = AuditLog::open(config(dir)).unwrap();
    for i in range {
        log.append(entry(i)).unwrap();
    }
    log.close().unwrap();
}

/// The newest segment's records file and its lines.
pub(crate) fn segment(dir: &Path) -> (PathBuf, Vec<String>) {
    let seg = list_segments(dir).unwrap().pop().unwrap();
    let text = std::fs::read_to_string(&seg.records).unwrap();
    (seg.records, text.lines().map(String::from).collect())
}

pub(crate) fn write_lines(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// The verifier key, in a file.
pub(crate) fn vkey_file(dir: &Path) -> PathBuf {
    let path = dir.join("trusted.vkey");
    std::fs::write(&path, format!("{}\n", signer().verifier().to_text())).unwrap();
    path
}

/// Runs `agent-sidecar audit ARGS`.
pub(crate) fn audit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .arg("audit")
        .args(args)
        .output()
        .expect("run agent-sidecar")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
