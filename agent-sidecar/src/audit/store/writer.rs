//! The log's writing state: appenders number, encode, hash and add their
//! records (and write them when they wait for that); the background
//! thread's turns write the rest, seal segments, sign checkpoints and
//! prepare the fsyncs it runs outside the lock.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    active::{ActiveSegment, WriteFailure},
    config::{AuditConfig, FsyncPolicy},
    counters::Counters,
    recover::Opened,
    segment::{SEGMENTS_DIR, SegmentInfo, SegmentMeta},
    shared::{Appended, Queued, Shared},
};
use crate::audit::{
    checkpoint::{CheckpointError, Checkpointer},
    error::AuditError,
    hash::{Hash, leaf_hash},
    id::record_id,
    record::{AgentIdentity, AuditEntry, AuditRecord, Phase, RecordKind, Retention},
    time::Timestamp,
    tree::TreeFiles,
};

/// Longest sleep of the background thread between two looks at the clock.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The log's state, behind the lock of [`Shared`]: an appender encodes,
/// hashes and adds its record under it (and writes it when it waits for
/// that); the background thread flushes, fsyncs (outside the lock),
/// signs checkpoints and applies retention.
pub(crate) struct Writer {
    dir: PathBuf,
    seg_dir: PathBuf,
    fsync: FsyncPolicy,
    segment_max_bytes: u64,
    segment_max_age: Duration,
    index_every: u64,
    checkpoint_interval: Duration,
    sweep_interval: Duration,
    retry_interval: Duration,
    identity: AgentIdentity,
    _lock: nix::fcntl::Flock<std::fs::File>,
    active: Option<ActiveSegment>,
    tree: TreeFiles,
    prev: Hash,
    next_seq: u64,
    /// Time of the last record: times never go back along the log (the
    /// index relies on it).
    last_time: Timestamp,
    durable: u64,
    durable_wanted: bool,
    last_sync: Instant,
    checkpointer: Option<Checkpointer>,
    last_checkpoint: Instant,
    last_sweep: Instant,
    last_retry: Instant,
    failure: Option<AuditError>,
    poisoned: bool,
    /// The background thread's sleep ends within the fsync window: it
    /// will write and fsync what is pending without being woken.
    watching: bool,
    /// The segment was fsynced outside the lock for the checkpoint due.
    presynced: bool,
    line: Vec<u8>,
}

/// An fsync the background thread runs without the lock.
pub(crate) struct SyncJob {
    file: Arc<std::fs::File>,
    path: PathBuf,
    first_seq: u64,
    len: u64,
    written: u64,
}

impl SyncJob {
    /// fsyncs the records file's data.
    pub(crate) fn run(&self) -> Result<(), std::io::Error> {
        self.file.sync_data()
    }
}

/// Whether a write includes the tree's node files: an appender that waits
/// writes only its record lines (the node files are rebuilt from the
/// records after a crash; the background thread writes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tree {
    Now,
    Later,
}

/// How an appender waits for its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: the background thread writes it.
    No,
    /// Until it is written to the file (by the appender itself).
    Written,
    /// Until it is fsynced (by the background thread).
    Durable,
}

impl Writer {
    pub(super) fn new(cfg: AuditConfig, opened: Opened) -> Writer {
        let now = Instant::now();
        Writer {
            seg_dir: cfg.dir.join(SEGMENTS_DIR),
            dir: cfg.dir,
            fsync: cfg.fsync,
            segment_max_bytes: cfg.segment_max_bytes,
            segment_max_age: cfg.segment_max_age,
            index_every: cfg.index_every_bytes.max(1),
            checkpoint_interval: cfg.checkpoint_interval,
            sweep_interval: cfg.retention_sweep_interval,
            retry_interval: cfg.retry_interval,
            identity: cfg.identity,
            _lock: opened._lock,
            active: opened.active,
            tree: opened.tree,
            prev: opened.prev,
            next_seq: opened.next_seq,
            last_time: opened.last_time,
            durable: opened.next_seq,
            durable_wanted: false,
            last_sync: now,
            checkpointer: opened.checkpointer,
            last_checkpoint: now,
            last_sweep: now,
            last_retry: now,
            failure: None,
            poisoned: false,
            watching: false,
            presynced: false,
            line: Vec::with_capacity(4096),
        }
    }

    /// Records written to the file (count).
    fn written(&self) -> u64 {
        self.next_seq - self.active.as_ref().map_or(0, |a| a.pending_records())
    }

