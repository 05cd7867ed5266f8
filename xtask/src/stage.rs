//! Where the governed agent of the tests and the demo finds what it runs:
//! the venv's interpreter, the MCP client and the demo agent's script. The
//! agent runs under a uid of its own, so these must be reachable by
//! "others": every directory above them searchable (`o+x`).
//!
//! A checkout in such a place (e.g. `/work/p`) is its own stage. A checkout
//! that is not (e.g. under `/root`, mode 0700) gets a stage of its own under
//! [`STAGE_ROOT`], mirroring the repository's layout (`.tools/venv`,
//! `tests/python`, `examples/demo`), with copies of the scripts refreshed
//! on every run.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{is_root, root};

/// Parent of the stages of checkouts the agent cannot reach.
pub(crate) const STAGE_ROOT: &str = "/var/lib/agent-sidecar-dev";

/// Directories of the repository whose files the agent runs.
const STAGED_DIRS: [&str; 2] = ["tests/python", "examples/demo"];

/// Whether a process of another uid can reach `path` (every ancestor
/// searchable by others).
fn reachable_by_others(path: &Path) -> bool {
    path.ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// The stage: the checkout itself when the agent can reach it, else a
/// directory of [`STAGE_ROOT`] named for the checkout's path (root only;
/// without root the checkout is used and the privileged tests do not run).
pub(crate) fn dir() -> PathBuf {
    let root = root();
    if reachable_by_others(&root) || !is_root() {
        return root;
    }
    let mut h = DefaultHasher::new();
    root.hash(&mut h);
    Path::new(STAGE_ROOT).join(format!("{:016x}", h.finish()))
}

/// Copies the scripts the agent runs into the stage (nothing to do when the
/// checkout is its own stage), world-readable; returns the stage.
pub(crate) fn refresh() -> Result<PathBuf> {
    let stage = dir();
    if stage == root() {
        return Ok(stage);
    }
    for rel in STAGED_DIRS {
        let (from, to) = (root().join(rel), stage.join(rel));
        std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
        for entry in
            std::fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let dest = to.join(entry.file_name());
                std::fs::copy(entry.path(), &dest)
                    .with_context(|| format!("copying {}", entry.path().display()))?;
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644))?;
            }
        }
    }
    open_up(&stage)?;
    eprintln!(
        "the checkout is not reachable by the agent's uid: staged its scripts and venv in {}",
        stage.display()
    );
    Ok(stage)
}

/// `a+rx` on `path` and every directory between it and [`STAGE_ROOT`].
fn open_up(path: &Path) -> Result<()> {
    for dir in path.ancestors().take_while(|d| d.starts_with(STAGE_ROOT)) {
        let mut perms = std::fs::metadata(dir)?.permissions();
        perms.set_mode(perms.mode() | 0o555);
        std::fs::set_permissions(dir, perms)?;
    }
    for rel in STAGED_DIRS {
        let mut d = path.join(rel);
        while d.starts_with(path) && d != path {
            let mut perms = std::fs::metadata(&d)?.permissions();
            perms.set_mode(perms.mode() | 0o555);
            std::fs::set_permissions(&d, perms)?;
            d = d.parent().expect("inside the stage").to_path_buf();
        }
    }
    Ok(())
}
