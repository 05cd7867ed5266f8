//! What the log's handle and its writer thread share: the sequencer that
//! numbers records, the queue's messages, the failure state and the
//! progress the writer publishes.

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
};

use tokio::sync::watch;

use super::{config::RetentionPolicy, counters::Counters};
use crate::audit::{
    error::AuditError,
    id::record_id,
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

/// What the writer has done, published after every batch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Records written (count, i.e. the next seq to write).
    pub written: u64,
    /// Records fsynced (count).
    pub durable: u64,
    /// Why writing currently fails.
    pub failure: Option<AuditError>,
}

pub(crate) enum Msg {
    Record(Box<Queued>),
    Sync(mpsc::SyncSender<Result<(), AuditError>>),
    Close(mpsc::SyncSender<Result<(), AuditError>>),
}

pub(crate) struct Queued {
    pub seq: u64,
    pub id: String,
    pub time: Timestamp,
    pub entry: AuditEntry,
    pub retention: Retention,
    pub durable: bool,
}

pub(crate) struct Sequencer {
    pub(crate) next_seq: u64,
    pub(crate) last_time: Timestamp,
    pub(crate) tx: Option<mpsc::Sender<Msg>>,
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) seq: Mutex<Sequencer>,
    pub(crate) failing: AtomicBool,
    pub(crate) failure: Mutex<Option<AuditError>>,
    pub counters: Counters,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) retention: RetentionPolicy,
    pub(crate) max_queued: u64,
}

impl Shared {
    pub(crate) fn enqueue(&self, entry: AuditEntry, durable: bool) -> Result<Appended, AuditError> {
        if self.failing.load(Ordering::Acquire) {
            Counters::add(&self.counters.refused, 1);
            let e = self.failure.lock().expect("failure lock").clone();
            return Err(e.unwrap_or_else(|| AuditError::Closed {
                dir: self.dir.clone(),
            }));
        }
        let queued = self
            .counters
            .appended
            .load(Ordering::Relaxed)
            .saturating_sub(self.counters.written.load(Ordering::Relaxed));
        if queued >= self.max_queued {
            Counters::add(&self.counters.refused, 1);
            return Err(AuditError::Backlog {
                dir: self.dir.clone(),
                queued,
                limit: self.max_queued,
            });
        }
        let class = entry
            .retention_class
            .clone()
            .unwrap_or_else(|| self.retention.default_class.clone());
        let Some(keep) = self.retention.classes.get(&class).copied() else {
            Counters::add(&self.counters.refused, 1);
            return Err(AuditError::UnknownRetentionClass {
                class,
                known: self
                    .retention
                    .classes
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let mut s = self.seq.lock().expect("sequencer lock");
        let Some(tx) = &s.tx else {
            Counters::add(&self.counters.refused, 1);
            return Err(AuditError::Closed {
                dir: self.dir.clone(),
            });
        };
        // Times never go back along the log (the index relies on it).
        let time = Timestamp::now().max(s.last_time);
        let seq = s.next_seq;
        let id = record_id(time, &mut rand::rng());
        let queued = Queued {
            seq,
            id: id.clone(),
            time,
            retention: Retention {
                class,
                expires_at: time.plus(keep),
            },
            entry,
            durable,
        };
        if tx.send(Msg::Record(Box::new(queued))).is_err() {
            Counters::add(&self.counters.refused, 1);
            return Err(AuditError::Closed {
                dir: self.dir.clone(),
            });
        }
        s.next_seq += 1;
        s.last_time = time;
        Counters::add(&self.counters.appended, 1);
        Ok(Appended { seq, id, time })
    }

    pub(crate) fn set_failure(&self, failure: Option<AuditError>) {
        let failing = failure.is_some();
        *self.failure.lock().expect("failure lock") = failure.clone();
        self.failing.store(failing, Ordering::Release);
        self.progress.send_modify(|p| p.failure = failure);
    }
}
