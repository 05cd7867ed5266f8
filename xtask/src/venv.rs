//! The Python virtual environment of the test fixtures (`.tools/venv` of
//! the [stage](crate::stage), the checkout's own when the agent can reach it): the
//! official MCP Python SDK and its pinned dependencies from
//! `tests/python/requirements.txt`, for the MCP server and client the
//! integration tests run.
//!
//! Built with Debian's `/usr/bin/python3` (never a per-user interpreter such
//! as pyenv's under /root, which uid 65534 could not execute) and made
//! world-readable, because the governed agent of a test runs as `nobody`.
//! A stamp file records the requirements and the interpreter's
//! version: the venv is rebuilt from scratch when either changes.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};

use crate::{root, run};

/// Environment variable naming the venv's python for the tests (set by
/// `cargo xtask test`; the tests fall back to `.tools/venv/bin/python`).
pub(crate) const PYTHON_ENV: &str = "AGENT_SIDECAR_TEST_PYTHON";

/// The interpreter the venv is created from (Debian's, package `python3-venv`).
const BASE_PYTHON: &str = "/usr/bin/python3";

/// `.tools/venv` of the [stage](crate::stage): the checkout's own, unless
/// the agent's uid cannot reach the checkout.
fn venv_dir() -> PathBuf {
    crate::stage::dir().join(".tools/venv")
}

fn requirements() -> PathBuf {
    root().join("tests/python/requirements.txt")
}

fn stamp_file() -> PathBuf {
    venv_dir().join(".requirements-stamp")
}

/// The venv's interpreter.
pub(crate) fn python() -> PathBuf {
    venv_dir().join("bin/python")
}

/// `pip install`, quiet and non-interactive, with the venv's interpreter;
/// the caller adds what to install.
pub(crate) fn pip_install() -> Command {
    let mut cmd = Command::new(python());
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]);
    cmd
}

/// What the stamp must say for the venv to be current.
fn wanted_stamp() -> Result<String> {
    let reqs = std::fs::read_to_string(requirements())
        .with_context(|| format!("reading {}", requirements().display()))?;
    let version = Command::new(BASE_PYTHON)
        .arg("--version")
        .output()
        .with_context(|| format!("running {BASE_PYTHON} (Debian package python3)"))?;
    // The requirements themselves and the interpreter version: any change
    // rebuilds the venv.
    Ok(format!(
        "{}\n{reqs}",
        String::from_utf8_lossy(&version.stdout).trim()
    ))
}

fn is_current(stamp: &str) -> bool {
    python().exists() && std::fs::read_to_string(stamp_file()).is_ok_and(|s| s == stamp)
}

/// Whether the venv exists and matches the requirements.
pub(crate) fn ready() -> bool {
    wanted_stamp().is_ok_and(|w| is_current(&w))
}

/// Creates or refreshes the venv when it is missing or out of date.
pub(crate) fn ensure() -> Result<()> {
    let stamp = wanted_stamp()?;
    if is_current(&stamp) {
        eprintln!("python venv up to date: {}", venv_dir().display());
        return Ok(());
    }
    let dir = venv_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let tools = dir.parent().expect("venv in .tools").to_path_buf();
    std::fs::create_dir_all(&tools)?;
    run(Command::new(BASE_PYTHON).args(["-m", "venv"]).arg(&dir))?;
    run(pip_install().arg("-r").arg(requirements()))?;
    // Readable (and directories / executables traversable) by everyone: the
    // governed agent runs as nobody. `.tools` itself too.
    make_world_readable(&dir)?;
    add_mode(&tools, 0o555)?;
    // Written last: an interrupted install is redone next time.
    std::fs::write(stamp_file(), &stamp)?;
    add_mode(&stamp_file(), 0o444)?;
    eprintln!("python venv ready: {}", python().display());
    Ok(())
}

fn add_mode(path: &Path, bits: u32) -> Result<()> {
    let mut perms = std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .permissions();
    perms.set_mode(perms.mode() | bits);
    std::fs::set_permissions(path, perms).with_context(|| format!("chmod {}", path.display()))
}

/// `chmod -R a+rX`: symlinks are left alone (their targets are elsewhere).
fn make_world_readable(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        add_mode(path, 0o555)?;
        for entry in std::fs::read_dir(path)? {
            make_world_readable(&entry?.path())?;
        }
    } else {
        // Executable for all only when executable for its owner (`X`).
        let exec = if meta.permissions().mode() & 0o100 != 0 {
            0o111
        } else {
            0
        };
        add_mode(path, 0o444 | exec)?;
    }
    Ok(())
}