    /// Numbers, encodes, hashes and adds a record; writes it when the
    /// appender waits for that. Returns what was assigned, and whether
    /// the background thread must be woken.
    pub(super) fn append(
        &mut self,
        sh: &Shared,
        entry: AuditEntry,
        retention: (String, Duration),
        wait: Wait,
    ) -> Result<(Appended, bool), AuditError> {
        let time = Timestamp::now().max(self.last_time);
        let seq = self.next_seq;
        let id = record_id(time, &mut rand::rng());
        let (class, keep) = retention;
        self.take(
            sh,
            Queued {
                seq,
                id: id.clone(),
                time,
                retention: Retention {
                    class,
                    expires_at: time.plus(keep),
                },
                entry,
            },
        );
        self.last_time = time;
        Counters::add(&sh.counters.appended, 1);
        let appended = Appended { seq, id, time };
        let mut wake = false;
        match wait {
            Wait::No => {
                // Written by the next appender that writes, or by the
                // background thread within the fsync window.
                if !self.watching {
                    self.watching = true;
                    wake = true;
                }
            }
            Wait::Written | Wait::Durable => {
                self.write_out(sh, Tree::Later);
                if let Some(e) = &self.failure {
                    return Err(e.clone());
                }
                if wait == Wait::Durable {
                    self.durable_wanted = true;
                    wake = true;
                } else if !self.watching {
                    self.watching = true;
                    wake = true;
                }
            }
        }
        Ok((appended, wake))
    }

    fn take(&mut self, sh: &Shared, q: Queued) {
        self.rotate_if_due(sh, q.time);
        let record = AuditRecord::from_entry(q.entry, q.seq, q.id, q.time, self.prev, q.retention);
        self.line.clear();
        record.encode_into(&mut self.line);
        let leaf = leaf_hash(&self.line);
        self.tree.push(leaf);
        self.prev = leaf;
        self.next_seq += 1;
        let active = self.active.get_or_insert_with(|| {
            ActiveSegment::create(&self.seg_dir, record.seq, record.time, self.index_every)
        });
        active.add(
            &self.line,
            record.seq,
            record.time,
            record.retention.expires_at,
        );
    }

    /// One turn of the background thread (under the lock): write what is
    /// pending (or retry a failed write), seal an old segment, sign a
    /// checkpoint when due. Returns the fsync to run outside the lock, if
    /// one is due.
    pub(super) fn background_turn(&mut self, sh: &Shared) -> Option<SyncJob> {
        if self.failure.is_none() || self.last_retry.elapsed() >= self.retry_interval {
            self.write_out(sh, Tree::Now);
        }
        self.periodic(sh);
        if self.written() <= self.durable {
            self.durable_wanted = false;
        }
        let due = !self.poisoned
            && self.failure.is_none()
            && self.written() > self.durable
            && match self.fsync {
                FsyncPolicy::Always => true,
                FsyncPolicy::Interval(d) => self.durable_wanted || self.last_sync.elapsed() >= d,
            };
        if !due {
            return None;
        }
        let written = self.written();
        let a = self.active.as_ref()?;
        let Some((file, len)) = a.sync_job() else {
            // Written but already fsynced (by a seal or a checkpoint).
            self.durable = self.durable.max(written);
            self.publish(sh);
            return None;
        };
        self.durable_wanted = false;
        Some(SyncJob {
            file,
            path: a.info.records.clone(),
            first_seq: a.info.first_seq,
            len,
            written,
        })
    }

    /// Applies the outcome of an fsync run outside the lock.
    pub(super) fn synced(&mut self, sh: &Shared, job: SyncJob, result: std::io::Result<()>) {
        match result {
            Ok(()) => {
                if let Some(a) = &mut self.active
                    && a.info.first_seq == job.first_seq
                {
                    a.synced(job.len);
                }
                Counters::add(&sh.counters.fsyncs, 1);
                if job.written > self.durable {
                    Counters::add(&sh.counters.durable, job.written - self.durable);
                    self.durable = job.written;
                }
                self.last_sync = Instant::now();
            }
            Err(e) => self.poison(sh, job.path, &e),
        }
        self.publish(sh);
    }

    /// How long the background thread may sleep before something is due;
    /// notes whether that sleep covers the fsync window.
    pub(super) fn sleep_time(&mut self) -> Duration {
        let now = Instant::now();
        let mut due = now + MAX_SLEEP;
        self.watching = false;
        let unsynced = self.next_seq > self.durable;
        if self.failure.is_none() && unsynced {
            self.watching = true;
            match self.fsync {
                FsyncPolicy::Always => due = now,
                FsyncPolicy::Interval(d) => due = due.min(self.last_sync + d),
            }
        }
        if self.durable_wanted && self.failure.is_none() {
            due = now;
        }
        if self.failure.is_some() && !self.poisoned {
            due = due.min(self.last_retry + self.retry_interval);
        }
        if self.checkpointer.is_some() {
            due = due.min(self.last_checkpoint + self.checkpoint_interval);
        }
        due = due.min(self.last_sweep + self.sweep_interval);
        due.saturating_duration_since(now)
    }

