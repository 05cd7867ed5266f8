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
//! [`AuditLog::append`] assigns the record's sequence number, id and time
//! under a short lock, queues it for the writer thread and returns them at
//! once. The writer takes whatever is queued as one batch: it encodes each
//! record (with the previous record's hash), hashes it into the tree,
//! writes the batch with one `write`, and fsyncs by the [`FsyncPolicy`]
//! (group commit: the records that arrive during one fsync share the
//! next). [`AuditLog::append_durable`] waits until its record is fsynced;
//! callers use it for tier >= 2 decisions before forwarding.
//!
//! # Failing closed
//!
//! When a write fails (disk full, permissions), the batch is cut from the
//! file, kept in memory and retried; meanwhile `append` returns
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
        mpsc,
    },
    thread,
};

use tokio::sync::watch;

use super::{error::AuditError, record::AuditEntry};

mod active;
mod config;
mod counters;
mod files;
mod recover;
mod retention;
pub mod segment;
mod shared;
mod writer;

pub use config::{AuditConfig, FsyncPolicy, RetentionPolicy};
pub use counters::AuditCounters;
use counters::Counters;
pub use files::{LOCK_FILE, TREE_DIR, VKEY_FILE};
pub use shared::Appended;
pub(crate) use shared::{Msg, Progress, Sequencer, Shared};

/// An open audit log: cheap to clone, shared by every producer. The log
/// closes when [`AuditLog::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = close(&self.shared, &self.writer);
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

fn close(
    shared: &Shared,
    writer: &Mutex<Option<thread::JoinHandle<()>>>,
) -> Result<(), AuditError> {
    let (tx, rx) = mpsc::sync_channel(1);
    let sent = {
        let mut s = shared.seq.lock().expect("sequencer lock");
        match s.tx.take() {
            Some(sender) => sender.send(Msg::Close(tx)).is_ok(),
            None => false,
        }
    };
    let result = if sent {
        rx.recv().unwrap_or(Ok(()))
    } else {
        Ok(())
    };
    if let Some(handle) = writer.lock().expect("writer handle").take() {
        let _ = handle.join();
    }
    result
}

impl AuditLog {
    /// Opens (or creates) the log in `config.dir`, repairs its tail and
    /// starts its writer thread.
    pub fn open(mut config: AuditConfig) -> Result<AuditLog, AuditError> {
        let opened = recover::open(&mut config)?;
        let (tx, rx) = mpsc::channel();
        let (progress, _) = watch::channel(Progress {
            written: opened.next_seq,
            durable: opened.next_seq,
            failure: None,
        });
        let shared = Arc::new(Shared {
            dir: config.dir.clone(),
            seq: Mutex::new(Sequencer {
                next_seq: opened.next_seq,
                last_time: opened.last_time,
                tx: Some(tx),
            }),
            failing: AtomicBool::new(false),
            failure: Mutex::new(None),
            counters: Counters::default(),
            progress,
            retention: config.retention.clone(),
            max_queued: config.max_queued,
        });
        let repaired = opened.repaired.clone();
        let w = writer::Writer::new(config, opened, shared.clone(), rx);
        let handle = thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || w.run())
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
                writer: Mutex::new(Some(handle)),
            }),
        };
        if let Some((entry, note)) = repaired {
            tracing::warn!(dir = %log.dir().display(), "{note}");
            Counters::add(&log.inner.shared.counters.repairs, 1);
            log.append(entry)?;
        }
        Ok(log)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Queues a record and returns its sequence number, id and time at
    /// once. The record reaches the file within one batch and is fsynced
    /// by the log's [`FsyncPolicy`]. An error means the record will not be
    /// kept: refuse the action.
    pub fn append(&self, entry: AuditEntry) -> Result<Appended, AuditError> {
        self.inner.shared.enqueue(entry, false)
    }

    /// Appends a record and waits until it is fsynced (a tier >= 2
    /// decision, before the call is forwarded). An error means it is not
    /// durable: refuse the action.
    pub async fn append_durable(&self, entry: AuditEntry) -> Result<Appended, AuditError> {
        let mut rx = self.inner.shared.progress.subscribe();
        let appended = self.inner.shared.enqueue(entry, true)?;
        self.wait(&mut rx, appended.seq, true).await?;
        Ok(appended)
    }

    /// Appends a record and waits until it is written to the file (in the
    /// kernel, not yet fsynced): a tier-1 record before forwarding.
    pub async fn append_written(&self, entry: AuditEntry) -> Result<Appended, AuditError> {
        let mut rx = self.inner.shared.progress.subscribe();
        let appended = self.inner.shared.enqueue(entry, false)?;
        self.wait(&mut rx, appended.seq, false).await?;
        Ok(appended)
    }

    async fn wait(
        &self,
        rx: &mut watch::Receiver<Progress>,
        seq: u64,
        durable: bool,
    ) -> Result<(), AuditError> {
        let done = |p: &Progress| {
            if durable {
                p.durable > seq
            } else {
                p.written > seq
            }
        };
        let closed = || AuditError::Closed {
            dir: self.inner.shared.dir.clone(),
        };
        let p = rx
            .wait_for(|p| done(p) || p.failure.is_some())
            .await
            .map_err(|_| closed())?;
        if done(&p) {
            return Ok(());
        }
        Err(p.failure.clone().unwrap_or_else(closed))
    }

    /// Writes and fsyncs everything queued so far (blocking).
    pub fn sync(&self) -> Result<(), AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Msg::Sync(tx))?;
        rx.recv().map_err(|_| AuditError::Closed {
            dir: self.inner.shared.dir.clone(),
        })?
    }

    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        let s = self.inner.shared.seq.lock().expect("sequencer lock");
        let closed = || AuditError::Closed {
            dir: self.inner.shared.dir.clone(),
        };
        s.tx.as_ref()
            .ok_or_else(closed)?
            .send(msg)
            .map_err(|_| closed())
    }

    /// Records written and fsynced so far (counts: the next seq).
    pub fn progress(&self) -> (u64, u64) {
        let p = self.inner.shared.progress.borrow();
        (p.written, p.durable)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> AuditCounters {
        self.inner
            .shared
            .counters
            .snapshot(self.inner.shared.failing.load(Ordering::Acquire))
    }

    /// Writes, fsyncs and signs a last checkpoint, then stops the writer.
    /// Further appends (from clones too) return [`AuditError::Closed`].
    pub fn close(&self) -> Result<(), AuditError> {
        close(&self.inner.shared, &self.inner.writer)
    }
}

#[cfg(test)]
mod tests;
