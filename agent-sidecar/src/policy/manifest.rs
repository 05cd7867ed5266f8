//! The optional bundle manifest of a policy directory: a file named
//! [`MANIFEST_FILE`] in `sha256sum` format (`<64 hex digits>  <path>` per
//! line, paths relative to the directory), written last by the publisher.
//! When it is present, a set is accepted only if the manifest lists exactly
//! the directory's policy files with their SHA-256: a set caught half-way
//! through an update (a file missing, cut short, or not yet rewritten, or
//! the manifest itself cut short) does not match and is not put in force.

use std::{collections::BTreeMap, path::Path};

use sha2::{Digest, Sha256};

pub use super::error::ManifestError;
use super::source::Snapshot;

/// The manifest's name in the policy directory (generate it with
/// `sha256sum *.yaml > .SHA256SUMS.tmp && mv .SHA256SUMS.tmp SHA256SUMS`).
pub const MANIFEST_FILE: &str = "SHA256SUMS";

/// The manifest text of `dir`, if it has one.
pub fn read(dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(dir.join(MANIFEST_FILE)) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks that `manifest` (the text of [`MANIFEST_FILE`]) lists exactly
/// the files of `snapshot` with their SHA-256.
pub fn verify(manifest: &str, snapshot: &Snapshot) -> Result<(), ManifestError> {
    let file = snapshot.display_name(MANIFEST_FILE).to_string();
    let mut listed = BTreeMap::new();
    for (i, line) in manifest.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let syntax = || ManifestError::Syntax {
            file: file.clone(),
            line: i + 1,
        };
        let (digest, rest) = line.split_once(' ').ok_or_else(syntax)?;
        // `sha256sum` writes two spaces (text) or a space and `*` (binary).
        let path = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(syntax)?;
        let path = path.strip_prefix("./").unwrap_or(path);
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) || path.is_empty() {
            return Err(syntax());
        }
        listed.insert(path.to_string(), digest.to_ascii_lowercase());
    }
    for f in &snapshot.files {
        let Some(digest) = listed.remove(&f.path) else {
            return Err(ManifestError::Unlisted {
                file,
                path: f.path.clone(),
            });
        };
        let actual = hex(&Sha256::digest(f.text.as_bytes()));
        if actual != digest {
            return Err(ManifestError::Digest {
                file,
                path: f.path.clone(),
                listed: digest,
                actual,
            });
        }
    }
    match listed.into_keys().next() {
        Some(path) => Err(ManifestError::Missing { file, path }),
        None => Ok(()),
    }
}

/// The manifest text listing every file of `snapshot` (what `sha256sum`
/// writes, in the snapshot's order).
pub fn render(snapshot: &Snapshot) -> String {
    snapshot
        .files
        .iter()
        .map(|f| format!("{}  {}\n", hex(&Sha256::digest(f.text.as_bytes())), f.path))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
