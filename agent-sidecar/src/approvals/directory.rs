//! The approver directory: who may decide held actions, each with their own
//! bearer token.
//!
//! Read from `--approvers-file` (YAML, through [`crate::yaml`]; a
//! world-readable file is refused like the admin token file). Each entry is
//! `{name, team, roles: [...], token_sha256: HEX}`: only the SHA-256 digest
//! of an approver's token is kept, and a presented token is compared against
//! every digest in constant time (the loop never stops early), so neither
//! which approver matched nor how much of a digest matched leaks through
//! timing.

use std::{
    collections::BTreeSet,
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use hyper::header::HeaderValue;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// One approver of the directory, as authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approver {
    /// The name decisions are recorded under.
    pub name: String,
    /// The approver's team (`finance`, `payments`, ...).
    pub team: String,
    /// The approver's roles (`team_lead`, `approver`, ...).
    pub roles: BTreeSet<String>,
}

impl Approver {
    /// True if the approver holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    approvers: Vec<FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    team: String,
    #[serde(default)]
    roles: Vec<String>,
    token_sha256: String,
}

/// Why the approver directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The file could not be read.
    #[error("cannot read approvers file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file may be read by any user.
    #[error(
        "approvers file {} is world-readable (mode {mode:o}); run `chmod o-rwx {}`",
        path.display(),
        path.display()
    )]
    WorldReadable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The YAML is malformed or has unknown keys.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong.
        message: String,
    },
    /// An entry is invalid.
    #[error("{}: approver {index} ({name:?}): {why}", path.display())]
    Entry {
        /// The file.
        path: PathBuf,
        /// 0-based index of the entry.
        index: usize,
        /// Its name as written.
        name: String,
        /// What is wrong and how to fix it.
        why: String,
    },
}

struct Entry {
    approver: Approver,
    digest: [u8; 32],
}

/// The approver directory.
pub struct Approvers {
    entries: Vec<Entry>,
}

impl fmt::Debug for Approvers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approvers")
            .field(
                "names",
                &self
                    .entries
                    .iter()
                    .map(|e| e.approver.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The hex SHA-256 digest of `token` (trimmed), as written in
/// `token_sha256:`.
pub fn token_sha256_hex(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Approvers {
    /// Reads the directory from `path`, refusing a world-readable file.
    pub fn from_file(path: &Path) -> Result<Self, DirectoryError> {
        let io = |source| DirectoryError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o004 != 0 {
            return Err(DirectoryError::WorldReadable {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        Self::from_yaml(&std::fs::read_to_string(path).map_err(io)?, path)
    }

    /// Parses the directory from YAML text; `path` names it in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, DirectoryError> {
        let doc: FileDoc = crate::yaml::from_str(text).map_err(|e| DirectoryError::Yaml {
            path: path.to_path_buf(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        let mut entries: Vec<Entry> = Vec::with_capacity(doc.approvers.len());
        for (index, e) in doc.approvers.into_iter().enumerate() {
            let bad = |why: String| DirectoryError::Entry {
                path: path.to_path_buf(),
                index,
                name: e.name.clone(),
                why,
            };
            if e.name.trim().is_empty() || e.name.len() > super::limits::MAX_APPROVER {
                return Err(bad(format!(
                    "the name must be 1 to {} bytes",
                    super::limits::MAX_APPROVER
                )));
            }
            if e.team.trim().is_empty() {
                return Err(bad("the team must not be empty".into()));
            }
            let Some(digest) = parse_hex32(&e.token_sha256) else {
                return Err(bad(
                    "token_sha256 must be 64 hex digits (`printf %s TOKEN | sha256sum`)".into(),
                ));
            };
            if entries.iter().any(|o| o.approver.name == e.name) {
                return Err(bad("the name is listed twice".into()));
            }
            if entries.iter().any(|o| o.digest == digest) {
                return Err(bad(
                    "the token is shared with another approver; give each their own".into(),
                ));
            }
            entries.push(Entry {
                approver: Approver {
                    name: e.name,
                    team: e.team,
                    roles: e.roles.into_iter().collect(),
                },
                digest,
            });
        }
        Ok(Approvers { entries })
    }

    /// Number of approvers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the directory lists nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The approver whose token `presented` is. Every digest is compared,
    /// in constant time, whatever matches.
    pub fn verify(&self, presented: &[u8]) -> Option<Approver> {
        let digest: [u8; 32] = Sha256::digest(presented.trim_ascii()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, e) in self.entries.iter().enumerate() {
            let hit = digest.ct_eq(&e.digest);
            index.conditional_assign(&(i as u32), hit);
            found |= hit;
        }
        bool::from(found).then(|| self.entries[index as usize].approver.clone())
    }

    /// The approver named by `Authorization: Bearer <token>` (scheme
    /// case-insensitive), or `None`.
    pub fn authenticate(&self, authorization: Option<&HeaderValue>) -> Option<Approver> {
        let bytes = authorization?.as_bytes();
        match bytes.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => self.verify(&bytes[7..]),
            _ => None,
        }
    }

    /// All approvers, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Approver> {
        self.entries.iter().map(|e| &e.approver)
    }
}

#[cfg(test)]
mod tests;
