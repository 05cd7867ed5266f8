//! Whether the agent's user can reach what it is asked to run: execute the
//! command (and the interpreter of its `#!` line) and read the files its
//! arguments name. `run` starts the agent under a uid of its own, so a
//! command in a checkout under `/root` (mode 0700) fails with `EACCES` at
//! exec; this check says before the start which directory is in the way
//! and how to fix it. Decided from the mode bits with the agent's uid and
//! its one group; POSIX ACLs and LSM rules are not read (the exec still has
//! the last word).

use std::{
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::user::UserSpec;

/// `r`, `w`, `x` as in a mode's permission triplets.
const READ: u32 = 4;
const EXECUTE: u32 = 1;

/// Why the agent's user cannot use a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreachable {
    /// The file the agent needs.
    pub(crate) file: PathBuf,
    /// What stops it, with the fix.
    pub(crate) why: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.why)
    }
}

/// Checks that `user` can execute `program` (a path) and, for a script, read
/// it and execute its interpreter.
pub(crate) fn check_executable(program: &Path, user: UserSpec) -> Result<(), Unreachable> {
    check_file(program, user, EXECUTE)?;
    if let Some(interpreter) = shebang(program) {
        check_file(program, user, READ)?;
        check_file(&interpreter, user, EXECUTE).map_err(|e| Unreachable {
            why: format!(
                "the interpreter of its #! line, {}, is out of reach: {}",
                interpreter.display(),
                e.why
            ),
            file: program.to_path_buf(),
        })?;
    }
    Ok(())
}

/// The arguments after the command that name an existing file `user`
/// cannot read (a script given to an interpreter, a config file), with why.
pub(crate) fn unreadable_arguments<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    user: UserSpec,
) -> Vec<Unreachable> {
    args.iter()
        .map(|a| Path::new(a.as_ref()))
        .filter(|p| !p.as_os_str().is_empty() && p.is_file())
        .filter_map(|p| check_file(p, user, READ).err())
        .collect()
}

/// Checks every directory on the way to `file` (as written and as resolved
/// through symlinks) for search permission and `file` itself for `want`.
fn check_file(file: &Path, user: UserSpec, want: u32) -> Result<(), Unreachable> {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let resolved = std::fs::canonicalize(&absolute).unwrap_or_else(|_| absolute.clone());
    for path in [&absolute, &resolved] {
        for dir in path.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            if !permits(&meta, user, EXECUTE) {
                return Err(Unreachable {
                    file: file.to_path_buf(),
                    why: format!(
                        "the directory {} (mode {:04o}, owner {}:{}) cannot be entered by the \
                         agent's user {}:{}; fix: keep the agent's files under a directory \
                         every user can enter (such as /opt or /usr/local), or make it \
                         searchable (`chmod o+x {}`), or run the agent as a user that can \
                         reach it (--user)",
                        dir.display(),
                        meta.mode() & 0o7777,
                        meta.uid(),
                        meta.gid(),
                        user.uid,
                        user.gid,
                        dir.display()
                    ),
                });
            }
        }
    }
    let Ok(meta) = std::fs::metadata(&resolved) else {
        return Ok(());
    };
    if permits(&meta, user, want) {
        return Ok(());
    }
    let (verb, bit) = if want == EXECUTE {
        ("execute", "x")
    } else {
        ("read", "r")
    };
    Err(Unreachable {
        file: file.to_path_buf(),
        why: format!(
            "the agent's user {}:{} may not {verb} it (mode {:04o}, owner {}:{}); fix: \
             `chmod o+{bit} {}`, or run the agent as a user that may (--user)",
            user.uid,
            user.gid,
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid(),
            resolved.display()
        ),
    })
}

/// Whether the mode bits of `meta` grant `want` to `user`: the owner's
/// triplet for the owner, the group's for the group, else the others'.
fn permits(meta: &std::fs::Metadata, user: UserSpec, want: u32) -> bool {
    let mode = meta.mode();
    let bits = if meta.uid() == user.uid {
        mode >> 6
    } else if meta.gid() == user.gid {
        mode >> 3
    } else {
        mode
    } & 0o7;
    bits & want == want
}

/// The interpreter named by the `#!` line of `script`, if it has one.
fn shebang(script: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let interpreter = text.split_whitespace().next()?;
    Some(PathBuf::from(interpreter))
}

#[cfg(test)]
mod tests;
