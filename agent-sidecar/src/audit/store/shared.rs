//! What the log's writing state reports to everyone else: the failure
//! state, the counters, the progress published to the appenders that wait,
//! and what a record's retention class means.

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

use super::{config::RetentionPolicy, counters::Counters};
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
    pub(crate) failing: AtomicBool,
    pub(crate) failure: Mutex<Option<AuditError>>,
    pub counters: Counters,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) retention: RetentionPolicy,
    pub(crate) max_queued: u64,
}

impl Shared {
    pub(crate) fn closed(&self) -> AuditError {
        AuditError::Closed {
            dir: self.dir.clone(),
        }
    }

    /// Refuses an append: counted.
    pub(crate) fn refuse<T>(&self, e: AuditError) -> Result<T, AuditError> {
        Counters::add(&self.counters.refused, 1);
        Err(e)
    }

    /// Why appends are refused before the lock is taken: the log fails,
    /// or too many records wait to be written.
    pub(crate) fn admit(&self) -> Result<(), AuditError> {
        if self.failing.load(Ordering::Acquire) {
            let e = self.failure.lock().expect("failure lock").clone();
            return self.refuse(e.unwrap_or_else(|| self.closed()));
        }
        let queued = self
            .counters
            .appended
            .load(Ordering::Relaxed)
            .saturating_sub(self.counters.written.load(Ordering::Relaxed));
        if queued >= self.max_queued {
            return self.refuse(AuditError::Backlog {
                dir: self.dir.clone(),
                queued,
                limit: self.max_queued,
            });
        }
        Ok(())
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

    pub(crate) fn set_failure(&self, failure: Option<AuditError>) {
        let failing = failure.is_some();
        *self.failure.lock().expect("failure lock") = failure.clone();
        self.failing.store(failing, Ordering::Release);
        self.progress.send_modify(|p| p.failure = failure);
    }
}
