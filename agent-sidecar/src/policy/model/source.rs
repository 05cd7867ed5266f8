//! Reading a policy directory into a [`Snapshot`]: every `*.yaml` / `*.yml`
//! file below it, in a fixed order, so that the same bytes always compile
//! to the same set with the same version hash.
//!
//! Skipped: entries whose name starts with `.` (editor files, `.git`, the
//! `..data` directories of a Kubernetes ConfigMap volume, whose files are
//! reached through the top-level symlinks) and directories named `tests`
//! (scenario fixtures live there).

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::error::CompileError;

/// One policy file: its path inside the directory (with `/` separators)
/// and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the policy directory, `/`-separated.
    pub path: String,
    /// File contents.
    pub text: String,
}

/// The files of a policy set, sorted by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The directory they were read from (used to name files in errors).
    pub root: PathBuf,
    /// Files sorted by `path`.
    pub files: Vec<SourceFile>,
}

impl Snapshot {
    /// Reads every policy file under `dir`.
    pub fn read_dir(dir: &Path) -> Result<Snapshot, CompileError> {
        let mut files = Vec::new();
        collect(dir, "", &mut files)
            .map_err(|(path, source)| CompileError::Read { path, source })?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Snapshot {
            root: dir.to_path_buf(),
            files,
        })
    }

    /// A snapshot of in-memory files (tests, generated sets).
    pub fn from_files(root: impl Into<PathBuf>, files: Vec<SourceFile>) -> Snapshot {
        let mut files = files;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Snapshot {
            root: root.into(),
            files,
        }
    }

    /// How a file is named in errors: the directory joined with its path.
    pub fn display_name(&self, path: &str) -> Arc<str> {
        self.root.join(path).display().to_string().into()
    }

    /// Writes the files under `dir` (which must not hold another set), so a
    /// version can be loaded again later.
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        for f in &self.files {
            let dest = dir.join(&f.path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(dest, &f.text)?;
        }
        Ok(())
    }
}

/// Whether a file named `name` is read as a policy file (`*.yaml`,
/// `*.yml`, not `.`-prefixed).
pub fn is_policy_file_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

fn collect(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<SourceFile>,
) -> Result<(), (PathBuf, io::Error)> {
    let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, as ConfigMap volumes use them.
        let meta = std::fs::metadata(&path).map_err(|e| (path.clone(), e))?;
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if meta.is_dir() {
            if name != "tests" {
                collect(&path, &rel, out)?;
            }
        } else if is_policy_file_name(&name) {
            let text = std::fs::read_to_string(&path).map_err(|e| (path.clone(), e))?;
            out.push(SourceFile { path: rel, text });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
