//! Bearer-token authentication of the approvals admin API.
//!
//! Only the SHA-256 digest of the token is kept. A presented token is hashed
//! and the digests are compared with [`subtle::ConstantTimeEq`], so neither
//! the content nor the length of the secret leaks through timing.

use std::{
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest accepted token, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read token file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The token file may be read by any user.
    #[error(
        "token file {} is world-readable (mode {mode:o}); run `chmod o-rwx {}`",
        path.display(),
        path.display()
    )]
    WorldReadable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The environment variable is not set or not UTF-8.
    #[error("environment variable {var} is not set")]
    MissingEnv {
        /// The variable's name.
        var: String,
    },
    /// The token is too short to be a secret.
    #[error("the admin token must be at least {MIN_TOKEN_LEN} bytes long, got {len}")]
    TooShort {
        /// Its length after trimming.
        len: usize,
    },
}

/// The admin API's shared secret.
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token from its text (surrounding whitespace is trimmed).
    pub fn new(token: &str) -> Result<Self, TokenError> {
        let token = token.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { len: token.len() });
        }
        Ok(BearerToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Reads the token from `path`, refusing a world-readable file.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let io = |source| TokenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o004 != 0 {
            return Err(TokenError::WorldReadable {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        Self::new(&std::fs::read_to_string(path).map_err(io)?)
    }

    /// Reads the token from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, TokenError> {
        let value = std::env::var(var).map_err(|_| TokenError::MissingEnv {
            var: var.to_string(),
        })?;
        Self::new(&value)
    }

    /// True if `presented` is the token. Constant time in the token's
    /// content and length.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }

    /// True if `authorization` is `Bearer <the token>` (scheme
    /// case-insensitive).
    pub fn authorizes(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let bytes = value.as_bytes();
        match bytes.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => {
                self.verify(bytes[7..].trim_ascii())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
