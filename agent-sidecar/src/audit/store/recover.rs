//! Opening a log: lock it, find the tail of the last segment, repair a
//! torn last line, make the tree files match the records, load the last
//! signed checkpoint.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::FileExt,
    path::Path,
};

use nix::fcntl::Flock;
use serde_json::json;

use super::{
    active::ActiveSegment,
    config::AuditConfig,
    files::{TREE_DIR, VKEY_FILE, create_dir, lock},
    segment::{
        Line, LineReader, SEGMENTS_DIR, SegmentInfo, list_segments, locate, read_index, read_meta,
    },
};
use crate::audit::{
    checkpoint::{Checkpointer, write_atomic},
    error::AuditError,
    hash::{Hash, leaf_hash},
    record::{AuditEntry, AuditRecord, Phase, RecordKind},
    time::Timestamp,
    tree::{NodeSource, TreeFiles},
};

/// What the writer starts from.
pub(crate) struct Opened {
    pub _lock: Flock<File>,
    pub next_seq: u64,
    pub last_time: Timestamp,
    pub prev: Hash,
    pub tree: TreeFiles,
    pub active: Option<ActiveSegment>,
    pub checkpointer: Option<Checkpointer>,
    /// The `log_repaired` record to append, and the log line.
    pub repaired: Option<(AuditEntry, String)>,
}

/// The last good record of the tail.
struct Tail {
    seq: u64,
    time: Timestamp,
    leaf: Hash,
}

fn verify_hint(dir: &Path) -> String {
    format!(
        "run `agent-sidecar audit verify {}` to see what changed; restore the log from a copy or move it aside to start a new one",
        dir.display()
    )
}