    /// Whether retention is due.
    pub(super) fn sweep_due(&self) -> bool {
        self.last_sweep.elapsed() >= self.sweep_interval
    }

    /// The active segment's first record (retention never deletes it).
    pub(super) fn active_first_seq(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.info.first_seq)
    }

    /// Seals the active segment when it is full or old; the next record
    /// starts a new one. A segment that cannot be sealed (its pending
    /// records cannot be written) keeps taking records.
    fn rotate_if_due(&mut self, sh: &Shared, time: Timestamp) {
        let due = self.active.as_ref().is_some_and(|a| {
            a.last_seq.is_some()
                && (a.size() >= self.segment_max_bytes
                    || time.minus(self.segment_max_age) >= a.info.first_time)
        });
        if due {
            self.seal(sh);
        }
    }

    fn seal(&mut self, sh: &Shared) {
        if self.active.as_ref().is_none_or(|a| a.last_seq.is_none()) {
            return;
        }
        if let Err(e) = self.flush(sh, Tree::Now) {
            self.fail(sh, e);
            return;
        }
        self.sync_records(sh);
        if self.poisoned {
            return;
        }
        let a = self.active.take().expect("checked above");
        match a.seal() {
            Ok(_) => Counters::add(&sh.counters.segments_sealed, 1),
            Err(failed) => {
                let (a, e) = *failed;
                self.active = Some(a);
                self.fail(sh, e);
            }
        }
    }

    /// Writes what is pending (the tree's node files too, or left to the
    /// background thread) and publishes; a write that works again ends a
    /// failure.
    fn write_out(&mut self, sh: &Shared, tree: Tree) {
        if self.poisoned {
            return;
        }
        let retrying = self.failure.is_some();
        if retrying {
            self.last_retry = Instant::now();
        }
        if let Err(e) = self.flush(sh, tree) {
            self.fail(sh, e);
            self.publish(sh);
            return;
        }
        if retrying {
            tracing::info!(dir = %self.dir.display(), "audit log: writing again; records are accepted");
            self.failure = None;
            sh.set_failure(None);
        }
        self.publish(sh);
    }

    fn flush(&mut self, sh: &Shared, tree: Tree) -> Result<(), WriteFailure> {
        if let Some(a) = &mut self.active {
            let (records, bytes) = a.flush()?;
            Counters::add(&sh.counters.written, records);
            Counters::add(&sh.counters.bytes, bytes);
        }
        if tree == Tree::Later {
            return Ok(());
        }
        self.tree.flush().map_err(|e| match e {
            crate::audit::tree::TreeFilesError::Io { path, source, .. } => (path, source),
            other => (
                self.tree.dir().to_path_buf(),
                std::io::Error::other(other.to_string()),
            ),
        })
    }

    /// fsyncs the written records under the lock (seal, checkpoint, close).
    fn sync_records(&mut self, sh: &Shared) {
        let written = self.written();
        if let Some(a) = &mut self.active
            && let Err((path, e)) = a.sync()
        {
            self.poison(sh, path, &e);
            return;
        }
        Counters::add(&sh.counters.fsyncs, 1);
        if written > self.durable {
            Counters::add(&sh.counters.durable, written - self.durable);
            self.durable = written;
        }
        self.durable_wanted = false;
        self.last_sync = Instant::now();
    }

    /// A failed fsync: the log refuses records until it is reopened.
    fn poison(&mut self, sh: &Shared, path: PathBuf, e: &std::io::Error) {
        Counters::add(&sh.counters.failures, 1);
        let err = AuditError::Poisoned {
            path,
            reason: e.to_string(),
        };
        tracing::error!("{err}");
        self.poisoned = true;
        self.failure = Some(err.clone());
        sh.set_failure(Some(err));
    }

    fn fail(&mut self, sh: &Shared, (path, e): WriteFailure) {
        Counters::add(&sh.counters.failures, 1);
        let err = AuditError::unwritable(path, &self.dir, &e);
        if self.failure.is_none() {
            tracing::error!("{err}");
        }
        self.failure = Some(err.clone());
        sh.set_failure(Some(err));
    }

    fn publish(&self, sh: &Shared) {
        let (written, durable) = (self.written(), self.durable);
        sh.progress.send_if_modified(|p| {
            let changed = p.written != written || p.durable != durable;
            p.written = written;
            p.durable = durable;
            changed
        });
    }

    /// Writes and fsyncs everything taken so far.
    pub(super) fn sync_all(&mut self, sh: &Shared) -> Result<(), AuditError> {
        if !self.poisoned {
            if let Err(e) = self.flush(sh, Tree::Now) {
                self.fail(sh, e);
            } else if self.written() > self.durable
                || self.active.as_ref().is_some_and(|a| a.dirty())
            {
                self.sync_records(sh);
            }
        }
        self.publish(sh);
        match &self.failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn periodic(&mut self, sh: &Shared) {
        let now = Instant::now();
        if self.checkpointer.is_some() && now >= self.last_checkpoint + self.checkpoint_interval {
            if !self.presynced && self.next_seq > self.durable {
                // fsync outside the lock first (this turn's sync job), so
                // that the checkpoint holds the lock for little more than
                // the tree files and the signature.
                self.presynced = true;
                self.durable_wanted = true;
            } else {
                self.presynced = false;
                self.last_checkpoint = now;
                self.checkpoint(sh);
            }
        }
        // Seal an idle segment that has grown old, so retention can take it.
        let old = self.active.as_ref().is_some_and(|a| {
            a.pending_records() == 0
                && a.last_seq.is_some()
                && Timestamp::now().minus(self.segment_max_age) >= a.info.first_time
        });
        if old && self.failure.is_none() {
            self.seal(sh);
        }
    }

    /// Signs a checkpoint of everything written, once it is durable.
    fn checkpoint(&mut self, sh: &Shared) {
        if self.failure.is_some() {
            return;
        }
        let size = self.next_seq;
        if !self.checkpointer.as_ref().is_some_and(|c| c.is_new(size)) {
            return;
        }
        if self.sync_all(sh).is_err() {
            return;
        }
        if let Err(e) = self.tree.sync() {
            tracing::error!("audit log: cannot sync the tree files before a checkpoint: {e}");
            Counters::add(&sh.counters.failures, 1);
            return;
        }
        let root = self.tree.root();
        let cp = self.checkpointer.as_mut().expect("checked above");
        let started = Instant::now();
        match cp.sign(&self.tree, size, root) {
            Ok((_, sink_errors)) => {
                Counters::add(&sh.counters.checkpoints, 1);
                for e in sink_errors {
                    tracing::warn!("audit log: {e}");
                    Counters::add(&sh.counters.sink_failures, 1);
                }
                if started.elapsed() > crate::audit::checkpoint::SLOW_SINK {
                    tracing::warn!(
                        "audit log: signing and publishing checkpoint {size} took {:?}; a slow sink delays the records",
                        started.elapsed()
                    );
                }
            }
            Err(e @ CheckpointError::Inconsistent { .. }) => {
                Counters::add(&sh.counters.checkpoint_refusals, 1);
                tracing::error!("audit log: {e}");
            }
            Err(e) => {
                Counters::add(&sh.counters.failures, 1);
                tracing::error!("audit log: checkpoint {size}: {e}");
            }
        }
    }

    /// Records segments that retention deleted (found outside the lock).
    pub(super) fn swept(&mut self, sh: &Shared, deleted: Vec<(SegmentInfo, SegmentMeta)>) {
        self.last_sweep = Instant::now();
        for (info, meta) in deleted {
            Counters::add(&sh.counters.segments_deleted, 1);
            tracing::info!(
                segment = %info.file_name(),
                "audit log: retention deleted records {}..={} (expired by {})",
                meta.first_seq,
                meta.last_seq,
                meta.max_expires_at
            );
            let mut entry = AuditEntry::new(
                RecordKind::RetentionApplied,
                Phase::Event,
                self.identity.clone(),
            );
            entry.detail = Some(json!({
                "segment": info.file_name(),
                "first_seq": meta.first_seq,
                "last_seq": meta.last_seq,
                "first_time": meta.first_time,
                "last_time": meta.last_time,
                "max_expires_at": meta.max_expires_at,
                "bytes": meta.bytes,
            }));
            let retention = match sh.retention_of(&entry) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("audit log: cannot record a retention deletion: {e}");
                    continue;
                }
            };
            if let Err(e) = self.append(sh, entry, retention, Wait::No) {
                tracing::error!("audit log: cannot record a retention deletion: {e}");
            }
        }
    }

    /// Writes and fsyncs everything, signs a last checkpoint.
    pub(super) fn close_out(&mut self, sh: &Shared) -> Result<(), AuditError> {
        let result = self.sync_all(sh);
        if let Some(a) = &mut self.active {
            a.sync_index();
        }
        if result.is_ok() {
            if let Err(e) = self.tree.sync() {
                tracing::error!("audit log: cannot sync the tree files at close: {e}");
            }
            self.checkpoint(sh);
        }
        result
    }
}
