//! [`SecretStore`]: the secrets loaded at start, by name.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    fmt,
    fs::File,
    io::Read,
    os::unix::{
        ffi::OsStringExt,
        fs::{MetadataExt, PermissionsExt},
    },
    path::Path,
};

use super::{CredentialError, REDACTED, Secret, SecretSource, SecretSpec};

/// The largest secret file read, in bytes: a secret file holds one token
/// or key, not a bundle.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The loaded secrets, by name. Its `Debug` lists the names only.
#[derive(Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, Secret>,
}

impl SecretStore {
    /// Loads every spec's secret; fails on the first that cannot be used.
    ///
    /// A file must be a regular file, readable by its owner only (mode 0600
    /// or 0400), at most [`MAX_SECRET_BYTES`], and not empty once its
    /// trailing line breaks are trimmed. A variable must be set and
    /// non-empty. Names must be unique.
    pub fn load(specs: &[SecretSpec]) -> Result<SecretStore, CredentialError> {
        let mut secrets = BTreeMap::new();
        for spec in specs {
            if secrets.contains_key(&spec.name) {
                return Err(CredentialError::Duplicate {
                    name: spec.name.clone(),
                });
            }
            let secret = match &spec.source {
                SecretSource::File(path) => read_file(&spec.name, path)?,
                SecretSource::Env(var) => read_env(&spec.name, var)?,
            };
            secrets.insert(spec.name.clone(), secret);
        }
        Ok(SecretStore { secrets })
    }

