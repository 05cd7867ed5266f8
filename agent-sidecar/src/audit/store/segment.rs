//! Segment files: the records, one JSON line each, in files of contiguous
//! sequence numbers under `DIR/segments/`.
//!
//! - `seg-<first seq, 20 digits>-<first time, compact RFC 3339>.jsonl`:
//!   the records;
//! - `.idx` beside it: a sparse index, one 32-byte entry (little-endian
//!   `time ns: i64`, `seq: u64`, `offset: u64`, `max expiry ns before this
//!   record: i64`) for the first record and then for the first record at
//!   or after every `index_every` bytes; times never decrease along a log,
//!   so a time-bounded read seeks to the last entry before its start;
//! - `.meta` beside it, written when the segment is sealed: its summary
//!   (JSON: sequence range, time range, latest expiry), kept after
//!   retention deleted the records as the trace of what was deleted.

use std::{
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::audit::{hash::Hash, time::Timestamp};

/// Sub-directory of the log holding the segments.
pub const SEGMENTS_DIR: &str = "segments";
/// Bytes of one index entry.
pub const INDEX_ENTRY: usize = 32;

/// One segment of the log, as listed from its file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number of its first record.
    pub first_seq: u64,
    /// Time of its first record.
    pub first_time: Timestamp,
    /// The records file.
    pub records: PathBuf,
    /// The index file.
    pub index: PathBuf,
    /// The summary file (sealed segments).
    pub meta: PathBuf,
    /// Whether the records file exists (not deleted by retention).
    pub present: bool,
}

impl SegmentInfo {
    /// The segment of `first_seq` and `first_time` in `seg_dir`.
    pub fn new(seg_dir: &Path, first_seq: u64, first_time: Timestamp) -> SegmentInfo {
        let stem = format!("seg-{first_seq:020}-{}", first_time.to_compact());
        SegmentInfo {
            first_seq,
            first_time,
            records: seg_dir.join(format!("{stem}.jsonl")),
            index: seg_dir.join(format!("{stem}.idx")),
            meta: seg_dir.join(format!("{stem}.meta")),
            present: false,
        }
    }

