//! Local counters: in memory, one per key and window, checked and added
//! under one lock (no overshoot under concurrency). Counters of limits
//! that must survive a restart (money) are written to a file in the state
//! directory after each change (write to a temporary file, then rename).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Mutex, PoisonError},
};

/// Counters by key: (window index, value).
pub(super) struct LocalCounters {
    counts: Mutex<HashMap<String, (u64, u64)>>,
    file: Option<PathBuf>,
}

impl LocalCounters {
    /// Counters persisted in `file` (loaded from it when it exists).
    pub(super) fn new(file: Option<PathBuf>) -> Result<Self, std::io::Error> {
        let counts = match &file {
            Some(f) if f.exists() => {
                let text = std::fs::read(f)?;
                serde_json::from_slice(&text).map_err(|e| {
                    std::io::Error::other(format!(
                        "{}: not a quota counter file ({e}); remove it to start the counters from zero",
                        f.display()
                    ))
                })?
            }
            _ => HashMap::new(),
        };
        Ok(LocalCounters {
            counts: Mutex::new(counts),
            file,
        })
    }

    /// Adds `n` to the counter of `key` in window `window` when the sum
    /// stays within `limit`: `Ok(sum)`, else `Err(current)` unchanged.
    pub(super) fn try_add(
        &self,
        key: &str,
        window: u64,
        n: u64,
        limit: u64,
        persist: bool,
    ) -> Result<u64, u64> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = c.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        let sum = entry.1.checked_add(n).filter(|s| *s <= limit);
        let Some(sum) = sum else {
            return Err(entry.1);
        };
        entry.1 = sum;
        if persist {
            self.save(&c);
        }
        Ok(sum)
    }

    /// Takes back `n` (a call refused by another limit after this one
    /// counted it).
    pub(super) fn sub(&self, key: &str, window: u64, n: u64, persist: bool) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = c.get_mut(key)
            && e.0 == window
        {
            e.1 = e.1.saturating_sub(n);
        }
        if persist {
            self.save(&c);
        }
    }

    fn save(&self, c: &HashMap<String, (u64, u64)>) {
        let Some(f) = &self.file else { return };
        let tmp = f.with_extension("tmp");
        let written = serde_json::to_vec(c)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, f));
        if let Err(e) = written {
            tracing::error!(file = %f.display(), error = %e, "cannot persist the quota counters; a restart would reset them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_within_the_limit_and_resets_per_window() {
        let c = LocalCounters::new(None).unwrap();
        assert_eq!(c.try_add("k", 1, 6, 10, false), Ok(6));
        assert_eq!(c.try_add("k", 1, 5, 10, false), Err(6));
        assert_eq!(c.try_add("k", 1, 4, 10, false), Ok(10));
        assert_eq!(c.try_add("k", 2, 4, 10, false), Ok(4));
        assert_eq!(c.try_add("k", 2, u64::MAX, u64::MAX, false), Err(4));
    }

    #[test]
    fn a_restart_keeps_the_persisted_total() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("quotas.json");
        let c = LocalCounters::new(Some(f.clone())).unwrap();
        assert_eq!(c.try_add("money", 7, 900, 1000, true), Ok(900));
        drop(c);
        let c = LocalCounters::new(Some(f)).unwrap();
        assert_eq!(c.try_add("money", 7, 200, 1000, true), Err(900));
    }
}
