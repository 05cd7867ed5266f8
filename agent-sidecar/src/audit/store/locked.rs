//! The log's writing state behind its one lock, with the condition
//! variable that wakes the background thread: what every handle and the
//! background thread hold.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::{
    shared::{Appended, Shared},
    writer::{Wait, Writer},
};
use crate::audit::{error::AuditError, record::AuditEntry};

pub(crate) struct Locked {
    pub(crate) shared: Shared,
    /// The writing state; `None` once the log is closed.
    writer: Mutex<Option<Writer>>,
    /// Wakes the background thread (records to write, an fsync wanted,
    /// the log closed).
    pub(crate) wake: Condvar,
}

impl Locked {
    pub(crate) fn new(shared: Shared, writer: Writer) -> Locked {
        Locked {
            shared,
            writer: Mutex::new(Some(writer)),
            wake: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Writer>> {
        // A panic under the lock leaves a state that is still consistent
        // record by record; the log goes on.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record: refused at once while the log fails, and when
    /// closed; with [`Wait::Written`] it is in the file on return.
    pub(crate) fn append(&self, entry: AuditEntry, wait: Wait) -> Result<Appended, AuditError> {
        let sh = &self.shared;
        sh.admit()?;
        let retention = match sh.retention_of(&entry) {
            Ok(r) => r,
            Err(e) => return sh.refuse(e),
        };
        let mut guard = self.lock();
        let Some(w) = guard.as_mut() else {
            return sh.refuse(sh.closed());
        };
        let (appended, wake) = w.append(sh, entry, retention, wait)?;
        drop(guard);
        if wake {
            self.wake.notify_one();
        }
        Ok(appended)
    }
}
