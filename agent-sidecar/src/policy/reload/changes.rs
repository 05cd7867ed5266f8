//! What the directory watcher saw between two reads: whether policy files
//! were written in place (and so may be caught half-way) or only renamed
//! into place, which files are still open for writing, and whether the
//! policy directory itself was replaced.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use notify::{
    Event, EventKind,
    event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind},
};

use super::super::{manifest::MANIFEST_FILE, source};

/// How the files of a reload were written, as far as the watcher saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Only renames into place (a file, a `..data` symlink, the directory):
    /// every file appeared whole.
    Atomic,
    /// Files were written, truncated, created or deleted in place, or
    /// nobody saw how (a poll, a missed event): the set read may be caught
    /// half-way through an update.
    InPlace,
}

/// The watcher's notes since the last read.
#[derive(Debug)]
pub(crate) struct Changes {
    dir: PathBuf,
    /// Something changed since the last read.
    pub(crate) any: bool,
    in_place: bool,
    /// The directory itself was replaced: watch the new one.
    pub(crate) replaced: bool,
    /// Policy files modified and not closed yet, with their last event.
    open: HashMap<PathBuf, Instant>,
}

impl Changes {
    pub(crate) fn new(dir: &Path) -> Self {
        Changes {
            dir: dir.to_path_buf(),
            any: false,
            in_place: false,
            replaced: false,
            open: HashMap::new(),
        }
    }

    /// Notes one watcher event (`None`: the watcher reported an error, so
    /// events may have been lost).
    pub(crate) fn note(&mut self, event: Option<&Event>, now: Instant) {
        let Some(event) = event else {
            self.any = true;
            self.in_place = true;
            return;
        };
        if event.need_rescan() {
            self.any = true;
            self.in_place = true;
        }
        for path in &event.paths {
            self.note_path(&event.kind, path, now);
        }
    }

    fn note_path(&mut self, kind: &EventKind, path: &Path, now: Instant) {
        if path == self.dir {
            // The directory itself, seen from its parent's watch or its own
            // (reading it opens it: that is no change).
            match kind {
                EventKind::Modify(ModifyKind::Name(_)) => {}
                EventKind::Create(_) | EventKind::Remove(_) => self.in_place = true,
                _ => return,
            }
            self.any = true;
            self.replaced = true;
            return;
        }
        let Ok(rel) = path.strip_prefix(&self.dir) else {
            return; // another entry of the parent directory
        };
        let is_dir_kind = matches!(
            kind,
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder)
        );
        let counted = !skipped(rel) && (is_dir_kind || is_policy_file(rel));
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                self.open.remove(path);
                self.any = true;
                self.in_place |= counted;
            }
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => {}
            EventKind::Modify(ModifyKind::Name(mode)) => {
                self.open.remove(path);
                self.any = true;
                // A policy file renamed away is a removal; renamed into
                // place, it appeared whole.
                if matches!(mode, notify::event::RenameMode::From) {
                    self.in_place |= counted;
                }
            }
            EventKind::Modify(_) => {
                self.any = true;
                if counted {
                    self.in_place = true;
                    self.open.insert(path.to_path_buf(), now);
                }
            }
            EventKind::Remove(_) => {
                self.open.remove(path);
                self.any = true;
                self.in_place |= counted;
            }
            _ => {
                self.any = true;
                self.in_place |= counted;
            }
        }
    }

    /// Policy files still open for writing whose last write is younger
    /// than `max_wait`, and how long until the youngest of them is that
    /// old; `None` if no writer is (still) waited for. Older ones are
    /// dropped with a warning (their close was missed, or the writer holds
    /// them open): the read then goes ahead as a write in place.
    pub(crate) fn writing(&mut self, now: Instant, max_wait: Duration) -> Option<Duration> {
        self.open.retain(|path, last| {
            let stale = now.duration_since(*last) >= max_wait;
            if stale {
                tracing::warn!(file = %path.display(), waited = ?max_wait, "a policy file stays open for writing; reading the directory anyway (a set that takes away rules is refused)");
            }
            !stale
        });
        self.open
            .values()
            .map(|last| max_wait.saturating_sub(now.duration_since(*last)))
            .max()
    }

    /// Whether files were written in place since the last read.
    pub(crate) fn in_place(&self) -> bool {
        self.in_place
    }

    /// How the files changed since the last read; forgets it (open
    /// writers are kept).
    pub(crate) fn take(&mut self) -> Writes {
        let writes = if self.in_place {
            Writes::InPlace
        } else {
            Writes::Atomic
        };
        self.any = false;
        self.in_place = false;
        self.replaced = false;
        writes
    }

    /// Notes a read not triggered by an event (a poll): nobody saw how
    /// the files were written.
    pub(crate) fn unseen(&mut self) {
        self.any = true;
        self.in_place = true;
    }
}

/// Whether `rel` is below a name the policy reader skips (`.` prefixed:
/// editor swap files, `..data` of a ConfigMap; `tests` directories).
fn skipped(rel: &Path) -> bool {
    rel.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c.starts_with('.') || c == "tests"
    })
}

/// Whether `rel` names a policy file or the manifest.
fn is_policy_file(rel: &Path) -> bool {
    rel.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| source::is_policy_file_name(&n) || n == MANIFEST_FILE)
}
