//! The deployment's redaction key: 32 random bytes, one hex line in a file
//! (mode 0600), generated on first start when absent. Every instance that
//! should correlate hashed values (all agents of a deployment, on every
//! host) is given the same file.

use std::{
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;

/// The prefix of every keyed hash: `hmac-sha256:KEYID:HEX` (HMAC-SHA256
/// truncated to 128 bits, key id = 8 hex digits of the key's own MAC).
pub const HASH_PREFIX: &str = "hmac-sha256:";

/// The key of keyed hashes.
#[derive(Clone)]
pub struct RedactionKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for RedactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why the key cannot be had.
#[derive(Debug, thiserror::Error)]
#[error("redaction key {path}: {reason}; {fix}")]
pub struct RedactionKeyError {
    /// The key file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
    /// How to fix it.
    pub fix: &'static str,
}

impl RedactionKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self::from_bytes(key)
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        mac.update(b"agent-sidecar redaction key id");
        let id = hex(&mac.finalize().into_bytes()[..4]);
        RedactionKey { key, id }
    }

    /// Reads the key at `path`, or generates one there (mode 0600, its
    /// directory 0700 when created) when the file does not exist; says
    /// whether it generated it. A file others may read is refused.
    pub fn open_or_create(path: &Path) -> Result<(Self, bool), RedactionKeyError> {
        let err = |reason: String, fix: &'static str| RedactionKeyError {
            path: path.to_path_buf(),
            reason,
            fix,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path)
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0);
                if mode & 0o077 != 0 {
                    return Err(err(
                        format!("mode {mode:o} lets others read the key"),
                        "chmod 600 it (and replace it if others may have read it: hashes made with it can be checked against guesses)",
                    ));
                }
                let text = text.trim();
                let bytes: Vec<u8> = (0..text.len())
                    .step_by(2)
                    .filter_map(|i| text.get(i..i + 2))
                    .filter_map(|h| u8::from_str_radix(h, 16).ok())
                    .collect();
                let key: [u8; 32] = bytes
                    .try_into()
                    .ok()
                    .filter(|_| text.len() == 64)
                    .ok_or_else(|| {
                        err(
                            "it is not 64 hex digits (32 bytes)".into(),
                            "give --redaction-key a key file written by agent-sidecar (or 64 hex digits from a random source)",
                        )
                    })?;
                Ok((Self::from_bytes(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(parent) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(|e| {
                            err(
                                e.to_string(),
                                "give --redaction-key a path in a writable directory",
                            )
                        })?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| {
                        err(
                            e.to_string(),
                            "give --redaction-key a path in a writable directory",
                        )
                    })?;
                f.write_all(format!("{}\n", hex(&key.key)).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| err(e.to_string(), "check the disk"))?;
                Ok((key, true))
            }
            Err(e) => Err(err(
                e.to_string(),
                "check the file's permissions, or give --redaction-key another path",
            )),
        }
    }

    /// The key's id (8 hex digits), part of every hash it makes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The keyed hash of `bytes`: `hmac-sha256:KEYID:` and 32 hex digits.
    pub fn hash_bytes(&self, bytes: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(bytes);
        let tag = mac.finalize().into_bytes();
        format!("{HASH_PREFIX}{}:{}", self.id, hex(&tag[..16]))
    }

    /// The keyed hash of a JSON value: of a string's text, else of its
    /// compact JSON; a value hashes alike wherever it appears (body, query,
    /// header).
    pub fn hash_value(&self, v: &Value) -> String {
        match v {
            Value::String(s) => self.hash_bytes(s.as_bytes()),
            other => self.hash_bytes(&serde_json::to_vec(other).unwrap_or_default()),
        }
    }

    /// A MAC keyed with this key (the approval binding's digest).
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length")
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("redkey-{}", std::process::id()));
        let path = dir.join("keys/redaction.key");
        let (a, created) = RedactionKey::open_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = RedactionKey::open_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.id(), b.id());
        let h = a.hash_bytes(b"DE02120300000000202051");
        assert_eq!(h, b.hash_bytes(b"DE02120300000000202051"));
        assert!(h.starts_with(&format!("{HASH_PREFIX}{}:", a.id())), "{h}");
        assert_eq!(h.len(), HASH_PREFIX.len() + 8 + 1 + 32);
        assert_ne!(h, a.hash_bytes(b"DE02120300000000202052"));
        assert_ne!(
            h,
            RedactionKey::generate().hash_bytes(b"DE02120300000000202051")
        );
        assert_eq!(
            a.hash_value(&Value::String("x".into())),
            a.hash_bytes(b"x"),
            "a string hashes as its text"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = RedactionKey::open_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("lets others read the key"), "{e}");
        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = RedactionKey::open_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("not 64 hex digits"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
