//! [`PolicyStore`]: the policy set in force, swapped atomically for a new
//! one read and compiled off the decision path; last-known-good on error,
//! bounded history for rollback, optional archive.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::{changes::Writes, in_place, refusal::ReloadRefusal};
use crate::policy::{
    action::Action,
    decision::Decision,
    error::CompileError,
    manifest,
    set::CompiledPolicySet,
    source::Snapshot,
    version::{PolicyVersion, content_hash},
};

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
    /// The new files compile but may be a set caught half-way through an
    /// update; the previous set stays in force.
    Refused(Arc<ReloadRefusal>),
}

/// Why a rollback did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// No kept or archived version has that hash prefix.
    #[error(
        "no kept or archived version matches `{0}`; `agent-sidecar policy versions` lists the kept ones (give at least 4 hex digits of the hash)"
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
    /// The directory contents last read (files and manifest), compiled or
    /// not.
    last_read: Mutex<Option<LastRead>>,
    last_error: Mutex<Option<Arc<CompileError>>>,
    last_refusal: Mutex<Option<Arc<ReloadRefusal>>>,
    reloading: Mutex<()>,
    observer: Option<Arc<dyn ReloadObserver>>,
    changes: tokio::sync::watch::Sender<PolicyVersion>,
}

/// Told of every load and reload of a [`PolicyStore`] (the metrics are
/// one), so that the store depends on nothing above it.
pub trait ReloadObserver: Send + Sync {
    /// A set was put in force (`result`: `success`, `unchanged`...) or a
    /// reload failed (`failure`, no version).
    fn reloaded(&self, result: &str, version: Option<&PolicyVersion>);
    /// A set compiled but was not put in force (`reason`).
    fn refused(&self, reason: &str);
}