pub(crate) fn open(cfg: &mut AuditConfig) -> Result<Opened, AuditError> {
    let dir = &cfg.dir.clone();
    create_dir(dir, dir)?;
    let lock = lock(dir)?;
    let seg_dir = dir.join(SEGMENTS_DIR);
    create_dir(&seg_dir, dir)?;
    let io_open = |path: &Path, e: io::Error| {
        AuditError::open(path, e, "check the file's permissions and the disk")
    };
    if let Some(signer) = &cfg.signer {
        let vkey = dir.join(VKEY_FILE);
        let text = format!("{}\n", signer.verifier().to_text());
        if fs::read_to_string(&vkey).ok().as_deref() != Some(text.as_str()) {
            write_atomic(&vkey, text.as_bytes())
                .map_err(|e| AuditError::unwritable(vkey.clone(), dir, &e))?;
        }
    }
    let mut tree = TreeFiles::open(&dir.join(TREE_DIR)).map_err(|e| {
        AuditError::open(dir.join(TREE_DIR), e, "check the tree files' permissions")
    })?;

    let mut segments = list_segments(dir).map_err(|e| io_open(&seg_dir, e))?;
    let mut repaired: Option<(AuditEntry, String)> = None;
    let mut tail: Option<Tail> = None;
    let mut active = None;
    let mut scanned: Vec<(u64, Hash)> = Vec::new();
    while let Some(seg) = segments.iter().rev().find(|s| s.present).cloned() {
        match scan_tail(&seg, dir)? {
            Some(found) => {
                if let Some(note) = found.repaired {
                    let mut entry = AuditEntry::new(
                        RecordKind::LogRepaired,
                        Phase::Event,
                        cfg.identity.clone(),
                    );
                    entry.detail = Some(json!({
                        "segment": seg.file_name(),
                        "offset": found.len,
                        "bytes_dropped": found.dropped,
                        "reason": note,
                    }));
                    let line = format!(
                        "audit log: cut a torn last record ({} bytes at offset {} of {}): {note}",
                        found.dropped,
                        found.len,
                        seg.records.display()
                    );
                    repaired = Some((entry, line));
                }
                scanned = found.leaves;
                let t = found.tail;
                if found.len < cfg.segment_max_bytes {
                    active = Some(
                        ActiveSegment::reopen(
                            seg.clone(),
                            found.len,
                            &found.entries,
                            t.seq,
                            t.time,
                            found.max_expiry,
                            cfg.index_every_bytes,
                        )
                        .map_err(|e| io_open(&seg.records, e))?,
                    );
                }
                tail = Some(t);
                break;
            }
            None => {
                // Not one whole record: the segment was created by a write
                // that never completed. Remove it and look at the previous.
                let _ = fs::remove_file(&seg.records);
                let _ = fs::remove_file(&seg.index);
                segments.retain(|s| s.first_seq != seg.first_seq);
            }
        }
    }

    let (next_seq, last_time, prev) = match &tail {
        Some(t) => (t.seq + 1, t.time, t.leaf),
        None => {
            // Every segment deleted by retention, or a new log.
            let mut next = 0;
            let mut last_time = Timestamp(i64::MIN);
            for s in &segments {
                if let Ok(Some(m)) = read_meta(&s.meta) {
                    next = next.max(m.last_seq + 1);
                    last_time = last_time.max(m.last_time);
                }
            }
            let prev = if next == 0 {
                Hash::default()
            } else {
                tree.node(0, next - 1)
                    .map_err(|e| AuditError::open(tree.dir(), e, verify_hint(dir)))?
            };
            (next, last_time, prev)
        }
    };

    // The tree: cut what the records no longer have, drop stored leaves
    // that differ from the records just read, hash what is missing.
    let tree_dir = dir.join(TREE_DIR);
    let tree_err = |e: crate::audit::tree::TreeFilesError| {
        AuditError::open(&tree_dir, e, "check the tree files and the disk")
    };
    if tree.leaf_count() > next_seq {
        tree.truncate(next_seq).map_err(tree_err)?;
    }
    for &(seq, leaf) in &scanned {
        if seq < tree.leaf_count() && tree.node(0, seq).map_err(tree_err)? != leaf {
            tracing::warn!(
                seq,
                "audit log: the stored tree disagrees with record {seq}; rebuilding the tree from there"
            );
            tree.truncate(seq).map_err(tree_err)?;
            break;
        }
    }
    if tree.leaf_count() < next_seq {
        rehash(&segments, &mut tree, next_seq, dir)?;
    }
    tree.sync().map_err(tree_err)?;

    let checkpointer = match cfg.signer.take() {
        None => None,
        Some(signer) => {
            let sinks = std::mem::take(&mut cfg.sinks);
            let cp = Checkpointer::open(dir, cfg.origin.clone(), signer, sinks).map_err(|e| {
                AuditError::open(
                    dir.join(crate::audit::checkpoint::HISTORY_FILE),
                    e,
                    verify_hint(dir),
                )
            })?;
            if let Some(last) = cp.last()
                && last.size > next_seq
            {
                return Err(AuditError::open(
                    dir,
                    format!(
                        "the last signed checkpoint commits to {} records but the log holds {next_seq}: records were lost or removed",
                        last.size
                    ),
                    verify_hint(dir),
                ));
            }
            Some(cp)
        }
    };

    Ok(Opened {
        _lock: lock,
        next_seq,
        last_time,
        prev,
        tree,
        active,
        checkpointer,
        repaired,
    })
}

struct ScannedTail {
    tail: Tail,
    /// Length of the segment after the repair.
    len: u64,
    entries: Vec<super::segment::IndexEntry>,
    max_expiry: Timestamp,
    leaves: Vec<(u64, Hash)>,
    repaired: Option<String>,
    dropped: u64,
}

