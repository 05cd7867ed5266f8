//! [`SecretSpec`]: where a secret comes from, as given on the command line.

use std::{fmt, path::PathBuf, str::FromStr};

use super::CredentialError;

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret alone (mode 0600 or 0400).
    File(PathBuf),
    /// An environment variable of the sidecar.
    Env(String),
}

/// A named secret and its source: `NAME=file:/path` or `NAME=env:VAR`.
///
/// `NAME` is of `[a-z0-9_-]+`; routes refer to the secret by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The secret's name.
    pub name: String,
    /// Where its value is read from.
    pub source: SecretSource,
}

impl FromStr for SecretSpec {
    type Err = CredentialError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| CredentialError::Spec {
            spec: spec.to_owned(),
            reason,
        };
        let (name, source) = spec
            .split_once('=')
            .ok_or_else(|| fail("no '=' between the name and the source".to_owned()))?;
        if !valid_name(name) {
            return Err(fail(format!(
                "the name {name:?} must be non-empty and use only a-z, 0-9, '_' and '-'"
            )));
        }
        let source = if let Some(path) = source.strip_prefix("file:") {
            if path.is_empty() {
                return Err(fail("the path after 'file:' is empty".to_owned()));
            }
            SecretSource::File(PathBuf::from(path))
        } else if let Some(var) = source.strip_prefix("env:") {
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(fail(format!(
                    "the variable name after 'env:' ({var:?}) must be non-empty, without '=' or NUL"
                )));
            }
            SecretSource::Env(var.to_owned())
        } else {
            let kind = source.split_once(':').map_or(source, |(kind, _)| kind);
            return Err(fail(format!(
                "the source must start with 'file:' or 'env:', not {kind:?}"
            )));
        };
        Ok(SecretSpec {
            name: name.to_owned(),
            source,
        })
    }
}

/// Writes the spec back in its command-line form.
impl fmt::Display for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::File(path) => write!(f, "{}=file:{}", self.name, path.display()),
            SecretSource::Env(var) => write!(f, "{}=env:{var}", self.name),
        }
    }
}

/// Whether `name` can name a secret: non-empty, `a-z`, `0-9`, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let file: SecretSpec = "github=file:/run/secrets/github token".parse().unwrap();
        assert_eq!(file.name, "github");
        assert_eq!(
            file.source,
            SecretSource::File(PathBuf::from("/run/secrets/github token"))
        );
        assert_eq!(file.to_string(), "github=file:/run/secrets/github token");
        let env: SecretSpec = "stripe_live-2=env:STRIPE_KEY".parse().unwrap();
        assert_eq!(env.name, "stripe_live-2");
        assert_eq!(env.source, SecretSource::Env("STRIPE_KEY".into()));
        assert_eq!(env.to_string(), "stripe_live-2=env:STRIPE_KEY");
        // the first '=' splits: a path may hold one
        let odd: SecretSpec = "x=file:/a=b".parse().unwrap();
        assert_eq!(odd.source, SecretSource::File(PathBuf::from("/a=b")));
    }

    #[test]
    fn errors_name_the_wrong_part() {
        let cases = [
            ("github", "no '='"),
            ("=file:/x", "the name \"\""),
            ("GitHub=file:/x", "the name \"GitHub\""),
            ("git hub=file:/x", "the name \"git hub\""),
            ("gh=file:", "path after 'file:' is empty"),
            ("gh=env:", "after 'env:'"),
            ("gh=env:A=B", "after 'env:'"),
            ("gh=vault:kv/x", "not \"vault\""),
            ("gh=/run/secret", "not \"/run/secret\""),
        ];
        for (spec, needle) in cases {
            let err = spec.parse::<SecretSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
            assert!(
                err.contains("expected NAME=file:/path or NAME=env:VAR"),
                "{err}"
            );
        }
    }
}
