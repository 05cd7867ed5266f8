//! The log's background thread: writes the records nobody waits for,
//! fsyncs by the policy without holding the lock (appenders keep writing
//! meanwhile: group commit), retries failed writes, seals old segments,
//! signs checkpoints and applies retention.

use std::sync::Arc;

use super::{locked::Locked, retention};
use crate::audit::time::Timestamp;

/// Runs until the log is closed.
pub(super) fn run(sh: Arc<Locked>) {
    sweep(&sh);
    let mut guard = sh.lock();
    loop {
        let Some(w) = guard.as_mut() else { return };
        if let Some(job) = w.background_turn(&sh.shared) {
            drop(guard);
            let result = job.run();
            guard = sh.lock();
            let Some(w) = guard.as_mut() else { return };
            w.synced(&sh.shared, job, result);
            continue;
        }
        if w.sweep_due() {
            drop(guard);
            sweep(&sh);
            guard = sh.lock();
            continue;
        }
        let sleep = w.sleep_time();
        if sleep.is_zero() {
            continue;
        }
        guard = sh
            .wake
            .wait_timeout(guard, sleep)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Deletes expired segments (outside the lock) and records each deletion.
fn sweep(sh: &Locked) {
    let active = match sh.lock().as_ref() {
        Some(w) => w.active_first_seq(),
        None => return,
    };
    let deleted = match retention::sweep(&sh.shared.dir, active, Timestamp::now()) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(dir = %sh.shared.dir.display(), "audit log: retention could not look at the segments: {e}");
            Vec::new()
        }
    };
    if let Some(w) = sh.lock().as_mut() {
        w.swept(&sh.shared, deleted);
    }
}