/// Reads the segment from its last index entry to the end; cuts a torn or
/// unreadable last line. `None` when no whole record remains.
fn scan_tail(seg: &SegmentInfo, dir: &Path) -> Result<Option<ScannedTail>, AuditError> {
    let io_open = |e: io::Error| {
        AuditError::open(&seg.records, e, "check the file's permissions and the disk")
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg.records)
        .map_err(io_open)?;
    let file_len = file.metadata().map_err(io_open)?.len();
    let mut entries = read_index(&seg.index).map_err(io_open)?;
    entries.retain(|e| e.offset < file_len);
    // Scan from the last entry; an entry that does not point at its record
    // (index written ahead of a lost write) is dropped and the scan starts
    // earlier.
    while let Some(last) = entries.last() {
        let mut r = LineReader::open(&seg.records, last.offset).map_err(io_open)?;
        let ok = match r.next_line().map_err(io_open)? {
            Some(Line::Whole(_, bytes)) => {
                AuditRecord::parse(bytes).is_ok_and(|rec| rec.seq == last.seq)
            }
            _ => false,
        };
        if ok {
            break;
        }
        entries.pop();
    }
    let (start, mut expected, mut max_expiry) = match entries.last() {
        Some(e) => (e.offset, e.seq, e.max_expiry_before),
        None => (0, seg.first_seq, Timestamp(i64::MIN)),
    };
    file.seek(SeekFrom::Start(start)).map_err(io_open)?;
    let mut buf = Vec::with_capacity((file_len - start) as usize);
    file.read_to_end(&mut buf).map_err(io_open)?;

    let mut tail: Option<Tail> = None;
    let mut leaves = Vec::new();
    let mut pos = 0usize;
    let mut problem: Option<String> = None;
    let mut fix_newline = false;
    while pos < buf.len() {
        let (line, whole) = match buf[pos..].iter().position(|&b| b == b'\n') {
            Some(n) => (&buf[pos..pos + n], true),
            None => (&buf[pos..], false),
        };
        let next = pos + line.len() + usize::from(whole);
        let parsed = AuditRecord::parse(line);
        let reason = match &parsed {
            Ok(r) if r.seq == expected => None,
            Ok(r) => Some(format!(
                "sequence number {} where {expected} was expected",
                r.seq
            )),
            Err(e) => Some(if whole {
                format!("the line does not parse: {e}")
            } else {
                "the last write stopped before the end of the line".to_string()
            }),
        };
        if let Some(reason) = reason {
            if next < buf.len() {
                return Err(AuditError::open(
                    &seg.records,
                    format!(
                        "record at offset {} is not the record {expected} of the log ({reason}), and records follow it",
                        start + pos as u64
                    ),
                    verify_hint(dir),
                ));
            }
            problem = Some(reason);
            break;
        }
        let r = parsed.expect("checked above");
        if !whole {
            // A whole record without its newline: keep it.
            fix_newline = true;
        }
        let leaf = leaf_hash(line);
        leaves.push((r.seq, leaf));
        max_expiry = max_expiry.max(r.retention.expires_at);
        tail = Some(Tail {
            seq: r.seq,
            time: r.time,
            leaf,
        });
        expected += 1;
        pos = next;
    }
    let mut len = start + pos as u64;
    let dropped = file_len - len;
    let w = |e: io::Error| AuditError::unwritable(seg.records.clone(), dir, &e);
    if fix_newline {
        file.write_all_at(b"\n", len).map_err(w)?;
        len += 1;
    } else if dropped > 0 {
        file.set_len(len).map_err(w)?;
    }
    if fix_newline || dropped > 0 {
        file.sync_data().map_err(w)?;
    }
    entries.retain(|e| e.offset < len);
    // The record at the last index entry parsed (checked above), so no
    // tail means no whole record in the segment at all.
    let Some(tail) = tail else {
        return Ok(None);
    };
    Ok(Some(ScannedTail {
        tail,
        len,
        entries,
        max_expiry,
        leaves,
        repaired: problem,
        dropped,
    }))
}

/// Hashes records `[tree size, next_seq)` into the tree, from the
/// segments.
fn rehash(
    segments: &[SegmentInfo],
    tree: &mut TreeFiles,
    next_seq: u64,
    dir: &Path,
) -> Result<(), AuditError> {
    let mut seq = tree.leaf_count();
    let missing = |seq: u64| {
        AuditError::open(
            dir,
            format!("the tree files lack the hash of record {seq} and no segment holds it"),
            verify_hint(dir),
        )
    };
    while seq < next_seq {
        let (seg, offset) = locate(segments, seq)
            .map_err(|e| AuditError::open(dir, e, "check the segment files"))?
            .ok_or_else(|| missing(seq))?;
        let mut r = LineReader::open(&seg.records, offset)
            .map_err(|e| AuditError::open(&seg.records, e, "check the segment files"))?;
        let before = seq;
        while let Some(Line::Whole(_, line)) = r
            .next_line()
            .map_err(|e| AuditError::open(&seg.records, e, "check the segment files"))?
        {
            let Some((s, _)) = super::segment::peek_seq_time(line) else {
                break;
            };
            if s < seq {
                continue;
            }
            if s != seq || seq >= next_seq {
                break;
            }
            tree.push(leaf_hash(line));
            seq += 1;
        }
        if seq == before {
            return Err(missing(seq));
        }
    }
    Ok(())
}
