//! Hot reload: a [`PolicyStore`] holds the policy set in force and swaps in
//! a new one atomically. A new set is read and compiled off the decision
//! path; on any error the last-known-good set stays in force, the error is
//! logged with its location and exposed in metrics. The store never runs
//! without a set (it cannot be opened without one) and never runs a
//! half-loaded one: a set is swapped in only once fully compiled, and only
//! if the directory did not change while it was being read.
//!
//! Previous versions are kept (bounded) and can be restored with
//! [`PolicyStore::rollback`]; with an archive directory every activated
//! version is also written to `ARCHIVE/<hash>/`, so it stays loadable after
//! a restart ([`PolicyStore::load_snapshot_dir`] or `rollback`).

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};

use super::{
    action::Action,
    decide::Decision,
    error::CompileError,
    set::CompiledPolicySet,
    source::Snapshot,
    version::{PolicyVersion, content_hash},
};
use crate::metrics::Metrics;

/// Settings of a [`PolicyStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Previous versions kept in memory for rollback (default 10).
    pub history: usize,
    /// Where to write every activated version's files (`<dir>/<hash>/`).
    pub archive_dir: Option<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            history: 10,
            archive_dir: None,
        }
    }
}

/// What a reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A new version is in force.
    Updated(PolicyVersion),
    /// The directory holds the same files as the last read: nothing to do.
    Unchanged,
    /// The directory changed while it was read; nothing was swapped and the
    /// next reload reads it again.
    Unstable,
    /// The new files do not compile; the previous set stays in force.
    Failed(Arc<CompileError>),
}

/// Why a rollback did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// No kept or archived version has that hash prefix.
    #[error(
        "no kept version matches `{0}`; `policy versions` lists them (give at least 4 hex digits of the hash)"
    )]
    UnknownVersion(String),
    /// The archived version no longer compiles.
    #[error("archived version `{0}` does not compile: {1}")]
    Archive(String, CompileError),
}

/// The policy set in force, swapped atomically on reload.
pub struct PolicyStore {
    dir: PathBuf,
    options: StoreOptions,
    current: ArcSwap<CompiledPolicySet>,
    history: Mutex<VecDeque<Arc<CompiledPolicySet>>>,
    /// Hash of the directory contents last read, compiled or not.
    last_read: Mutex<Option<String>>,
    last_error: Mutex<Option<Arc<CompileError>>>,
    reloading: Mutex<()>,
    metrics: Option<Arc<Metrics>>,
    changes: tokio::sync::watch::Sender<PolicyVersion>,
}

impl PolicyStore {
    /// Compiles the set in `dir`. Fails if it does not compile: there is
    /// no store without a valid set.
    pub fn open(
        dir: &Path,
        options: StoreOptions,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, CompileError> {
        let snapshot = Snapshot::read_dir(dir)?;
        let hash = content_hash(&snapshot);
        let set = Arc::new(CompiledPolicySet::compile(snapshot)?);
        let (changes, _) = tokio::sync::watch::channel(set.version().clone());
        let store = PolicyStore {
            changes,
            dir: dir.to_path_buf(),
            options,
            current: ArcSwap::new(set.clone()),
            history: Mutex::new(VecDeque::new()),
            last_read: Mutex::new(Some(hash)),
            last_error: Mutex::new(None),
            reloading: Mutex::new(()),
            metrics,
        };
        store.activated(&set, "success");
        Ok(store)
    }

    /// The policy directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The set in force. Cheap; hold it for the duration of one decision.
    pub fn current(&self) -> Arc<CompiledPolicySet> {
        self.current.load_full()
    }

    /// Tells of every set put in force after this call (reload, rollback):
    /// the receiver sees the new version once it is current. Works without
    /// a runtime on the sending side.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<PolicyVersion> {
        self.changes.subscribe()
    }

    /// Decides with the set in force.
    pub fn decide(&self, action: &Action) -> Decision {
        self.current.load().decide(action)
    }

    /// The last reload error, if the last reload failed.
    pub fn last_error(&self) -> Option<Arc<CompileError>> {
        lock(&self.last_error).clone()
    }

    /// The version in force, then the kept previous versions, newest first.
    pub fn versions(&self) -> Vec<PolicyVersion> {
        let mut v = vec![self.current.load().version().clone()];
        v.extend(lock(&self.history).iter().map(|s| s.version().clone()));
        v
    }

    /// Reads and compiles the directory again; swaps the new set in if it
    /// compiles and differs from the last read.
    pub fn reload(&self) -> ReloadOutcome {
        let _one_at_a_time = lock(&self.reloading);
        let snapshot = match Snapshot::read_dir(&self.dir) {
            Ok(s) => s,
            Err(e) => return self.failed(e),
        };
        let hash = content_hash(&snapshot);
        if lock(&self.last_read).as_deref() == Some(hash.as_str()) {
            return ReloadOutcome::Unchanged;
        }
        *lock(&self.last_read) = Some(hash.clone());
        let compiled = CompiledPolicySet::compile(snapshot);
        // A writer that was half-way through when we read would leave a
        // different directory now: do not swap in what we read.
        let stable = Snapshot::read_dir(&self.dir).is_ok_and(|again| content_hash(&again) == hash);
        if !stable {
            *lock(&self.last_read) = None;
            tracing::info!(dir = %self.dir.display(), "policy directory changed while it was read; reading it again on the next change");
            return ReloadOutcome::Unstable;
        }
        match compiled {
            Ok(set) => {
                let version = set.version().clone();
                self.activate(Arc::new(set), "success");
                ReloadOutcome::Updated(version)
            }
            Err(e) => self.failed(e),
        }
    }

