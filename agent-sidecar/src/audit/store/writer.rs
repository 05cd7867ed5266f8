//! The writer thread: takes queued records in batches, encodes, hashes
//! and writes them, fsyncs by the policy, signs checkpoints and applies
//! retention.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        mpsc::{self, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    active::{ActiveSegment, WriteFailure},
    config::{AuditConfig, FsyncPolicy},
    counters::Counters,
    recover::Opened,
    retention,
    segment::SEGMENTS_DIR,
    shared::{Msg, Queued, Shared},
};
use crate::audit::{
    checkpoint::{CheckpointError, Checkpointer},
    error::AuditError,
    hash::{Hash, leaf_hash},
    record::{AgentIdentity, AuditEntry, AuditRecord, Phase, RecordKind},
    time::Timestamp,
    tree::TreeFiles,
};

/// Most records taken in one batch before it is written.
const MAX_BATCH: usize = 8192;
/// Longest sleep between two looks at the clock.
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
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
    durable: u64,
    durable_wanted: bool,
    last_sync: Instant,
    checkpointer: Option<Checkpointer>,
    last_checkpoint: Instant,
    last_sweep: Instant,
    last_retry: Instant,
    failure: Option<AuditError>,
    poisoned: bool,
    line: Vec<u8>,
}

impl Writer {
    pub(super) fn new(
        cfg: AuditConfig,
        opened: Opened,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Msg>,
    ) -> Writer {
        let now = Instant::now();
        Writer {
            shared,
            rx,
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
            durable: opened.next_seq,
            durable_wanted: false,
            last_sync: now,
            checkpointer: opened.checkpointer,
            last_checkpoint: now,
            last_sweep: now,
            last_retry: now,
            failure: None,
            poisoned: false,
            line: Vec::with_capacity(4096),
        }
    }

    /// Records written to the file (count).
    fn written(&self) -> u64 {
        self.next_seq - self.active.as_ref().map_or(0, |a| a.pending_records())
    }

