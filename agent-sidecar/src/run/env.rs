//! The agent's environment, built from scratch: a few harmless variables of
//! the operator's environment (the locale, the terminal, the time zone,
//! `PATH`), a `HOME` the agent may use, what the operator adds with `--env`
//! and `--pass-env`, and what the sidecar sets (the explicit proxy, the CA
//! bundle, the agent id). Nothing else of the operator's environment reaches
//! the agent, and never a variable a `--secret NAME=env:VAR` is read from.

use std::{
    ffi::{OsStr, OsString},
    fmt,
    path::Path,
    str::FromStr,
};

/// Variables passed from the operator's environment when they are set.
pub const PASSED: &[&str] = &["PATH", "LANG", "LANGUAGE", "TERM", "TZ"];

/// `PATH` when the operator has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `HOME` of an agent user without a home directory of its own.
pub const NO_HOME: &str = "/nonexistent";

/// What the operator adds to the agent's environment.
#[derive(Clone, Debug, Default)]
pub struct EnvOptions {
    /// `--env NAME=VALUE`.
    pub set: Vec<EnvVar>,
    /// `--pass-env NAME`: passed from the operator's environment when set.
    pub pass: Vec<String>,
}

/// One `--env NAME=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// Why the agent's environment cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `--env` without `=`, or a name that cannot be a variable's.
    #[error(
        "invalid --env `{0}`: write NAME=VALUE with a non-empty NAME without '=' or NUL \
         (e.g. --env LOG_LEVEL=debug)"
    )]
    Malformed(String),
    /// `--pass-env` with a name that cannot be a variable's.
    #[error("invalid --pass-env `{0}`: give the name of one variable, without '=' or NUL")]
    BadName(String),
    /// `--env` or `--pass-env` of a variable a secret is read from.
    #[error(
        "refusing {flag} {name}: it is the source of --secret {secret}, and the agent never \
         sees a secret (the gateway injects it upstream); drop {flag} {name}"
    )]
    SecretSource {
        /// `--env` or `--pass-env`.
        flag: &'static str,
        /// The variable.
        name: String,
        /// The secret read from it.
        secret: String,
    },
    /// `--env` or `--pass-env` of a variable the sidecar sets itself.
    #[error(
        "refusing {flag} {name}: the sidecar sets {name} for the agent (explicit proxy, CA \
         bundle or agent id); drop {flag} {name}"
    )]
    Reserved {
        /// `--env` or `--pass-env`.
        flag: &'static str,
        /// The variable.
        name: String,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

impl FromStr for EnvVar {
    type Err = EnvError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, value)) if valid_name(name) && !value.contains('\0') => Ok(EnvVar {
                name: name.into(),
                value: value.into(),
            }),
            _ => Err(EnvError::Malformed(s.into())),
        }
    }
}

impl fmt::Display for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// Parses a `--pass-env` name.
pub fn parse_pass_env(s: &str) -> Result<String, EnvError> {
    if valid_name(s) {
        Ok(s.into())
    } else {
        Err(EnvError::BadName(s.into()))
    }
}

/// Inputs of [`agent_env`].
pub struct EnvInputs<'a> {
    /// The operator's environment (the sidecar's own).
    pub operator: &'a [(OsString, OsString)],
    /// The operator's additions.
    pub options: &'a EnvOptions,
    /// `(secret name, variable)` of every `--secret NAME=env:VAR`.
    pub secret_sources: &'a [(String, String)],
    /// Variables the sidecar sets (they win over everything else).
    pub sidecar: &'a [(String, String)],
    /// The agent's `HOME`.
    pub home: &'a Path,
}

/// Builds the agent's whole environment, in a stable order.
pub fn agent_env(inputs: &EnvInputs<'_>) -> Result<Vec<(OsString, OsString)>, EnvError> {
    let secret_of = |name: &str| {
        inputs
            .secret_sources
            .iter()
            .find(|(_, var)| var == name)
            .map(|(secret, _)| secret.clone())
    };
    let reserved = |name: &str| inputs.sidecar.iter().any(|(k, _)| k == name);
    let check = |flag: &'static str, name: &str| {
        if let Some(secret) = secret_of(name) {
            return Err(EnvError::SecretSource {
                flag,
                name: name.into(),
                secret,
            });
        }
        if reserved(name) {
            return Err(EnvError::Reserved {
                flag,
                name: name.into(),
            });
        }
        Ok(())
    };
    for name in &inputs.options.pass {
        check("--pass-env", name)?;
    }
    for var in &inputs.options.set {
        check("--env", &var.name)?;
    }

    let operator = |name: &str| {
        inputs
            .operator
            .iter()
            .find(|(k, _)| k == OsStr::new(name))
            .map(|(_, v)| v.clone())
    };
    let mut vars: Vec<(OsString, OsString)> = Vec::new();
    let mut put = |name: &OsStr, value: OsString| {
        vars.retain(|(k, _)| k != name);
        vars.push((name.to_owned(), value));
    };
    // The defaults: never a secret's source, even one named like them.
    for (name, value) in inputs.operator {
        let Some(text) = name.to_str() else { continue };
        let passed = PASSED.contains(&text) || text.starts_with("LC_");
        if passed && secret_of(text).is_none() {
            put(name, value.clone());
        }
    }
    if operator("PATH").is_none() || secret_of("PATH").is_some() {
        put(OsStr::new("PATH"), DEFAULT_PATH.into());
    }
    put(OsStr::new("HOME"), inputs.home.as_os_str().to_owned());
    for name in &inputs.options.pass {
        if let Some(value) = operator(name) {
            put(OsStr::new(name), value);
        }
    }
    for var in &inputs.options.set {
        put(OsStr::new(&var.name), var.value.clone().into());
    }
    for (name, value) in inputs.sidecar {
        put(OsStr::new(name), value.into());
    }
    Ok(vars)
}

/// The agent's `HOME`: the home directory of `uid` in the user database when
/// `uid` owns it, otherwise [`NO_HOME`].
pub fn home_of(uid: u32) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.dir)
        .filter(|dir| std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == uid))
        .unwrap_or_else(|| NO_HOME.into())
}

#[cfg(test)]
mod tests;
