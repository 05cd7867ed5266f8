//! The directory watcher: reloads the store when its directory changes,
//! once writes have settled and every policy file written is closed, and
//! tells the store whether the files were written in place or renamed into
//! place ([`Writes`]). It also watches the parent directory, so a policy
//! directory replaced by a rename (or deleted and recreated) is followed.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::{
    changes::Changes,
    store::{PolicyStore, lock},
};

/// Settings of the directory watcher.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Quiet time after the last change before reading, when files were
    /// written in place (default 200 ms).
    pub debounce: Duration,
    /// Quiet time after the last change before reading, when files were
    /// only renamed into place (a file, a `..data` symlink, the directory:
    /// default 20 ms, at most `debounce`).
    pub atomic_debounce: Duration,
    /// Re-read the directory this often even without a change event, in
    /// case one was missed (default 30 s).
    pub poll_interval: Duration,
    /// How long to wait for a policy file being written in place to be
    /// closed before reading anyway (default 10 s; such a read is still
    /// refused if it would take rules away).
    pub max_write_wait: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(200),
            atomic_debounce: Duration::from_millis(20),
            poll_interval: Duration::from_secs(30),
            max_write_wait: Duration::from_secs(10),
        }
    }
}

/// A running watcher; dropping it stops watching.
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
    _watcher: Arc<Mutex<RecommendedWatcher>>,
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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<notify::Event>>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let _ = tx.send(event.ok());
    })?;
    let watcher = Arc::new(Mutex::new(watcher));
    let dir = store.dir().to_path_buf();
    lock(&watcher).watch(&dir, RecursiveMode::Recursive)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(e) = lock(&watcher).watch(parent, RecursiveMode::NonRecursive)
    {
        tracing::warn!(dir = %parent.display(), error = %e, "cannot watch the policy directory's parent; a replaced policy directory is noticed at the next poll");
    }
    let task = {
        let watcher = watcher.clone();
        tokio::spawn(async move {
            let mut changes = Changes::new(&dir);
            let mut poll = tokio::time::interval(options.poll_interval);
            poll.tick().await;
            loop {
                tokio::select! {
                    event = rx.recv() => {
                        let Some(event) = event else { return };
                        changes.note(event.as_ref(), Instant::now());
                    }
                    _ = poll.tick() => changes.unseen(),
                }
                if !changes.any {
                    continue;
                }
                // Let a burst of writes finish, and the files written in
                // place be closed.
                loop {
                    let quiet = if changes.in_place() {
                        options.debounce
                    } else {
                        options.atomic_debounce.min(options.debounce)
                    };
                    let wait = match changes.writing(Instant::now(), options.max_write_wait) {
                        Some(open) => open.max(quiet),
                        None => quiet,
                    };
                    match tokio::time::timeout(wait, rx.recv()).await {
                        Ok(Some(event)) => changes.note(event.as_ref(), Instant::now()),
                        Ok(None) => return,
                        Err(_) => {
                            if changes
                                .writing(Instant::now(), options.max_write_wait)
                                .is_none()
                            {
                                break;
                            }
                        }
                    }
                }
                if changes.replaced {
                    rewatch(&watcher, &dir);
                }
                let writes = changes.take();
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.reload_after(writes)).await {
                    Ok(outcome) => tracing::debug!(?writes, ?outcome, "policy directory read"),
                    Err(e) => {
                        tracing::error!(error = %e, "policy reload task failed; the set in force is unchanged")
                    }
                }
            }
        })
    };
    Ok(WatchHandle {
        task,
        _watcher: watcher,
    })
}

/// Watches the (new) directory at `dir` after it was replaced.
fn rewatch(watcher: &Mutex<RecommendedWatcher>, dir: &Path) {
    let mut w = lock(watcher);
    let _ = w.unwatch(dir);
    if dir.is_dir()
        && let Err(e) = w.watch(dir, RecursiveMode::Recursive)
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the replaced policy directory; changes are noticed at each poll");
    }
}
