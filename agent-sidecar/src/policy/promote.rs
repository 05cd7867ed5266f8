//! Promoting a candidate policy version (the `--shadow-policies` set, or
//! any directory) into the active policy directory: the candidate must
//! compile; its files are written beside the active ones under hidden
//! names (which the loader skips), then renamed into place, the active
//! files the candidate does not have are removed, and a `SHA256SUMS`
//! manifest of the new set is renamed into place last. A running sidecar's
//! watcher puts nothing in force until the directory matches the manifest,
//! then takes the candidate whole (removals included, which an unvouched
//! in-place change may not make). The active directory is read back and
//! must compile to the candidate's version.

use std::path::{Path, PathBuf};

use super::{CompileError, CompiledPolicySet, Snapshot};

/// What a promotion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Promotion {
    /// The version now in the active directory.
    pub promoted: String,
    /// The version it replaced (`None` when the active directory did not
    /// compile or was empty).
    pub previous: Option<String>,
    /// Files written (relative paths).
    pub written: Vec<String>,
    /// Files removed (relative paths).
    pub removed: Vec<String>,
}

/// Why a promotion was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// The candidate does not compile: nothing was written.
    #[error("the candidate {0} does not compile; nothing was written:\n{1}")]
    Candidate(PathBuf, CompileError),
    /// Writing the active directory failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The active directory, read back, is not the candidate.
    #[error(
        "the active directory {dir} now compiles to {found}, not the candidate's {expected}: another writer changed it; promote again"
    )]
    Mismatch {
        /// The active directory.
        dir: PathBuf,
        /// What it compiles to.
        found: String,
        /// The candidate's version.
        expected: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PromoteError + '_ {
    move |source| PromoteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Promotes `candidate` into `active`.
pub fn promote(candidate: &Path, active: &Path) -> Result<Promotion, PromoteError> {
    let set = CompiledPolicySet::load_dir(candidate)
        .map_err(|e| PromoteError::Candidate(candidate.to_path_buf(), e))?;
    let expected = set.version().hash.to_string();
    let previous = CompiledPolicySet::load_dir(active)
        .ok()
        .map(|s| s.version().hash.to_string());
    let old = Snapshot::read_dir(active)
        .map(|s| s.files)
        .unwrap_or_default();
    // Stage every file under a hidden name, then rename them into place.
    let mut staged = Vec::new();
    for f in &set.snapshot().files {
        let dest = active.join(&f.path);
        let dir = dest.parent().unwrap_or(active);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.promote"));
        std::fs::write(&tmp, &f.text).map_err(io(&tmp))?;
        staged.push((tmp, dest, f.path.clone()));
    }
    let sums = super::manifest::render(set.snapshot());
    let manifest = active.join(super::manifest::MANIFEST_FILE);
    let manifest_tmp = active.join(format!(".{}.promote", super::manifest::MANIFEST_FILE));
    std::fs::write(&manifest_tmp, sums).map_err(io(&manifest_tmp))?;
    let mut written = Vec::new();
    for (tmp, dest, rel) in staged {
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        written.push(rel);
    }
    let mut removed = Vec::new();
    for f in old {
        if !written.contains(&f.path) {
            let p = active.join(&f.path);
            std::fs::remove_file(&p).map_err(io(&p))?;
            removed.push(f.path);
        }
    }
    std::fs::rename(&manifest_tmp, &manifest).map_err(io(&manifest))?;
    let found = CompiledPolicySet::load_dir(active)
        .map(|s| s.version().hash.to_string())
        .unwrap_or_else(|e| format!("an invalid set ({e})"));
    if found != expected {
        return Err(PromoteError::Mismatch {
            dir: active.to_path_buf(),
            found,
            expected,
        });
    }
    Ok(Promotion {
        promoted: expected,
        previous,
        written,
        removed,
    })
}
