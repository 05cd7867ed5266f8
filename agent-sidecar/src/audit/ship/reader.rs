//! Reads the stored records after a cursor, in order, straight from the
//! segment files: seeks with the segment's sparse index, follows
//! rotations, stops before a torn (still being written) line and before
//! a bound (the records the log has fsynced), and reports the records
//! that retention deleted before they were shipped.

use std::{io, path::PathBuf};

use super::error::ShipError;
use crate::audit::{
    store::segment::{Line, LineReader, SegmentInfo, list_segments, peek_seq_time, read_index},
    time::Timestamp,
};

/// One stored record: its sequence number, time and line (the exact
/// stored bytes, without the newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLine {
    /// Sequence number.
    pub seq: u64,
    /// Record time.
    pub time: Timestamp,
    /// The line as stored.
    pub line: Vec<u8>,
}

/// What one read found.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// Records, in order, from the reader's position.
    pub lines: Vec<StoredLine>,
    /// Records skipped because retention deleted their segment before
    /// they were shipped: `[from, to)`.
    pub lost: Option<(u64, u64)>,
}

/// Where the reader is: a segment and a byte offset in it.
#[derive(Clone, Debug)]
struct Position {
    segment: SegmentInfo,
    offset: u64,
}

/// A reader of the records from `next_seq` on.
#[derive(Debug)]
pub struct StoreReader {
    dir: PathBuf,
    next_seq: u64,
    pos: Option<Position>,
}

impl StoreReader {
    /// A reader of the log in `dir` from record `next_seq`.
    pub fn new(dir: impl Into<PathBuf>, next_seq: u64) -> StoreReader {
        StoreReader {
            dir: dir.into(),
            next_seq,
            pos: None,
        }
    }

    /// The next record to read.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Reads up to `max` records, only those before `end` when given (the
    /// log's fsynced count), else every whole line.
    pub fn read(&mut self, max: usize, end: Option<u64>) -> Result<ReadBatch, ShipError> {
        let mut batch = ReadBatch::default();
        // Each turn either reads lines, moves to another segment or returns.
        loop {
            if batch.lines.len() >= max || end.is_some_and(|e| self.next_seq >= e) {
                return Ok(batch);
            }
            let Some(pos) = self.pos.clone() else {
                match self.locate()? {
                    Located::At(p) => {
                        self.pos = Some(p);
                        continue;
                    }
                    Located::Lost { to } => {
                        note_lost(&mut batch, self.next_seq, to);
                        self.next_seq = to;
                        continue;
                    }
                    Located::Nothing => return Ok(batch),
                }
            };
            let mut r = match LineReader::open(&pos.segment.records, pos.offset) {
                Ok(r) => r,
                // Deleted by retention since it was listed: look again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.pos = None;
                    match self.locate()? {
                        Located::At(p) if p.segment.records == pos.segment.records => {
                            return Err(read_err(&pos.segment.records, e));
                        }
                        _ => continue,
                    }
                }
                Err(e) => return Err(read_err(&pos.segment.records, e)),
            };
            let mut at_end = false;
            loop {
                if batch.lines.len() >= max || end.is_some_and(|e| self.next_seq >= e) {
                    break;
                }
                let line = r
                    .next_line()
                    .map_err(|e| read_err(&pos.segment.records, e))?;
                match line {
                    None => {
                        at_end = true;
                        break;
                    }
                    // Still being written: come back later.
                    Some(Line::Torn(..)) => return Ok(batch),
                    Some(Line::Whole(at, line)) => {
                        let Some((seq, time)) = peek_seq_time(line) else {
                            return Err(corrupt(&pos.segment, at, "this line is not a record"));
                        };
                        if seq < self.next_seq {
                            // Before the cursor: the index entry was earlier.
                            self.set_offset(r.offset());
                            continue;
                        }
                        if seq > self.next_seq {
                            return Err(corrupt(
                                &pos.segment,
                                at,
                                &format!(
                                    "record {seq} follows record {}: records are missing",
                                    self.next_seq.wrapping_sub(1)
                                ),
                            ));
                        }
                        batch.lines.push(StoredLine {
                            seq,
                            time,
                            line: line.to_vec(),
                        });
                        self.next_seq += 1;
                        self.set_offset(r.offset());
                    }
                }
            }
            if !at_end {
                return Ok(batch);
            }
            // The end of this segment: the next one must start here.
            let segments =
                list_segments(&self.dir).map_err(|e| read_err(&self.segments_dir(), e))?;
            let Some(next) = segments
                .iter()
                .find(|s| s.first_seq > pos.segment.first_seq)
            else {
                return Ok(batch); // the newest segment: wait for more
            };
            if next.first_seq != self.next_seq {
                return Err(corrupt(
                    &pos.segment,
                    r.offset(),
                    &format!(
                        "the segment ends before record {} but the next segment starts at record {}: records are missing",
                        self.next_seq, next.first_seq
                    ),
                ));
            }
            self.pos = None; // located afresh (it may be deleted)
        }
    }

    fn set_offset(&mut self, offset: u64) {
        if let Some(p) = &mut self.pos {
            p.offset = offset;
        }
    }

    fn segments_dir(&self) -> PathBuf {
        self.dir.join(crate::audit::store::segment::SEGMENTS_DIR)
    }

    /// Finds the segment holding `next_seq` and the index entry at or
    /// before it.
    fn locate(&self) -> Result<Located, ShipError> {
        let segments = list_segments(&self.dir).map_err(|e| read_err(&self.segments_dir(), e))?;
        let Some(holder) = segments.iter().rev().find(|s| s.first_seq <= self.next_seq) else {
            // Before the first segment (an empty log, or the first
            // segments deleted).
            return Ok(match segments.iter().find(|s| s.present) {
                Some(s) if s.first_seq > self.next_seq => Located::Lost { to: s.first_seq },
                _ => Located::Nothing,
            });
        };
        if !holder.present {
            // Deleted by retention: skip to the next present segment.
            return Ok(
                match segments
                    .iter()
                    .find(|s| s.present && s.first_seq > holder.first_seq)
                {
                    Some(s) => Located::Lost { to: s.first_seq },
                    None => Located::Nothing,
                },
            );
        }
        let entries = read_index(&holder.index).map_err(|e| read_err(&holder.index, e))?;
        let i = entries.partition_point(|e| e.seq <= self.next_seq);
        let offset = if i == 0 { 0 } else { entries[i - 1].offset };
        Ok(Located::At(Position {
            segment: holder.clone(),
            offset,
        }))
    }
}

enum Located {
    At(Position),
    Lost { to: u64 },
    Nothing,
}

fn note_lost(batch: &mut ReadBatch, from: u64, to: u64) {
    batch.lost = Some(match batch.lost {
        Some((f, _)) => (f, to),
        None => (from, to),
    });
}

fn read_err(path: &std::path::Path, source: io::Error) -> ShipError {
    ShipError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(segment: &SegmentInfo, offset: u64, reason: &str) -> ShipError {
    ShipError::Corrupt {
        path: segment.records.clone(),
        offset,
        reason: reason.to_string(),
    }
}