    /// The records file's name.
    pub fn file_name(&self) -> String {
        self.records
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Parses `seg-<seq>-<time>` (any extension).
fn parse_stem(stem: &str) -> Option<(u64, Timestamp)> {
    let rest = stem.strip_prefix("seg-")?;
    let (seq, time) = rest.split_once('-')?;
    if seq.len() != 20 {
        return None;
    }
    let seq = seq.parse().ok()?;
    // 20260504T101112.123456789Z -> 2026-05-04T10:11:12.123456789Z
    let t = time.as_bytes();
    if t.len() != 26 {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}",
        &time[0..4],
        &time[4..6],
        &time[6..8],
        &time[9..11],
        &time[11..13],
        &time[13..]
    );
    Some((seq, Timestamp::parse_canonical(text.as_bytes())?))
}

/// Every segment of the log (present or deleted by retention), by first
/// sequence number.
pub fn list_segments(dir: &Path) -> io::Result<Vec<SegmentInfo>> {
    let seg_dir = dir.join(SEGMENTS_DIR);
    let mut out: Vec<SegmentInfo> = Vec::new();
    let entries = match fs::read_dir(&seg_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some((stem, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !matches!(ext, "jsonl" | "meta") {
            continue;
        }
        let Some((seq, time)) = parse_stem(stem) else {
            continue;
        };
        if out.iter().any(|s| s.first_seq == seq) {
            if ext == "jsonl" {
                for s in out.iter_mut().filter(|s| s.first_seq == seq) {
                    s.present = true;
                }
            }
            continue;
        }
        let mut info = SegmentInfo::new(&seg_dir, seq, time);
        info.present = ext == "jsonl";
        out.push(info);
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

/// One sparse index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Time of the record at `offset`.
    pub time: Timestamp,
    /// Its sequence number.
    pub seq: u64,
    /// Its byte offset in the segment.
    pub offset: u64,
    /// Latest expiry of the records before it in the segment.
    pub max_expiry_before: Timestamp,
}

impl IndexEntry {
    /// The 32 bytes of the entry.
    pub fn encode(&self) -> [u8; INDEX_ENTRY] {
        let mut b = [0u8; INDEX_ENTRY];
        b[0..8].copy_from_slice(&self.time.nanos().to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.max_expiry_before.nanos().to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> IndexEntry {
        let w = |r: std::ops::Range<usize>| -> [u8; 8] { b[r].try_into().expect("8 bytes") };
        IndexEntry {
            time: Timestamp(i64::from_le_bytes(w(0..8))),
            seq: u64::from_le_bytes(w(8..16)),
            offset: u64::from_le_bytes(w(16..24)),
            max_expiry_before: Timestamp(i64::from_le_bytes(w(24..32))),
        }
    }
}

/// Reads an index file; a missing file is an empty index, a partial last
/// entry is ignored, and entries must go forward (the first that does not
/// ends the index).
pub fn read_index(path: &Path) -> io::Result<Vec<IndexEntry>> {
    let mut buf = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut buf)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut out: Vec<IndexEntry> = Vec::with_capacity(buf.len() / INDEX_ENTRY);
    for chunk in buf.chunks_exact(INDEX_ENTRY) {
        let e = IndexEntry::decode(chunk);
        if let Some(last) = out.last()
            && (e.seq <= last.seq || e.offset <= last.offset || e.time < last.time)
        {
            break;
        }
        out.push(e);
    }
    Ok(out)
}

/// The summary of a sealed segment (`.meta`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// First sequence number.
    pub first_seq: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// Time of the first record.
    pub first_time: Timestamp,
    /// Time of the last record.
    pub last_time: Timestamp,
    /// Latest `retention.expires_at` of its records.
    pub max_expires_at: Timestamp,
    /// Size of the records file.
    pub bytes: u64,
    /// When retention deleted the records file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

/// Reads a `.meta` file (`None` when missing).
pub fn read_meta(path: &Path) -> io::Result<Option<SegmentMeta>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads lines of a segment from a byte offset: each whole line (without
/// its newline) with its offset; a last line without a newline is
/// returned as torn.
pub struct LineReader {
    reader: BufReader<File>,
    offset: u64,
    buf: Vec<u8>,
}

/// One line read from a segment.
pub enum Line<'a> {
    /// A whole line and its offset.
    Whole(u64, &'a [u8]),
    /// Bytes after the last newline (a torn write) and their offset.
    Torn(u64, &'a [u8]),
}

impl LineReader {
    /// Opens `path` at `offset`.
    pub fn open(path: &Path, offset: u64) -> io::Result<LineReader> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(LineReader {
            reader: BufReader::with_capacity(1 << 20, f),
            offset,
            buf: Vec::with_capacity(4096),
        })
    }

    /// The next line, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        let at = self.offset;
        self.offset += n as u64;
        if self.buf.last() == Some(&b'\n') {
            Ok(Some(Line::Whole(at, &self.buf[..n - 1])))
        } else {
            Ok(Some(Line::Torn(at, &self.buf[..n])))
        }
    }

    /// Offset of the next line.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// The leading `"seq":N` and `"time":"..."` of a canonical line, read
/// without parsing the record (for skipping in queries).
pub fn peek_seq_time(line: &[u8]) -> Option<(u64, Timestamp)> {
    // {"v":1,"seq":123,"id":"...","time":"2026-...Z",...
    let rest = line.strip_prefix(b"{\"v\":")?;
    let comma = rest.iter().position(|&b| b == b',')?;
    let rest = rest[comma..].strip_prefix(b",\"seq\":")?;
    let end = rest.iter().position(|&b| b == b',')?;
    let seq = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let rest = rest[end..].strip_prefix(b",\"id\":\"")?;
    let q = rest.iter().position(|&b| b == b'"')?;
    let rest = rest[q + 1..].strip_prefix(b",\"time\":\"")?;
    let time = Timestamp::parse_canonical(rest.get(..30)?)?;
    Some((seq, time))
}

/// The chain facts of a record line in the canonical encoding the log
/// writes (`{"v":..,"seq":..,"id":"..","time":"..","prev":"..","kind":"..",`):
/// its number, the previous record's hash and its kind's name, read from
/// the line's first ~200 bytes. `None` for any other layout (the caller
/// then parses the whole line). The bytes after the prefix are covered by
/// the leaf hash, which the caller checks.
pub fn peek_link(line: &[u8]) -> Option<(u64, Hash, &str)> {
    let (seq, _) = peek_seq_time(line)?;
    // The time is the first 30-byte canonical timestamp after `"time":"`.
    let at = line.windows(8).position(|w| w == b"\"time\":\"")? + 8 + 30;
    let rest = line.get(at..)?.strip_prefix(b"\",\"prev\":\"")?;
    let prev = Hash::from_hex(std::str::from_utf8(rest.get(..64)?).ok()?)?;
    let rest = rest.get(64..)?.strip_prefix(b"\",\"kind\":\"")?;
    let q = rest.iter().position(|&b| b == b'"')?;
    let kind = std::str::from_utf8(&rest[..q]).ok()?;
    let after = rest.get(q + 1)?;
    (*after == b',' || *after == b'}').then_some((seq, prev, kind))
}

/// Where the record `seq` starts at the latest: the segment holding it
/// (the last present one starting at or before it) and the offset of the
/// last index entry at or before it.
pub fn locate(segments: &[SegmentInfo], seq: u64) -> io::Result<Option<(&SegmentInfo, u64)>> {
    let Some(seg) = segments
        .iter()
        .rev()
        .find(|s| s.present && s.first_seq <= seq)
    else {
        return Ok(None);
    };
    let entries = read_index(&seg.index)?;
    let i = entries.partition_point(|e| e.seq <= seq);
    let offset = if i == 0 { 0 } else { entries[i - 1].offset };
    Ok(Some((seg, offset)))
}
