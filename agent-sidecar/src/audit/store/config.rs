//! How a log is opened: where, how durable, how segments rotate, how long
//! records are kept, who signs checkpoints.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use crate::audit::{
    checkpoint::{CheckpointSink, NoteSigner},
    record::AgentIdentity,
};

/// When the writer fsyncs the records it wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch (group commit: records that arrive while one
    /// fsync runs share the next).
    Always,
    /// At most this long after a record is written (and at once for
    /// `append_durable`).
    Interval(Duration),
}

impl FsyncPolicy {
    /// Parses `always` or a duration such as `10ms`, `1s`.
    pub fn parse(s: &str) -> Option<FsyncPolicy> {
        if s == "always" {
            return Some(FsyncPolicy::Always);
        }
        let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
        let n: u64 = n.parse().ok()?;
        let d = match unit {
            "us" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            _ => return None,
        };
        (!d.is_zero()).then_some(FsyncPolicy::Interval(d))
    }
}

/// Retention: a duration per class, and the class of records that name
/// none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Class name to how long its records are kept.
    pub classes: BTreeMap<String, Duration>,
    /// The class of records that name none.
    pub default_class: String,
}

impl Default for RetentionPolicy {
    /// One class, `standard`, kept 400 days.
    fn default() -> RetentionPolicy {
        RetentionPolicy {
            classes: BTreeMap::from([("standard".to_string(), Duration::from_secs(400 * 86_400))]),
            default_class: "standard".to_string(),
        }
    }
}

/// Everything [`crate::audit::AuditLog::open`] needs.
pub struct AuditConfig {
    /// The log directory (created when missing).
    pub dir: PathBuf,
    /// Checkpoint origin (first line), e.g. `example.com/audit/agent-1`.
    pub origin: String,
    /// Who the log's own records (repair, retention) name.
    pub identity: AgentIdentity,
    /// Signs checkpoints; without one no checkpoint is made.
    pub signer: Option<NoteSigner>,
    /// Where checkpoints also go (witness files, webhooks).
    pub sinks: Vec<Box<dyn CheckpointSink>>,
    /// When records are fsynced.
    pub fsync: FsyncPolicy,
    /// A segment is sealed when it reaches this size.
    pub segment_max_bytes: u64,
    /// A segment is sealed when its first record is this old.
    pub segment_max_age: Duration,
    /// Bytes between two index entries.
    pub index_every_bytes: u64,
    /// How often a checkpoint is signed (when records were added).
    pub checkpoint_interval: Duration,
    /// Retention classes.
    pub retention: RetentionPolicy,
    /// How often expired segments are looked for.
    pub retention_sweep_interval: Duration,
    /// Records waiting to be written beyond which appends are refused.
    pub max_queued: u64,
    /// How often a failed write is retried.
    pub retry_interval: Duration,
}

impl AuditConfig {
    /// Defaults: fsync within 10 ms, 64 MiB or 1 h segments, an index
    /// entry every 64 KiB, a checkpoint every 10 s, the default retention.
    pub fn new(
        dir: impl Into<PathBuf>,
        origin: impl Into<String>,
        identity: AgentIdentity,
    ) -> AuditConfig {
        AuditConfig {
            dir: dir.into(),
            origin: origin.into(),
            identity,
            signer: None,
            sinks: Vec::new(),
            fsync: FsyncPolicy::Interval(Duration::from_millis(10)),
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(3600),
            index_every_bytes: 64 << 10,
            checkpoint_interval: Duration::from_secs(10),
            retention: RetentionPolicy::default(),
            retention_sweep_interval: Duration::from_secs(60),
            max_queued: 1 << 20,
            retry_interval: Duration::from_millis(100),
        }
    }
}

impl std::fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditConfig")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("fsync", &self.fsync)
            .field("segment_max_bytes", &self.segment_max_bytes)
            .field("segment_max_age", &self.segment_max_age)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}