    /// Compiles the set in `dir` (a snapshot of an earlier version, e.g. an
    /// archive entry or a git checkout) and puts it in force. The watched
    /// directory is read again only when it changes.
    pub fn load_snapshot_dir(&self, dir: &Path) -> Result<PolicyVersion, CompileError> {
        let _one_at_a_time = lock(&self.reloading);
        let set = CompiledPolicySet::load_dir(dir)?;
        let version = set.version().clone();
        self.activate(Arc::new(set), "rollback");
        Ok(version)
    }

    /// Puts a previous version in force again: one kept in memory, or one
    /// in the archive directory. `version` is a hash prefix (4+ hex digits,
    /// `sha256:` optional). It stays in force until the directory changes.
    pub fn rollback(&self, version: &str) -> Result<PolicyVersion, RollbackError> {
        let kept = lock(&self.history)
            .iter()
            .find(|s| s.version().matches(version))
            .cloned();
        if let Some(set) = kept {
            let _one_at_a_time = lock(&self.reloading);
            let v = set.version().clone();
            self.activate(set, "rollback");
            return Ok(v);
        }
        let archived = self.options.archive_dir.as_ref().and_then(|a| {
            let prefix = version.strip_prefix("sha256:").unwrap_or(version);
            let entries = std::fs::read_dir(a).ok()?;
            entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                prefix.len() >= 4
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
        });
        match archived {
            Some(dir) => self
                .load_snapshot_dir(&dir)
                .map_err(|e| RollbackError::Archive(version.to_string(), e)),
            None => Err(RollbackError::UnknownVersion(version.to_string())),
        }
    }

    fn activate(&self, set: Arc<CompiledPolicySet>, result: &str) {
        let old = self.current.swap(set.clone());
        if old.version().hash != set.version().hash {
            let mut h = lock(&self.history);
            h.retain(|s| {
                s.version().hash != old.version().hash && s.version().hash != set.version().hash
            });
            h.push_front(old);
            h.truncate(self.options.history);
        }
        *lock(&self.last_error) = None;
        self.activated(&set, result);
        self.changes.send_replace(set.version().clone());
    }

    fn activated(&self, set: &CompiledPolicySet, result: &str) {
        let s = set.summary();
        tracing::info!(
            version = %set.version().short(),
            label = %set.version().label,
            rules = s.rules,
            agents = s.agents,
            result,
            "policy set in force"
        );
        if let Some(m) = &self.metrics {
            m.policy_reloaded(result, Some(set.version()));
        }
        if let Some(archive) = &self.options.archive_dir
            && let Err(e) = archive_snapshot(archive, set)
        {
            tracing::warn!(archive = %archive.display(), error = %e, "cannot archive the policy version; rollback after a restart will not find it");
        }
    }

    fn failed(&self, e: CompileError) -> ReloadOutcome {
        let e = Arc::new(e);
        let keep = self.current.load();
        tracing::error!(
            dir = %self.dir.display(),
            kept_version = %keep.version().short(),
            kept_label = %keep.version().label,
            "policy reload failed; the last-known-good set stays in force:\n{e}"
        );
        if let Some(m) = &self.metrics {
            m.policy_reloaded("failure", None);
        }
        *lock(&self.last_error) = Some(e.clone());
        ReloadOutcome::Failed(e)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `set`'s files to `archive/<hash>/` (via a temporary directory and
/// a rename, so an archive entry is complete or absent).
fn archive_snapshot(archive: &Path, set: &CompiledPolicySet) -> std::io::Result<()> {
    let dest = archive.join(set.version().hash.as_ref());
    if dest.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(archive)?;
    let tmp = archive.join(format!(
        ".tmp-{}-{}",
        set.version().short(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    set.snapshot().write_to(&tmp)?;
    std::fs::rename(&tmp, &dest)
}

/// Settings of the directory watcher.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Quiet time after the last change before reading (default 200 ms).
    pub debounce: Duration,
    /// Re-read the directory this often even without a change event, in
    /// case one was missed (default 30 s).
    pub poll_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(200),
            poll_interval: Duration::from_secs(30),
        }
    }
}

/// A running watcher; dropping it stops watching.
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
    _watcher: notify::RecommendedWatcher,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the store's directory and reloads on change (compiling on a
/// blocking thread, never on the decision path). Must be called within a
/// tokio runtime.
pub fn watch(store: Arc<PolicyStore>, options: WatchOptions) -> Result<WatchHandle, notify::Error> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(store.dir(), RecursiveMode::Recursive)?;
    let task = tokio::spawn(async move {
        let mut poll = tokio::time::interval(options.poll_interval);
        poll.tick().await;
        loop {
            tokio::select! {
                event = rx.recv() => {
                    if event.is_none() {
                        return;
                    }
                    // Let a burst of writes finish.
                    loop {
                        match tokio::time::timeout(options.debounce, rx.recv()).await {
                            Ok(Some(())) => continue,
                            Ok(None) => return,
                            Err(_) => break,
                        }
                    }
                }
                _ = poll.tick() => {}
            }
            let store = store.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || store.reload()).await {
                tracing::error!(error = %e, "policy reload task failed; the set in force is unchanged");
            }
        }
    });
    Ok(WatchHandle {
        task,
        _watcher: watcher,
    })
}

#[cfg(test)]
mod tests;
