//! Retention: a sealed segment whose every record has expired is deleted
//! whole (records and index); its summary stays, marked deleted, and the
//! tree keeps the records' leaf hashes, so checkpoints and proofs of the
//! other records still verify. The newest segment is never deleted (it
//! carries the tail the log continues from).

use std::{fs, io, path::Path};

use super::segment::{
    Line, LineReader, SegmentInfo, SegmentMeta, list_segments, read_index, read_meta,
};
use crate::audit::{checkpoint::write_atomic, record::AuditRecord, time::Timestamp};

/// Deletes the expired segments of the log in `dir`, except `active` (the
/// first seq of the segment being written) and the newest; returns what
/// was deleted.
pub(crate) fn sweep(
    dir: &Path,
    active: Option<u64>,
    now: Timestamp,
) -> io::Result<Vec<(SegmentInfo, SegmentMeta)>> {
    let segments = list_segments(dir)?;
    let newest = segments
        .iter()
        .rev()
        .find(|s| s.present)
        .map(|s| s.first_seq);
    let mut deleted = Vec::new();
    for seg in segments.iter().filter(|s| s.present) {
        if Some(seg.first_seq) == newest || Some(seg.first_seq) == active {
            continue;
        }
        let mut meta = match read_meta(&seg.meta)? {
            Some(m) => m,
            None => {
                let m = summarize(seg)?;
                write_atomic(
                    &seg.meta,
                    &serde_json::to_vec(&m).map_err(io::Error::other)?,
                )?;
                m
            }
        };
        if meta.max_expires_at > now {
            continue;
        }
        meta.deleted_at = Some(now);
        write_atomic(
            &seg.meta,
            &serde_json::to_vec(&meta).map_err(io::Error::other)?,
        )?;
        fs::remove_file(&seg.records)?;
        match fs::remove_file(&seg.index) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        deleted.push((seg.clone(), meta));
    }
    Ok(deleted)
}

/// The summary of a sealed segment whose `.meta` was not written (a crash
/// after the seal): from its last index entry and the records after it.
pub(crate) fn summarize(seg: &SegmentInfo) -> io::Result<SegmentMeta> {
    let entries = read_index(&seg.index)?;
    let (offset, mut max_expiry) = entries.last().map_or((0, Timestamp(i64::MIN)), |e| {
        (e.offset, e.max_expiry_before)
    });
    let mut last = None;
    let mut r = LineReader::open(&seg.records, offset)?;
    while let Some(Line::Whole(_, line)) = r.next_line()? {
        let rec =
            AuditRecord::parse(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        max_expiry = max_expiry.max(rec.retention.expires_at);
        last = Some((rec.seq, rec.time));
    }
    let (last_seq, last_time) = last.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no record", seg.records.display()),
        )
    })?;
    Ok(SegmentMeta {
        first_seq: seg.first_seq,
        last_seq,
        first_time: seg.first_time,
        last_time,
        max_expires_at: max_expiry,
        bytes: r.offset(),
        deleted_at: None,
    })
}