    /// The secret called `name`.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// The names of the loaded secrets, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    /// How many secrets are loaded.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether no secret is loaded.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every occurrence of any loaded secret replaced by
    /// `[redacted]`, for texts from upstreams (error bodies, messages) that
    /// may echo a credential back. Borrowed when nothing is replaced.
    ///
    /// Longer secrets win where two overlap. Only the exact bytes are found:
    /// a secret re-encoded (base64, URL-escaped) by the upstream is not.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut needles: Vec<&str> = self
            .secrets
            .values()
            .filter_map(|s| std::str::from_utf8(s.expose()).ok())
            .filter(|s| !s.is_empty() && text.contains(*s))
            .collect();
        if needles.is_empty() {
            return Cow::Borrowed(text);
        }
        needles.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(ch) = rest.chars().next() {
            if let Some(needle) = needles.iter().find(|n| rest.starts_with(**n)) {
                out.push_str(REDACTED);
                rest = &rest[needle.len()..];
            } else {
                out.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
        }
        Cow::Owned(out)
    }
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("names", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn read_file(name: &str, path: &Path) -> Result<Secret, CredentialError> {
    let read_error = |source| CredentialError::Read {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    // Checked on the open file, so a swap of the path cannot slip past.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(CredentialError::NotAFile {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 && !group_read_only(mode, metadata.gid(), &own_groups()) {
        return Err(CredentialError::Permissions {
            name: name.to_owned(),
            path: path.to_owned(),
            mode,
        });
    }
    // Sized up front so the buffer does not grow (and leave copies behind).
    let mut bytes = Vec::with_capacity(MAX_SECRET_BYTES + 1);
    file.take(MAX_SECRET_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let mut secret = Secret::new(bytes);
    if secret.len() > MAX_SECRET_BYTES {
        return Err(CredentialError::TooLarge {
            name: name.to_owned(),
            path: path.to_owned(),
            max: MAX_SECRET_BYTES,
        });
    }
    let trimmed = secret
        .expose()
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |last| last + 1);
    if trimmed == 0 {
        return Err(CredentialError::Empty {
            name: name.to_owned(),
            origin: format!("file {}", path.display()),
        });
    }
    secret.truncate(trimmed);
    Ok(secret)
}

/// A Kubernetes Secret volume with `fsGroup`: the file is readable by its
/// group (0440 or 0640) and by no one else, and that group is one of the
/// sidecar's own (the pod's `fsGroup`), never root's group 0, whose
/// members on a host are not the sidecar's.
fn group_read_only(mode: u32, file_gid: u32, own: &[u32]) -> bool {
    mode & 0o077 == 0o040 && file_gid != 0 && own.contains(&file_gid)
}

/// The sidecar's effective and supplementary groups.
fn own_groups() -> Vec<u32> {
    let mut groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    groups.push(nix::unistd::getegid().as_raw());
    groups
}

fn read_env(name: &str, var: &str) -> Result<Secret, CredentialError> {
    env_secret(name, var, std::env::var_os(var))
}

fn env_secret(
    name: &str,
    var: &str,
    value: Option<std::ffi::OsString>,
) -> Result<Secret, CredentialError> {
    let value = value.ok_or_else(|| CredentialError::EnvMissing {
        name: name.to_owned(),
        var: var.to_owned(),
    })?;
    let secret = Secret::new(value.into_vec());
    if secret.is_empty() {
        return Err(CredentialError::Empty {
            name: name.to_owned(),
            origin: format!("environment variable {var}"),
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use std::{fs, path::PathBuf};

    use super::*;

    fn secret_file(dir: &tempfile::TempDir, file: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = dir.path().join(file);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn spec(text: String) -> SecretSpec {
        text.parse().unwrap()
    }

    #[test]
    fn loads_files_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let a = secret_file(&dir, "a", b"ghp_abc\n", 0o600);
        let b = secret_file(&dir, "b", b"sk_live_\xffraw\r\n\n", 0o400);
        // Set for every test process, so no test has to set_var.
        let var = "PATH";
        let path = std::env::var_os(var).unwrap().into_vec();
        let store = SecretStore::load(&[
            spec(format!("gh=file:{}", a.display())),
            spec(format!("stripe=file:{}", b.display())),
            spec(format!("other=env:{var}")),
        ])
        .unwrap();
        assert_eq!(store.get("gh").unwrap().expose(), b"ghp_abc");
        assert_eq!(store.get("stripe").unwrap().expose(), b"sk_live_\xffraw");
        assert_eq!(store.get("other").unwrap().expose(), path);
        assert!(store.get("nope").is_none());
        assert_eq!(store.names().collect::<Vec<_>>(), ["gh", "other", "stripe"]);
        assert_eq!(store.len(), 3);
        let debug = format!("{store:?}");
        assert_eq!(debug, r#"SecretStore { names: ["gh", "other", "stripe"] }"#);
        assert!(!debug.contains("ghp_abc"));
    }

    #[test]
    fn a_secret_volume_readable_by_the_sidecars_group_alone_is_accepted() {
        // 0440 or 0640, group 2000 (the pod's fsGroup), which the sidecar has.
        assert!(group_read_only(0o440, 2000, &[0, 2000]));
        assert!(group_read_only(0o640, 2000, &[2000]));
        // Another group, root's group, group-writable, world-readable: refused.
        assert!(!group_read_only(0o440, 3000, &[0, 2000]));
        assert!(!group_read_only(0o440, 0, &[0]));
        assert!(!group_read_only(0o460, 2000, &[2000]));
        assert!(!group_read_only(0o444, 2000, &[2000]));
        assert!(!group_read_only(0o404, 2000, &[2000]));
        // A real world-readable file is refused with the fix in the message.
        let dir = tempfile::tempdir().unwrap();
        let path = secret_file(&dir, "world", b"token", 0o444);
        let err = SecretStore::load(&[spec(format!("gh=file:{}", path.display()))]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("0444") && text.contains("fsGroup"), "{text}");
    }

    #[test]
    fn refuses_open_permissions_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606] {
            let path = secret_file(&dir, "open", b"token", mode);
            let err =
                SecretStore::load(&[spec(format!("gh=file:{}", path.display()))]).unwrap_err();
            assert!(
                matches!(err, CredentialError::Permissions { .. }),
                "{mode:o}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            assert!(text.contains("0600 or 0400"), "{text}");
        }
    }

    #[test]
    fn refuses_empty_missing_and_odd_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = secret_file(&dir, "empty", b"\n\r\n", 0o600);
        let err = SecretStore::load(&[spec(format!("gh=file:{}", empty.display()))]).unwrap_err();
        assert!(matches!(err, CredentialError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("is empty"));

        let missing = dir.path().join("missing");
        let err = SecretStore::load(&[spec(format!("gh=file:{}", missing.display()))]).unwrap_err();
        assert!(matches!(err, CredentialError::Read { .. }), "{err}");
        assert!(err.to_string().contains("cannot read"), "{err}");

        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
        let err = SecretStore::load(&[spec(format!("gh=file:{}", sub.display()))]).unwrap_err();
        assert!(matches!(err, CredentialError::NotAFile { .. }), "{err}");

        let big = secret_file(&dir, "big", &vec![b'a'; MAX_SECRET_BYTES + 1], 0o600);
        let err = SecretStore::load(&[spec(format!("gh=file:{}", big.display()))]).unwrap_err();
        assert!(matches!(err, CredentialError::TooLarge { .. }), "{err}");
        let max = secret_file(&dir, "max", &vec![b'a'; MAX_SECRET_BYTES], 0o600);
        assert!(SecretStore::load(&[spec(format!("gh=file:{}", max.display()))]).is_ok());
    }

    #[test]
    fn refuses_unset_or_empty_env_and_duplicates() {
        let var = "AGENT_SIDECAR_TEST_SECRET_SURELY_UNSET";
        let err = SecretStore::load(&[spec(format!("gh=env:{var}"))]).unwrap_err();
        assert!(matches!(err, CredentialError::EnvMissing { .. }), "{err}");
        assert!(err.to_string().contains(var));

        let err = env_secret("gh", "EMPTY", Some(std::ffi::OsString::new())).unwrap_err();
        assert!(matches!(err, CredentialError::Empty { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("environment variable EMPTY is empty"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let a = secret_file(&dir, "a", b"x", 0o600);
        let err = SecretStore::load(&[
            spec(format!("gh=file:{}", a.display())),
            spec(format!("gh=file:{}", a.display())),
        ])
        .unwrap_err();
        assert!(matches!(err, CredentialError::Duplicate { .. }), "{err}");
    }

    fn store_of(values: &[(&str, &str)]) -> SecretStore {
        SecretStore {
            secrets: values
                .iter()
                .map(|(n, v)| (n.to_string(), Secret::new(v.as_bytes().to_vec())))
                .collect(),
        }
    }

    #[test]
    fn redacts_every_occurrence() {
        let store = store_of(&[("a", "sk-123"), ("b", "sk-123456"), ("c", "clé🔑")]);
        assert!(matches!(store.redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(
            store.redact("bad key sk-123456 (sk-123) sk-123"),
            "bad key [redacted] ([redacted]) [redacted]"
        );
        assert_eq!(store.redact("é clé🔑clé🔑!"), "é [redacted][redacted]!");
        // a secret made of the replacement's letters does not re-match
        let store = store_of(&[("a", "red"), ("b", "s3cr3t")]);
        assert_eq!(store.redact("s3cr3t red"), "[redacted] [redacted]");
    }
}