impl PolicyStore {
    /// Compiles the set in `dir`. Fails if it does not compile: there is
    /// no store without a valid set.
    pub fn open(
        dir: &Path,
        options: StoreOptions,
        observer: Option<Arc<dyn ReloadObserver>>,
    ) -> Result<Self, CompileError> {
        let (snapshot, manifest) = read_dir(dir)?;
        let key = read_key(&snapshot, manifest.as_deref());
        if let Some(m) = &manifest {
            manifest::verify(m, &snapshot)?;
        }
        let set = Arc::new(CompiledPolicySet::compile(snapshot)?);
        let (changes, _) = tokio::sync::watch::channel(set.version().clone());
        let store = PolicyStore {
            changes,
            dir: dir.to_path_buf(),
            options,
            current: ArcSwap::new(set.clone()),
            history: Mutex::new(VecDeque::new()),
            last_read: Mutex::new(Some(LastRead {
                key,
                refused: false,
            })),
            last_error: Mutex::new(None),
            last_refusal: Mutex::new(None),
            reloading: Mutex::new(()),
            observer,
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

    /// Why the last reload was refused, if it was (the files compiled but
    /// may be caught half-way through an update).
    pub fn last_refusal(&self) -> Option<Arc<ReloadRefusal>> {
        lock(&self.last_refusal).clone()
    }

    /// The version in force, then the kept previous versions, newest first.
    pub fn versions(&self) -> Vec<PolicyVersion> {
        let mut v = vec![self.current.load().version().clone()];
        v.extend(lock(&self.history).iter().map(|s| s.version().clone()));
        v
    }

    /// Reads and compiles the directory again; swaps the new set in if it
    /// compiles, differs from the last read and is not possibly caught
    /// half-way through an update. Nobody saw how the files were written,
    /// so this is [`reload_after`](Self::reload_after) of
    /// [`Writes::InPlace`].
    pub fn reload(&self) -> ReloadOutcome {
        self.reload_after(Writes::InPlace)
    }

    /// Reads and compiles the directory again, knowing how its files were
    /// written: after writes in place (or unseen ones) the new set may only
    /// add to the set in force unless a `SHA256SUMS` manifest vouches for
    /// it; after renames into place only, it is taken as written.
    pub fn reload_after(&self, writes: Writes) -> ReloadOutcome {
        let _one_at_a_time = lock(&self.reloading);
        let (snapshot, manifest) = match read_dir(&self.dir) {
            Ok(s) => s,
            Err(e) => return self.failed(e),
        };
        let key = read_key(&snapshot, manifest.as_deref());
        if let Some(last) = lock(&self.last_read).as_ref()
            && last.key == key
            // A refused set published again atomically is looked at again.
            && !(last.refused && writes == Writes::Atomic)
        {
            return ReloadOutcome::Unchanged;
        }
        *lock(&self.last_read) = Some(LastRead {
            key: key.clone(),
            refused: false,
        });
        let compiled = match &manifest {
            Some(m) => manifest::verify(m, &snapshot)
                .map_err(ReloadRefusal::from)
                .map(|()| CompiledPolicySet::compile(snapshot)),
            None => Ok(CompiledPolicySet::compile(snapshot)),
        };
        // A writer that was half-way through when we read would leave a
        // different directory now: do not swap in what we read.
        let stable = read_dir(&self.dir).is_ok_and(|(s, m)| read_key(&s, m.as_deref()) == key);
        if !stable {
            *lock(&self.last_read) = None;
            tracing::info!(dir = %self.dir.display(), "policy directory changed while it was read; reading it again on the next change");
            return ReloadOutcome::Unstable;
        }
        let set = match compiled {
            Err(refusal) => return self.refused(refusal),
            Ok(Err(e)) => return self.failed(e),
            Ok(Ok(set)) => set,
        };
        if manifest.is_none() && writes == Writes::InPlace {
            let changes = in_place::takes_away(&self.current.load(), &set);
            if !changes.is_empty() {
                return self.refused(ReloadRefusal::TakesAway { changes });
            }
        }
        let version = set.version().clone();
        self.activate(Arc::new(set), "success");
        ReloadOutcome::Updated(version)
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
        *lock(&self.last_refusal) = None;
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
        if let Some(o) = &self.observer {
            o.reloaded(result, Some(set.version()));
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
        if let Some(o) = &self.observer {
            o.reloaded("failure", None);
        }
        *lock(&self.last_error) = Some(e.clone());
        ReloadOutcome::Failed(e)
    }

    fn refused(&self, refusal: ReloadRefusal) -> ReloadOutcome {
        let refusal = Arc::new(refusal);
        let keep = self.current.load();
        tracing::error!(
            dir = %self.dir.display(),
            reason = refusal.reason(),
            kept_version = %keep.version().short(),
            kept_label = %keep.version().label,
            "policy set not put in force; the last-known-good set stays in force:\n{refusal}"
        );
        if let Some(o) = &self.observer {
            o.refused(refusal.reason());
        }
        if let Some(last) = lock(&self.last_read).as_mut() {
            last.refused = true;
        }
        *lock(&self.last_refusal) = Some(refusal.clone());
        ReloadOutcome::Refused(refusal)
    }
}

/// What the last read saw.
struct LastRead {
    /// [`read_key`] of the files read.
    key: String,
    /// The set read was refused (it is looked at again when published
    /// atomically).
    refused: bool,
}

/// Reads the policy files and the manifest, if any.
fn read_dir(dir: &Path) -> Result<(Snapshot, Option<String>), CompileError> {
    let snapshot = Snapshot::read_dir(dir)?;
    let manifest = manifest::read(dir).map_err(|source| CompileError::Read {
        path: dir.join(manifest::MANIFEST_FILE),
        source,
    })?;
    Ok((snapshot, manifest))
}

/// Identifies what a read saw: the files' content hash and the manifest's.
fn read_key(snapshot: &Snapshot, manifest: Option<&str>) -> String {
    let m = manifest.map_or_else(
        || "none".to_string(),
        |m| {
            Sha256::digest(m.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        },
    );
    format!("{}:{m}", content_hash(snapshot))
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
