//! The embedded append-only store: segment files of JSON lines, a sparse
//! time index per segment, the Merkle tree's node files and the signed
//! checkpoints, all under one directory:
//!
//! ```text
//! DIR/lock                      held (flock) by the process writing the log
//! DIR/segments/seg-<seq>-<time>.jsonl|.idx|.meta
//! DIR/tree/level-NN             complete tree nodes per level
//! DIR/checkpoints               every signed checkpoint (notes, blank-line separated)
//! DIR/checkpoint                the latest one
//! DIR/log.vkey                  the verifier key of the checkpoints
//! ```
//!
//! # Writing
//!
//! An appender takes the log's lock, and under it assigns the record's
//! sequence number, id and time, encodes it (with the previous record's
//! hash), hashes it into the tree and adds it to what is pending: no
//! thread hop on the caller's path. [`AuditLog::append`] returns then; the
//! background thread writes the pending records with one `write`.
//! [`AuditLog::append_written`] writes them itself before it returns (a
//! tier-1 call's record is in the kernel before the call is forwarded).
//! [`AuditLog::append_durable`] also waits until its record is fsynced;
//! callers use it for tier >= 2 decisions before forwarding. The
//! background thread fsyncs by the [`FsyncPolicy`] *without* the lock, so
//! appenders go on writing during an fsync (group commit: the records
//! written during one fsync share the next).
//!
//! # Failing closed
//!
//! When a write fails (disk full, permissions), the batch is cut from the
//! file, kept in memory and retried by the background thread; meanwhile
//! `append` returns
//! [`AuditError::Unwritable`] and `append_durable` waiters get it too, so
//! the caller refuses the action. A failed fsync poisons the log until it
//! is reopened. [`AuditLog::counters`] reports what happened.
//!
//! # Restart
//!
//! [`AuditLog::open`] finds the last segment's tail from its index,
//! repairs a torn last line (cut, logged, and recorded as a
//! `log_repaired` record), cuts or completes the tree files to the
//! records and continues the sequence and the tree.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use tokio::sync::watch;

use super::{error::AuditError, record::AuditEntry};

mod active;
mod background;
mod config;
mod counters;
mod files;
mod locked;
mod recover;
mod retention;
pub mod segment;
mod shared;
mod writer;

pub use config::{AuditConfig, FsyncPolicy, RetentionPolicy};
pub use counters::AuditCounters;
use counters::Counters;
pub use files::{LOCK_FILE, TREE_DIR, VKEY_FILE};
use locked::Locked;
pub use shared::Appended;
pub(crate) use shared::{Progress, Shared};
use writer::Wait;

/// An open audit log: cheap to clone, shared by every producer. The log
/// closes when [`AuditLog::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Locked>,
    background: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = close(&self.shared, &self.background);
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.inner.shared.shared.dir)
            .finish_non_exhaustive()
    }
}

fn close(
    shared: &Locked,
    background: &Mutex<Option<thread::JoinHandle<()>>>,
) -> Result<(), AuditError> {
    let writer = shared.lock().take();
    shared.wake.notify_all();
    if let Some(handle) = background.lock().expect("background handle").take() {
        let _ = handle.join();
    }
    match writer {
        Some(mut w) => w.close_out(&shared.shared),
        None => Ok(()),
    }
}

impl AuditLog {
    /// Opens (or creates) the log in `config.dir`, repairs its tail and
    /// starts its background thread.
    pub fn open(mut config: AuditConfig) -> Result<AuditLog, AuditError> {
        let opened = recover::open(&mut config)?;
        let (progress, _) = watch::channel(Progress {
            written: opened.next_seq,
            durable: opened.next_seq,
            failure: None,
        });
        let repaired = opened.repaired.clone();
        let status = Shared {
            dir: config.dir.clone(),
            retention: config.retention.clone(),
            max_queued: config.max_queued,
            failing: AtomicBool::new(false),
            failure: Mutex::new(None),
            counters: Counters::default(),
            progress,
        };
        let shared = Arc::new(Locked::new(status, writer::Writer::new(config, opened)));
        let bg = shared.clone();
        let handle = thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || background::run(bg))
            .map_err(|e| {
                AuditError::open(
                    "the audit writer thread",
                    e,
                    "check the process's thread limit",
                )
            })?;
        let log = AuditLog {
            inner: Arc::new(Inner {
                shared,
                background: Mutex::new(Some(handle)),
            }),
        };
        if let Some((entry, note)) = repaired {
            tracing::warn!(dir = %log.dir().display(), "{note}");
            Counters::add(&log.inner.shared.shared.counters.repairs, 1);
            log.append(entry)?;
        }
        Ok(log)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.shared.dir
    }

    /// Adds a record and returns its sequence number, id and time at
    /// once. The background thread writes it within one turn and it is
    /// fsynced by the log's [`FsyncPolicy`]. An error means the record
    /// will not be kept: refuse the action.
    pub fn append(&self, entry: AuditEntry) -> Result<Appended, AuditError> {
        self.inner.shared.append(entry, Wait::No)
    }

    /// Appends a record and waits until it is fsynced (a tier >= 2
    /// decision, before the call is forwarded). An error means it is not
    /// durable: refuse the action.
    pub async fn append_durable(&self, entry: AuditEntry) -> Result<Appended, AuditError> {
        let mut rx = self.inner.shared.shared.progress.subscribe();
        let appended = self.inner.shared.append(entry, Wait::Durable)?;
        let closed = || AuditError::Closed {
            dir: self.inner.shared.shared.dir.clone(),
        };
        let done = |p: &Progress| p.durable > appended.seq;
        let p = rx
            .wait_for(|p| done(p) || p.failure.is_some())
            .await
            .map_err(|_| closed())?;
        if done(&p) {
            return Ok(appended);
        }
        Err(p.failure.clone().unwrap_or_else(closed))
    }

    /// Appends a record and writes it to the file before returning (in
    /// the kernel, not yet fsynced): a tier-1 record before forwarding.
    /// The write happens on the caller's thread, under the log's lock.
    pub async fn append_written(&self, entry: AuditEntry) -> Result<Appended, AuditError> {
        self.inner.shared.append(entry, Wait::Written)
    }

    /// Writes and fsyncs everything appended so far (blocking).
    pub fn sync(&self) -> Result<(), AuditError> {
        let shared = &self.inner.shared;
        match shared.lock().as_mut() {
            Some(w) => w.sync_all(&shared.shared),
            None => Err(shared.shared.closed()),
        }
    }

    /// Records written and fsynced so far (counts: the next seq).
    pub fn progress(&self) -> (u64, u64) {
        let p = self.inner.shared.shared.progress.borrow();
        (p.written, p.durable)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> AuditCounters {
        let shared = &self.inner.shared.shared;
        shared
            .counters
            .snapshot(shared.failing.load(Ordering::Acquire))
    }

    /// Writes, fsyncs and signs a last checkpoint, then stops the writer.
    /// Further appends (from clones too) return [`AuditError::Closed`].
    pub fn close(&self) -> Result<(), AuditError> {
        close(&self.inner.shared, &self.inner.background)
    }
}

#[cfg(test)]
mod tests;
