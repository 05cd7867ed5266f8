//! What the log's handles and its background thread share: the writing
//! state behind one lock, the condition variable that wakes the
//! background thread, the failure state and the progress published to
//! the appenders that wait.

use std::{
    path::PathBuf,
    sync::{
        Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

use super::{
    config::RetentionPolicy,
    counters::Counters,
    writer::{Wait, Writer},
};
use crate::audit::{
    error::AuditError,
    record::{AuditEntry, Retention},
    time::Timestamp,
};

/// What `append` assigned to a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number (leaf index).
    pub seq: u64,
    /// Record id (UUIDv7).
    pub id: String,
    /// Record time.
    pub time: Timestamp,
}

/// What the log has done, published after every write and fsync.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Records written (count, i.e. the next seq to write).
    pub written: u64,
    /// Records fsynced (count).
    pub durable: u64,
    /// Why writing currently fails.
    pub failure: Option<AuditError>,
}

/// A record with what the log assigned to it.
pub(crate) struct Queued {
    pub seq: u64,
    pub id: String,
    pub time: Timestamp,
    pub entry: AuditEntry,
    pub retention: Retention,
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    /// The writing state; `None` once the log is closed.
    pub(crate) writer: Mutex<Option<Writer>>,
    /// Wakes the background thread (records to write, an fsync wanted,
    /// the log closed).
    pub(crate) wake: Condvar,
    pub(crate) failing: AtomicBool,
    pub(crate) failure: Mutex<Option<AuditError>>,
    pub counters: Counters,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) retention: RetentionPolicy,
    pub(crate) max_queued: u64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Writer>> {
        // A panic under the lock leaves a state that is still consistent
        // record by record; the log goes on.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed(&self) -> AuditError {
        AuditError::Closed {
            dir: self.dir.clone(),
        }
    }

    /// The retention class of a record and how long it is kept.
    pub(crate) fn retention_of(
        &self,
        entry: &AuditEntry,
    ) -> Result<(String, Duration), AuditError> {
        let class = entry
            .retention_class
            .clone()
            .unwrap_or_else(|| self.retention.default_class.clone());
        match self.retention.classes.get(&class).copied() {
            Some(keep) => Ok((class, keep)),
            None => Err(AuditError::UnknownRetentionClass {
                class,
                known: self
                    .retention
                    .classes
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Appends a record: refused at once while the log fails, and when
    /// closed; with [`Wait::Written`] it is in the file on return.
    pub(crate) fn append(&self, entry: AuditEntry, wait: Wait) -> Result<Appended, AuditError> {
        let refuse = |e: AuditError| {
            Counters::add(&self.counters.refused, 1);
            Err(e)
        };
        if self.failing.load(Ordering::Acquire) {
            let e = self.failure.lock().expect("failure lock").clone();
            return refuse(e.unwrap_or_else(|| self.closed()));
        }
        let queued = self
            .counters
            .appended
            .load(Ordering::Relaxed)
            .saturating_sub(self.counters.written.load(Ordering::Relaxed));
        if queued >= self.max_queued {
            return refuse(AuditError::Backlog {
                dir: self.dir.clone(),
                queued,
                limit: self.max_queued,
            });
        }
        let retention = match self.retention_of(&entry) {
            Ok(r) => r,
            Err(e) => return refuse(e),
        };
        let mut guard = self.lock();
        let Some(w) = guard.as_mut() else {
            return refuse(self.closed());
        };
        let (appended, wake) = w.append(self, entry, retention, wait)?;
        drop(guard);
        if wake {
            self.wake.notify_one();
        }
        Ok(appended)
    }

    pub(crate) fn set_failure(&self, failure: Option<AuditError>) {
        let failing = failure.is_some();
        *self.failure.lock().expect("failure lock") = failure.clone();
        self.failing.store(failing, Ordering::Release);
        self.progress.send_modify(|p| p.failure = failure);
    }
}
