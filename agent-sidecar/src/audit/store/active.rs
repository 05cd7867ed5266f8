//! The segment being written: its records and index files, what is
//! pending for them, and what its summary needs.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::segment::{IndexEntry, SegmentInfo, SegmentMeta};
use crate::audit::{checkpoint::write_atomic, time::Timestamp};

/// A write that failed: the file and the error.
pub(crate) type WriteFailure = (PathBuf, io::Error);

pub(crate) struct ActiveSegment {
    pub info: SegmentInfo,
    /// Created by the first flush, so that a segment that cannot be
    /// created holds its records in memory until it can. Shared with the
    /// background thread, which fsyncs it without holding the log's lock.
    file: Option<Arc<File>>,
    index: Option<File>,
    /// Bytes in the records file.
    len: u64,
    pending: Vec<u8>,
    pending_records: u64,
    index_len: u64,
    index_pending: Vec<u8>,
    last_index_offset: Option<u64>,
    index_every: u64,
    pub last_seq: Option<u64>,
    pub last_time: Timestamp,
    pub max_expiry: Timestamp,
    /// Bytes of the records file known to be fsynced.
    synced_len: u64,
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// The open file, opening (creating) it first.
fn opened<'a, F: From<File>>(slot: &'a mut Option<F>, path: &Path) -> Result<&'a F, WriteFailure> {
    if slot.is_none() {
        let f = open_rw(path).map_err(|e| (path.to_path_buf(), e))?;
        // Make the new name durable with the first fsync of its data.
        if let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        *slot = Some(F::from(f));
    }
    Ok(slot.as_ref().expect("opened above"))
}

impl ActiveSegment {
    /// A new segment whose first record is `first_seq` at `first_time`;
    /// its files are created by the first flush.
    pub(super) fn create(
        seg_dir: &Path,
        first_seq: u64,
        first_time: Timestamp,
        index_every: u64,
    ) -> ActiveSegment {
        let mut info = SegmentInfo::new(seg_dir, first_seq, first_time);
        info.present = true;
        ActiveSegment {
            info,
            file: None,
            index: None,
            len: 0,
            pending: Vec::with_capacity(1 << 20),
            pending_records: 0,
            index_len: 0,
            index_pending: Vec::new(),
            last_index_offset: None,
            index_every,
            last_seq: None,
            last_time: first_time,
            max_expiry: Timestamp(i64::MIN),
            synced_len: 0,
        }
    }

    /// Continues an existing segment of `len` bytes whose index holds
    /// `entries`.
    pub(super) fn reopen(
        info: SegmentInfo,
        len: u64,
        entries: &[IndexEntry],
        last_seq: u64,
        last_time: Timestamp,
        max_expiry: Timestamp,
        index_every: u64,
    ) -> io::Result<ActiveSegment> {
        let file = Arc::new(open_rw(&info.records)?);
        let index = open_rw(&info.index)?;
        let index_len = (entries.len() * super::segment::INDEX_ENTRY) as u64;
        index.set_len(index_len)?;
        Ok(ActiveSegment {
            info,
            file: Some(file),
            index: Some(index),
            len,
            pending: Vec::with_capacity(1 << 20),
            pending_records: 0,
            index_len,
            index_pending: Vec::new(),
            last_index_offset: entries.last().map(|e| e.offset),
            index_every,
            last_seq: Some(last_seq),
            last_time,
            max_expiry,
            synced_len: len,
        })
    }

    /// Adds one record's line (without the newline).
    pub(super) fn add(&mut self, line: &[u8], seq: u64, time: Timestamp, expires: Timestamp) {
        let offset = self.size();
        if self
            .last_index_offset
            .is_none_or(|last| offset - last >= self.index_every)
        {
            let e = IndexEntry {
                time,
                seq,
                offset,
                max_expiry_before: self.max_expiry,
            };
            self.index_pending.extend_from_slice(&e.encode());
            self.last_index_offset = Some(offset);
        }
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        self.pending_records += 1;
        self.last_seq = Some(seq);
        self.last_time = time;
        self.max_expiry = self.max_expiry.max(expires);
    }

    /// Bytes written and pending.
    pub(super) fn size(&self) -> u64 {
        self.len + self.pending.len() as u64
    }

    /// Records not yet written.
    pub(super) fn pending_records(&self) -> u64 {
        self.pending_records
    }

    /// Writes what is pending with one write per file. A failed write is
    /// cut from the file and stays pending. Returns the records and bytes
    /// written.
    pub(super) fn flush(&mut self) -> Result<(u64, u64), WriteFailure> {
        let (mut records, mut bytes) = (0, 0);
        if !self.pending.is_empty() {
            let file = opened(&mut self.file, &self.info.records)?;
            if let Err(e) = file.write_all_at(&self.pending, self.len) {
                let _ = file.set_len(self.len);
                return Err((self.info.records.clone(), e));
            }
            self.len += self.pending.len() as u64;
            bytes = self.pending.len() as u64;
            records = self.pending_records;
            self.pending.clear();
            self.pending_records = 0;
        }
        if !self.index_pending.is_empty() {
            let index = opened(&mut self.index, &self.info.index)?;
            if let Err(e) = index.write_all_at(&self.index_pending, self.index_len) {
                let _ = index.set_len(self.index_len);
                return Err((self.info.index.clone(), e));
            }
            self.index_len += self.index_pending.len() as u64;
            self.index_pending.clear();
        }
        Ok((records, bytes))
    }

    /// Whether written bytes wait for an fsync.
    pub(super) fn dirty(&self) -> bool {
        self.len > self.synced_len
    }

    /// fsyncs the records file (its data; the size is part of it).
    pub(super) fn sync(&mut self) -> Result<(), WriteFailure> {
        if let (true, Some(file)) = (self.dirty(), &self.file) {
            file.sync_data()
                .map_err(|e| (self.info.records.clone(), e))?;
        }
        self.synced_len = self.len;
        Ok(())
    }

    /// What an fsync outside the log's lock needs: the records file and
    /// the bytes written so far (None when nothing waits for an fsync).
    pub(super) fn sync_job(&self) -> Option<(Arc<File>, u64)> {
        match &self.file {
            Some(f) if self.dirty() => Some((f.clone(), self.len)),
            _ => None,
        }
    }

    /// Notes that an fsync outside the lock covered the first `len` bytes.
    pub(super) fn synced(&mut self, len: u64) {
        self.synced_len = self.synced_len.max(len);
    }

    /// fsyncs the index file (at close and seal; an index lost in a crash
    /// is rebuilt from the records' tail).
    pub(super) fn sync_index(&mut self) {
        if let Some(index) = &self.index {
            let _ = index.sync_data();
        }
    }

    /// Flushes and fsyncs both files and writes the summary: the segment
    /// takes no more records.
    pub(super) fn seal(mut self) -> Result<SegmentMeta, Box<(ActiveSegment, WriteFailure)>> {
        if let Err(e) = self.flush() {
            return Err(Box::new((self, e)));
        }
        if let Err(e) = self.sync() {
            return Err(Box::new((self, e)));
        }
        self.sync_index();
        let meta = SegmentMeta {
            first_seq: self.info.first_seq,
            last_seq: self.last_seq.unwrap_or(self.info.first_seq),
            first_time: self.info.first_time,
            last_time: self.last_time,
            max_expires_at: self.max_expiry,
            bytes: self.len,
            deleted_at: None,
        };
        // Best effort: retention recomputes a missing summary.
        let text = serde_json::to_vec(&meta).expect("meta serializes");
        let _ = write_atomic(&self.info.meta, &text);
        Ok(meta)
    }
}
