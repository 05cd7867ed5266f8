//! [`Secret`]: bytes that are never printed and are wiped when dropped.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// What is printed in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// A secret value (an API key, a token).
///
/// It prints as `[redacted]` with both `{}` and `{:?}`, cannot be
/// serialized, compares in constant time (for equal lengths), and its
/// buffer is overwritten with zeros when dropped. The bytes are reached
/// only through [`Secret::expose`].
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    /// Wraps `bytes`, which the secret then owns and wipes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret { bytes }
    }

    /// The secret's bytes. Copy them only into buffers that are wiped too
    /// (e.g. `zeroize::Zeroizing`) or handed straight to the upstream.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the secret is empty (a loaded secret never is).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Secret {
    /// Keeps the first `len` bytes (the cut bytes are wiped on drop with the
    /// rest of the buffer).
    pub(super) fn truncate(&mut self, len: usize) {
        self.bytes.truncate(len);
    }

    /// Overwrites the whole buffer, spare capacity included, with zeros
    /// (volatile writes the optimizer keeps) and empties it.
    fn wipe(&mut self) {
        self.bytes.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Constant-time in the contents; secrets of different lengths differ at
/// once (the length is not hidden).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let secret = Secret::new(b"sk-live-123".to_vec());
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), b"sk-live-123");
        assert_eq!(secret.len(), 11);
        assert!(!secret.is_empty());
    }

    #[test]
    fn equality() {
        let a = Secret::new(b"abc".to_vec());
        assert_eq!(a, Secret::new(b"abc".to_vec()));
        assert_ne!(a, Secret::new(b"abd".to_vec()));
        assert_ne!(a, Secret::new(b"abcd".to_vec()));
        assert_ne!(a, Secret::new(Vec::new()));
    }

    #[test]
    fn wipe_empties_the_buffer() {
        let mut secret = Secret::new(b"sk-live-123".to_vec());
        secret.wipe();
        assert!(secret.expose().is_empty());
        assert_ne!(secret, Secret::new(b"sk-live-123".to_vec()));
    }
}
