//! `audit query`: records by agent, time, trace, tier, outcome, action and
//! kind. A time-bounded query reads only the segments whose time range
//! meets it (from their file names: a segment's records are not earlier
//! than its first time nor later than the next segment's first time) and,
//! in the first of them, starts at the index entry before its start; it
//! stops at the first record after its end.

use std::{
    io,
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use thiserror::Error;

use super::{
    record::{AuditRecord, OutcomeStatus, RecordKind},
    store::segment::{Line, LineReader, SEGMENTS_DIR, list_segments, peek_seq_time, read_index},
    time::Timestamp,
};

/// What records to return; every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryFilter {
    /// Agent id.
    pub agent: Option<String>,
    /// Not before this time.
    pub since: Option<Timestamp>,
    /// Not after this time.
    pub until: Option<Timestamp>,
    /// W3C trace id.
    pub trace: Option<String>,
    /// Policy tier.
    pub tier: Option<u8>,
    /// Outcome status.
    pub outcome: Option<OutcomeStatus>,
    /// Action: `tool.name`, a tool, an action name or an MCP tool.
    pub action: Option<String>,
    /// Record kind.
    pub kind: Option<RecordKind>,
}

impl QueryFilter {
    /// Whether `r` matches (times included).
    pub fn matches(&self, r: &AuditRecord) -> bool {
        if self.since.is_some_and(|t| r.time < t) || self.until.is_some_and(|t| r.time > t) {
            return false;
        }
        if self.agent.as_ref().is_some_and(|a| *a != r.agent.id) {
            return false;
        }
        if self.kind.is_some_and(|k| k != r.kind) {
            return false;
        }
        if let Some(t) = &self.trace
            && r.trace.as_ref().is_none_or(|tc| tc.trace_id != *t)
        {
            return false;
        }
        if let Some(tier) = self.tier
            && r.policy.as_ref().is_none_or(|p| p.tier != tier)
        {
            return false;
        }
        if let Some(o) = self.outcome
            && r.outcome.as_ref().is_none_or(|x| x.status != o)
        {
            return false;
        }
        if let Some(want) = &self.action {
            let Some(a) = &r.action else { return false };
            let tool = a.tool.as_deref().unwrap_or("");
            let name = a.name.as_deref().unwrap_or("");
            let mcp = a.target.as_ref().and_then(|t| t.mcp_tool.as_deref());
            let full = format!("{tool}.{name}");
            if *want != full && want != tool && want != name && Some(want.as_str()) != mcp {
                return false;
            }
        }
        true
    }
}

/// What a query read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Segments opened.
    pub segments_opened: usize,
    /// Segments in the log (present).
    pub segments_total: usize,
    /// Lines looked at.
    pub lines: u64,
    /// Records parsed.
    pub parsed: u64,
    /// Records that matched.
    pub matched: u64,
}

/// Why a query failed.
#[derive(Debug, Error)]
pub enum QueryError {
    /// Not an audit log directory.
    #[error("{0} is not an audit log directory (no segments/ in it)")]
    NotALog(PathBuf),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A line in the range is not a record.
    #[error(
        "{path} offset {offset}: not a record ({reason}); run `agent-sidecar audit verify` on the log"
    )]
    Bad {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// Why.
        reason: String,
    },
}

/// Calls `each` with every matching record (and its line) in log order,
/// until it breaks.
pub fn query(
    dir: &Path,
    filter: &QueryFilter,
    mut each: impl FnMut(&AuditRecord, &[u8]) -> ControlFlow<()>,
) -> Result<QueryStats, QueryError> {
    if !dir.join(SEGMENTS_DIR).is_dir() {
        return Err(QueryError::NotALog(dir.to_path_buf()));
    }
    let segments = list_segments(dir).map_err(|source| QueryError::Io {
        path: dir.join(SEGMENTS_DIR),
        source,
    })?;
    let present: Vec<_> = segments.iter().filter(|s| s.present).collect();
    let mut stats = QueryStats {
        segments_total: present.len(),
        ..QueryStats::default()
    };
    for (i, seg) in present.iter().enumerate() {
        if let (Some(since), Some(next)) = (filter.since, present.get(i + 1))
            && next.first_time < since
        {
            continue;
        }
        if filter.until.is_some_and(|u| seg.first_time > u) {
            break;
        }
        let io = |source| QueryError::Io {
            path: seg.records.clone(),
            source,
        };
        let offset = match filter.since {
            Some(since) => {
                let entries = read_index(&seg.index).map_err(|source| QueryError::Io {
                    path: seg.index.clone(),
                    source,
                })?;
                let k = entries.partition_point(|e| e.time < since);
                if k == 0 { 0 } else { entries[k - 1].offset }
            }
            None => 0,
        };
        stats.segments_opened += 1;
        let mut r = match LineReader::open(&seg.records, offset) {
            Ok(r) => r,
            // Deleted by retention since it was listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        while let Some(line) = r.next_line().map_err(io)? {
            let Line::Whole(at, line) = line else { break };
            stats.lines += 1;
            if let Some((_, time)) = peek_seq_time(line) {
                if filter.since.is_some_and(|s| time < s) {
                    continue;
                }
                if filter.until.is_some_and(|u| time > u) {
                    return Ok(stats);
                }
            }
            let record = AuditRecord::parse(line).map_err(|e| QueryError::Bad {
                path: seg.records.clone(),
                offset: at,
                reason: e.to_string(),
            })?;
            stats.parsed += 1;
            if filter.matches(&record) {
                stats.matched += 1;
                if each(&record, line).is_break() {
                    return Ok(stats);
                }
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests;
