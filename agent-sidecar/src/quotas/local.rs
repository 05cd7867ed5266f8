//! Local counters: in memory, one per key and window, checked and added
//! under one lock (no overshoot under concurrency). Counters of limits
//! that must survive a restart (money) are journalled to a file in the
//! state directory: each change appends one line `[key, window, value]`
//! (one `write` to a file held open, no rename, no rewrite), the last line
//! of a key wins on load, a torn last line (a crash mid-write) is skipped,
//! and the journal is compacted to one line per key when it grows past
//! [`COMPACT_AFTER`] lines. Like the file it replaces, a write reaches the
//! page cache, not the disk: a sidecar crash loses nothing, a power loss
//! may lose the last changes.

use std::{
    collections::HashMap,
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

/// Journal lines written before the journal is compacted.
pub(super) const COMPACT_AFTER: usize = 10_000;

type Counts = HashMap<String, (u64, u64)>;

struct State {
    counts: Counts,
    journal: Option<Journal>,
}

struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

/// Counters by key: (window index, value).
pub(super) struct LocalCounters {
    state: Mutex<State>,
}

fn load(f: &Path) -> Result<Counts, std::io::Error> {
    let text = std::fs::read(f)?;
    // A counter file of earlier versions: one JSON object.
    if text.first() == Some(&b'{') {
        return serde_json::from_slice(&text).map_err(|e| {
            std::io::Error::other(format!(
                "{}: not a quota counter file ({e}); remove it to start the counters from zero",
                f.display()
            ))
        });
    }
    let mut counts = Counts::new();
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let last = lines.len().saturating_sub(1);
    for (n, line) in lines.iter().enumerate() {
        match serde_json::from_slice::<(String, u64, u64)>(line) {
            Ok((k, w, v)) => {
                counts.insert(k, (w, v));
            }
            // A crash mid-write tears the last line only.
            Err(_) if n == last && !text.ends_with(b"\n") => {}
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "{}: line {} is not a quota counter ({e}); remove the file to start the counters from zero",
                    f.display(),
                    n + 1
                )));
            }
        }
    }
    Ok(counts)
}

/// Writes `counts` as a fresh journal (temporary file, then rename) and
/// opens it for appending.
fn compact(path: &Path, counts: &Counts) -> Result<Journal, std::io::Error> {
    let tmp = path.with_extension("tmp");
    let mut text = Vec::new();
    for (k, (w, v)) in counts {
        serde_json::to_writer(&mut text, &(k, w, v)).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    Ok(Journal {
        path: path.to_path_buf(),
        file,
        lines: counts.len(),
    })
}

impl LocalCounters {
    /// Counters persisted in `file` (loaded from it when it exists).
    pub(super) fn new(file: Option<PathBuf>) -> Result<Self, std::io::Error> {
        let counts = match &file {
            Some(f) if f.exists() => load(f)?,
            _ => Counts::new(),
        };
        let journal = file.map(|f| compact(&f, &counts)).transpose()?;
        Ok(LocalCounters {
            state: Mutex::new(State { counts, journal }),
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
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = s.counts.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        let sum = entry.1.checked_add(n).filter(|s| *s <= limit);
        let Some(sum) = sum else {
            return Err(entry.1);
        };
        entry.1 = sum;
        if persist {
            s.record(key, window, sum);
        }
        Ok(sum)
    }

    /// Takes back `n` (a call refused by another limit after this one
    /// counted it).
    pub(super) fn sub(&self, key: &str, window: u64, n: u64, persist: bool) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = s.counts.get_mut(key).filter(|e| e.0 == window) else {
            return;
        };
        e.1 = e.1.saturating_sub(n);
        let v = e.1;
        if persist {
            s.record(key, window, v);
        }
    }
}

impl State {
    fn record(&mut self, key: &str, window: u64, value: u64) {
        let Some(j) = &mut self.journal else { return };
        let mut line = serde_json::to_vec(&(key, window, value)).unwrap_or_default();
        line.push(b'\n');
        let written = j.file.write_all(&line);
        j.lines += 1;
        let path = j.path.clone();
        let result = match written {
            Ok(()) if j.lines < COMPACT_AFTER => return,
            Ok(()) => compact(&path, &self.counts),
            // Start a clean journal from the counters in memory.
            Err(e) => compact(&path, &self.counts).map_err(|_| e),
        };
        match result {
            Ok(fresh) => self.journal = Some(fresh),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot persist the quota counters; a restart would reset them")
            }
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
        let c = LocalCounters::new(Some(f.clone())).unwrap();
        assert_eq!(c.try_add("money", 7, 200, 1000, true), Err(900));
        c.sub("money", 7, 100, true);
        drop(c);
        // A torn last line (a crash mid-write) is skipped; the rest holds.
        let mut text = std::fs::read(&f).unwrap();
        text.extend_from_slice(b"[\"money\",7,99");
        std::fs::write(&f, &text).unwrap();
        let c = LocalCounters::new(Some(f.clone())).unwrap();
        assert_eq!(c.try_add("money", 7, 201, 1000, true), Err(800));
        drop(c);
        // A damaged line elsewhere is an error naming the file and line.
        std::fs::write(&f, b"[\"money\",7,1]\nnot json\n[\"x\",1,1]\n").unwrap();
        let e = LocalCounters::new(Some(f.clone()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        // The counter file of earlier versions still loads.
        std::fs::write(&f, br#"{"money":[7,500]}"#).unwrap();
        let c = LocalCounters::new(Some(f)).unwrap();
        assert_eq!(c.try_add("money", 7, 501, 1000, true), Err(500));
    }

    #[test]
    fn the_journal_is_compacted_and_keeps_the_last_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("quotas.json");
        let c = LocalCounters::new(Some(f.clone())).unwrap();
        for _ in 0..COMPACT_AFTER + 5 {
            c.try_add("money", 1, 1, u64::MAX, true).unwrap();
        }
        let lines = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(lines < 10, "compacted: {lines} lines");
        drop(c);
        let c = LocalCounters::new(Some(f)).unwrap();
        let n = COMPACT_AFTER as u64 + 5;
        assert_eq!(c.try_add("money", 1, 1, n, true), Err(n));
    }
}