    pub(super) fn run(mut self) {
        // Retention runs once at start, then at its interval.
        self.sweep();
        loop {
            let first = match self.rx.recv_timeout(self.timeout()) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.close_out();
                    return;
                }
            };
            let mut replies = Vec::new();
            let mut taken = 0;
            let mut msg = first;
            while let Some(m) = msg {
                match m {
                    Msg::Record(q) => {
                        self.take(*q);
                        taken += 1;
                    }
                    Msg::Sync(tx) => replies.push((false, tx)),
                    Msg::Close(tx) => replies.push((true, tx)),
                }
                if taken >= MAX_BATCH {
                    break;
                }
                msg = self.rx.try_recv().ok();
            }
            self.write_out();
            self.periodic();
            for (close, tx) in replies {
                if close {
                    let _ = tx.send(self.close_out());
                    return;
                }
                let _ = tx.send(self.sync_all());
            }
        }
    }

    /// How long to wait for records before something is due.
    fn timeout(&self) -> Duration {
        let now = Instant::now();
        let mut due = now + MAX_SLEEP;
        // While writes fail, only the retry is due (an fsync would wait for
        // it anyway).
        if self.failure.is_none() && self.written() > self.durable {
            match self.fsync {
                FsyncPolicy::Always => due = now,
                FsyncPolicy::Interval(d) => due = due.min(self.last_sync + d),
            }
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

    fn take(&mut self, q: Queued) {
        debug_assert_eq!(q.seq, self.next_seq, "records arrive in sequence");
        self.rotate_if_due(q.time);
        let durable = q.durable;
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
        self.durable_wanted |= durable;
    }

    /// Seals the active segment when it is full or old; the next record
    /// starts a new one. A segment that cannot be sealed (its pending
    /// records cannot be written) keeps taking records.
    fn rotate_if_due(&mut self, time: Timestamp) {
        let due = self.active.as_ref().is_some_and(|a| {
            a.last_seq.is_some()
                && (a.size() >= self.segment_max_bytes
                    || time.minus(self.segment_max_age) >= a.info.first_time)
        });
        if due {
            self.seal();
        }
    }

    fn seal(&mut self) {
        if self.active.as_ref().is_none_or(|a| a.last_seq.is_none()) {
            return;
        }
        if let Err(e) = self.flush() {
            self.fail(e);
            return;
        }
        self.sync_records();
        if self.poisoned {
            return;
        }
        let a = self.active.take().expect("checked above");
        match a.seal() {
            Ok(_) => Counters::add(&self.shared.counters.segments_sealed, 1),
            Err(failed) => {
                let (a, e) = *failed;
                self.active = Some(a);
                self.fail(e);
            }
        }
    }

    /// Writes what is pending, fsyncs by the policy and publishes.
    fn write_out(&mut self) {
        if self.poisoned {
            return;
        }
        let retrying = self.failure.is_some();
        if retrying {
            self.last_retry = Instant::now();
        }
        if let Err(e) = self.flush() {
            self.fail(e);
            self.publish();
            return;
        }
        if retrying {
            tracing::info!(dir = %self.dir.display(), "audit log: writing again; records are accepted");
            self.failure = None;
            self.shared.set_failure(None);
        }
        let written = self.written();
        let sync = written > self.durable
            && match self.fsync {
                FsyncPolicy::Always => true,
                FsyncPolicy::Interval(d) => self.durable_wanted || self.last_sync.elapsed() >= d,
            };
        if sync {
            self.sync_records();
        }
        self.publish();
    }

    fn flush(&mut self) -> Result<(), WriteFailure> {
        if let Some(a) = &mut self.active {
            let (records, bytes) = a.flush()?;
            Counters::add(&self.shared.counters.written, records);
            Counters::add(&self.shared.counters.bytes, bytes);
        }
        self.tree.flush().map_err(|e| match e {
            crate::audit::tree::TreeFilesError::Io { path, source, .. } => (path, source),
            other => (
                self.tree.dir().to_path_buf(),
                std::io::Error::other(other.to_string()),
            ),
        })
    }

    fn sync_records(&mut self) {
        let written = self.written();
        if let Some(a) = &mut self.active
            && let Err((path, e)) = a.sync()
        {
            Counters::add(&self.shared.counters.failures, 1);
            let err = AuditError::Poisoned {
                path,
                reason: e.to_string(),
            };
            tracing::error!("{err}");
            self.poisoned = true;
            self.failure = Some(err.clone());
            self.shared.set_failure(Some(err));
            return;
        }
        Counters::add(&self.shared.counters.fsyncs, 1);
        Counters::add(&self.shared.counters.durable, written - self.durable);
        self.durable = written;
        self.durable_wanted = false;
        self.last_sync = Instant::now();
    }

    fn fail(&mut self, (path, e): WriteFailure) {
        Counters::add(&self.shared.counters.failures, 1);
        let err = AuditError::unwritable(path, &self.dir, &e);
        if self.failure.is_none() {
            tracing::error!("{err}");
        }
        self.failure = Some(err.clone());
        self.shared.set_failure(Some(err));
    }

    fn publish(&self) {
        let (written, durable) = (self.written(), self.durable);
        self.shared.progress.send_if_modified(|p| {
            let changed = p.written != written || p.durable != durable;
            p.written = written;
            p.durable = durable;
            changed
        });
    }

    /// Writes and fsyncs everything taken so far.
    fn sync_all(&mut self) -> Result<(), AuditError> {
        if !self.poisoned {
            if let Err(e) = self.flush() {
                self.fail(e);
            } else if self.written() > self.durable
                || self.active.as_ref().is_some_and(|a| a.dirty())
            {
                self.sync_records();
            }
        }
        self.publish();
        match &self.failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn periodic(&mut self) {
        let now = Instant::now();
        if self.checkpointer.is_some() && now >= self.last_checkpoint + self.checkpoint_interval {
            self.last_checkpoint = now;
            self.checkpoint();
        }
        if now >= self.last_sweep + self.sweep_interval {
            self.sweep();
        }
        // Seal an idle segment that has grown old, so retention can take it.
        let old = self.active.as_ref().is_some_and(|a| {
            a.pending_records() == 0
                && a.last_seq.is_some()
                && Timestamp::now().minus(self.segment_max_age) >= a.info.first_time
        });
        if old && self.failure.is_none() {
            self.seal();
        }
    }

    /// Signs a checkpoint of everything written, once it is durable.
    fn checkpoint(&mut self) {
        if self.failure.is_some() {
            return;
        }
        let size = self.next_seq;
        if !self.checkpointer.as_ref().is_some_and(|c| c.is_new(size)) {
            return;
        }
        if self.sync_all().is_err() {
            return;
        }
        if let Err(e) = self.tree.sync() {
            tracing::error!("audit log: cannot sync the tree files before a checkpoint: {e}");
            Counters::add(&self.shared.counters.failures, 1);
            return;
        }
        let root = self.tree.root();
        let cp = self.checkpointer.as_mut().expect("checked above");
        let started = Instant::now();
        match cp.sign(&self.tree, size, root) {
            Ok((_, sink_errors)) => {
                Counters::add(&self.shared.counters.checkpoints, 1);
                for e in sink_errors {
                    tracing::warn!("audit log: {e}");
                    Counters::add(&self.shared.counters.sink_failures, 1);
                }
                if started.elapsed() > crate::audit::checkpoint::SLOW_SINK {
                    tracing::warn!(
                        "audit log: signing and publishing checkpoint {size} took {:?}; a slow sink delays the records",
                        started.elapsed()
                    );
                }
            }
            Err(e @ CheckpointError::Inconsistent { .. }) => {
                Counters::add(&self.shared.counters.checkpoint_refusals, 1);
                tracing::error!("audit log: {e}");
            }
            Err(e) => {
                Counters::add(&self.shared.counters.failures, 1);
                tracing::error!("audit log: checkpoint {size}: {e}");
            }
        }
    }

    /// Deletes expired segments and records each deletion in the log.
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        let active = self.active.as_ref().map(|a| a.info.first_seq);
        let deleted = match retention::sweep(&self.dir, active, Timestamp::now()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "audit log: retention could not look at the segments: {e}");
                return;
            }
        };
        for (info, meta) in deleted {
            Counters::add(&self.shared.counters.segments_deleted, 1);
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
            if let Err(e) = self.shared.enqueue(entry, false) {
                tracing::error!("audit log: cannot record a retention deletion: {e}");
            }
        }
    }

    /// Writes and fsyncs everything, signs a last checkpoint.
    fn close_out(&mut self) -> Result<(), AuditError> {
        // Records queued behind the close (retention's own) are taken too.
        while let Ok(Msg::Record(q)) = self.rx.try_recv() {
            self.take(*q);
        }
        let result = self.sync_all();
        if let Some(a) = &mut self.active {
            a.sync_index();
        }
        if result.is_ok() {
            if let Err(e) = self.tree.sync() {
                tracing::error!("audit log: cannot sync the tree files at close: {e}");
            }
            self.checkpoint();
        }
        result
    }
}
