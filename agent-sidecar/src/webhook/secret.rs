//! [`WebhookSecret`]: a Standard Webhooks signing secret read from a file
//! only its owner may read, or generated on first use.

use std::{fmt, io::Write as _, path::Path, sync::Arc};

use base64::Engine as _;
use rand::RngCore as _;
use zeroize::Zeroizing;

/// A secret or the file holding it cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}; {fix}")]
pub struct SecretError {
    /// Which file or flag.
    pub what: String,
    /// What is wrong.
    pub reason: String,
    /// How to fix it.
    pub fix: String,
}

/// A Standard Webhooks signing secret: `whsec_` then base64 of 24 to 64
/// random bytes. Never printed.
#[derive(Clone)]
pub struct WebhookSecret(Arc<Zeroizing<Vec<u8>>>);

impl WebhookSecret {
    /// Fewest secret bytes accepted (the Standard Webhooks minimum).
    pub const MIN_BYTES: usize = 24;
    /// Most secret bytes accepted.
    pub const MAX_BYTES: usize = 64;

    /// Parses `whsec_<base64>` (surrounding white space ignored; `source`
    /// names where it came from in the error).
    pub fn parse(text: &str, source: &str) -> Result<WebhookSecret, SecretError> {
        let bad = |reason: String| SecretError {
            what: source.to_string(),
            reason,
            fix: "give a secret of the form whsec_<base64 of 24 to 64 random bytes>, e.g. \
                  `echo whsec_$(head -c 32 /dev/urandom | base64)`"
                .into(),
        };
        let text = text.trim();
        let b64 = text
            .strip_prefix("whsec_")
            .ok_or_else(|| bad("the secret does not start with whsec_".into()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| bad(format!("the secret is not base64 after whsec_: {e}")))?;
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&bytes.len()) {
            return Err(bad(format!(
                "the secret has {} bytes; {} to {} are required",
                bytes.len(),
                Self::MIN_BYTES,
                Self::MAX_BYTES
            )));
        }
        Ok(WebhookSecret(Arc::new(Zeroizing::new(bytes))))
    }

    /// Reads the secret from a file (its only content), which only its
    /// owner may read (mode 0600 or 0400).
    pub fn from_file(path: &Path) -> Result<WebhookSecret, SecretError> {
        let text = read_private(path, "the webhook secret")?;
        WebhookSecret::parse(&text, &path.display().to_string())
    }

    /// Reads the secret at `path`, or when there is no file there, makes
    /// one (32 random bytes, mode 0600, created exclusively) and says so
    /// with `true`.
    pub fn open_or_create(path: &Path) -> Result<(WebhookSecret, bool), SecretError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if path.exists() {
            return Self::from_file(path).map(|s| (s, false));
        }
        let mut key = Zeroizing::new(vec![0u8; 32]);
        rand::rng().fill_bytes(&mut key);
        let text = Zeroizing::new(format!(
            "whsec_{}\n",
            base64::engine::general_purpose::STANDARD.encode(&*key)
        ));
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| SecretError {
            what: path.display().to_string(),
            reason: format!("cannot create the webhook secret: {e}"),
            fix: "give a writable directory, or a secret file with --webhook-secret-file".into(),
        })?;
        Ok((WebhookSecret(Arc::new(key)), true))
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Reads a file holding a secret: a regular file that only its owner may
/// read (no group or other permission bits), else an error saying so.
pub fn read_private(path: &Path, what: &str) -> Result<Zeroizing<String>, SecretError> {
    use std::os::unix::fs::PermissionsExt as _;
    let err = |reason: String, fix: &str| SecretError {
        what: path.display().to_string(),
        reason,
        fix: fix.to_string(),
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| err(format!("cannot read {what}: {e}"), "give a readable file"))?;
    if !meta.is_file() {
        return Err(err(
            format!("{what} is not a regular file"),
            "give a regular file",
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(
            format!("{what} is readable by others (mode {mode:04o})"),
            &format!("chmod 600 {}", path.display()),
        ));
    }
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| {
            err(
                format!("cannot read {what}: {e}"),
                "give a readable UTF-8 file",
            )
        })
}
