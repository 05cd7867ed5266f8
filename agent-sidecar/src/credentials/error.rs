//! Errors of secret loading and injection. None of them ever holds a
//! secret's value.

use std::path::PathBuf;

/// A secret that cannot be loaded or injected.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A `--secret` argument that is not `NAME=file:/path` or `NAME=env:VAR`.
    #[error(
        "invalid secret spec {spec:?}: {reason}; expected NAME=file:/path or NAME=env:VAR with NAME of [a-z0-9_-]"
    )]
    Spec {
        /// The argument as given.
        spec: String,
        /// Which part is wrong.
        reason: String,
    },
    /// Two specs with the same name.
    #[error("secret {name:?} is given twice; give each secret name once")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// The secret file cannot be opened or read.
    #[error("secret {name:?}: cannot read {}: {source}", path.display())]
    Read {
        /// The secret's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The secret file is a directory, device or other non-regular file.
    #[error("secret {name:?}: {} is not a regular file; point file: at the file holding the secret", path.display())]
    NotAFile {
        /// The secret's name.
        name: String,
        /// The path.
        path: PathBuf,
    },
    /// Group or others may read or write the secret file.
    #[error(
        "secret {name:?}: {} has mode {mode:04o}, readable or writable by group or others; \
         the mode must be 0600 or 0400: run `chmod 600 {}` (a Kubernetes Secret volume: \
         defaultMode 0440 with the pod's securityContext.fsGroup, a group of the sidecar other \
         than 0, is accepted; no access for others)",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The secret's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The secret file is larger than [`MAX_SECRET_BYTES`](super::MAX_SECRET_BYTES).
    #[error("secret {name:?}: {} is larger than {max} bytes; a secret file holds the secret alone", path.display())]
    TooLarge {
        /// The secret's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
    /// The file is empty (after its trailing newline) or the variable is set
    /// to the empty string.
    #[error("secret {name:?}: {origin} is empty; put the secret in it")]
    Empty {
        /// The secret's name.
        name: String,
        /// `file /path` or `environment variable VAR`.
        origin: String,
    },
    /// The environment variable is not set.
    #[error(
        "secret {name:?}: environment variable {var} is not set; export it before starting the sidecar"
    )]
    EnvMissing {
        /// The secret's name.
        name: String,
        /// The variable.
        var: String,
    },
    /// An injection's header name is not a valid HTTP header name, or is
    /// one that frames the request and may not carry a secret.
    #[error("invalid injection header {header:?}: {reason}")]
    Header {
        /// The header as given.
        header: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// An injection's format has no `{secret}` or has characters a header
    /// value may not hold.
    #[error("invalid injection format {format:?}: {reason}")]
    Format {
        /// The format as given.
        format: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The secret holds bytes a header value cannot carry (control
    /// characters, CR, LF).
    #[error(
        "the secret injected into header {header} holds bytes not allowed in an HTTP header \
         (control characters or line breaks); store the secret without them"
    )]
    NotHeaderSafe {
        /// The target header.
        header: String,
    },
}
