//! [`BaselineStore`]: baselines on disk, one JSON file per agent
//! (`<dir>/agents/<id>.json`) and per pool (`<dir>/pools/<role>.json`),
//! each written atomically (a temporary file in the same directory,
//! flushed to disk, renamed over the old one, the directory flushed), so a
//! crash leaves the old baseline or the new one, never half of one.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::baseline::{Baseline, BaselineFile, FORMAT};

/// The default directory of baselines (kept across restarts): `run
/// --baseline-dir` and the `baseline` commands.
pub const DEFAULT_BASELINE_DIR: &str = "/var/lib/agent-sidecar/baselines";

/// Characters of an id kept as they are in a file name.
const FILE_NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Why a baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("baseline file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is not a baseline.
    #[error(
        "baseline file {path} is not a baseline: {reason}; remove it to learn anew, or import a good export with `agent-sidecar baseline import`"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Baselines under one directory.
#[derive(Clone, Debug)]
pub struct BaselineStore {
    dir: PathBuf,
}

impl BaselineStore {
    /// Baselines under `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BaselineStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of agent `id`.
    pub fn agent_path(&self, id: &str) -> PathBuf {
        self.dir.join("agents").join(file_name(id))
    }

    /// The file of pool `name`.
    pub fn pool_path(&self, name: &str) -> PathBuf {
        self.dir.join("pools").join(file_name(name))
    }

    /// Agent `id`'s baseline, `None` if it has none yet.
    pub fn load_agent(&self, id: &str) -> Result<Option<Baseline>, StoreError> {
        read_opt(&self.agent_path(id))
    }

    /// Pool `name`'s baseline, `None` if it has none.
    pub fn load_pool(&self, name: &str) -> Result<Option<Baseline>, StoreError> {
        read_opt(&self.pool_path(name))
    }

    /// Writes agent `b.agent_id()`'s baseline.
    pub fn save_agent(&self, b: &Baseline) -> Result<(), StoreError> {
        write_atomic(&self.agent_path(b.agent_id()), &b.to_file())
    }

    /// Writes `b` as pool `name`'s baseline.
    pub fn save_pool(&self, name: &str, b: &Baseline) -> Result<(), StoreError> {
        write_atomic(&self.pool_path(name), &b.to_file())
    }
}

/// `<id>.json` with every character but letters, digits, `-` and `_`
/// percent-encoded (no `/`, no leading `.`); `%.json` for the empty id,
/// which no encoded id can be.
fn file_name(id: &str) -> String {
    if id.is_empty() {
        return "%.json".into();
    }
    format!("{}.json", utf8_percent_encode(id, FILE_NAME))
}

fn read_opt(path: &Path) -> Result<Option<Baseline>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => read_bytes(path, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a baseline file.
pub fn read_file(path: &Path) -> Result<Baseline, StoreError> {
    let bytes = fs::read(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_bytes(path, &bytes)
}

fn read_bytes(path: &Path, bytes: &[u8]) -> Result<Baseline, StoreError> {
    let invalid = |reason: String| StoreError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let f: BaselineFile = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if f.format != FORMAT {
        return Err(invalid(format!(
            "format {} (this sidecar reads format {FORMAT})",
            f.format
        )));
    }
    Ok(Baseline::from_file(f))
}

/// Writes `file` to `path` atomically.
pub fn write_atomic(path: &Path, file: &BaselineFile) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err)?;
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| io_err(io::Error::other(e)))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("baseline"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}
