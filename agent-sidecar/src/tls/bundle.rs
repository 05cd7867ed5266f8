//! The agent's trust bundle: the files the agent's TLS libraries are pointed
//! at, and the environment variables that point them there.
//!
//! - `ca-bundle.pem`: the system roots, the operator CAs and the sidecar CA.
//!   Variables that *replace* a library's trust store point here.
//! - `extra-ca.pem`: the sidecar CA and the operator CAs only, for
//!   `NODE_EXTRA_CA_CERTS`, which Node *appends* to its built-in roots.
//!
//! Both files are written atomically (temporary file + rename) with mode
//! 0644: they hold only public certificates.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use super::{CertificateAuthority, TlsError, TrustAnchors, ca::to_pem};

/// File name of the full bundle inside the caller's directory.
pub const BUNDLE_FILE: &str = "ca-bundle.pem";

/// File name of the sidecar-CA-plus-operator-CAs file.
pub const EXTRA_CA_FILE: &str = "extra-ca.pem";

/// Variables that replace a TLS library's trust store with the full bundle:
/// OpenSSL, Python `requests`, curl, git, the AWS SDKs/CLI.
pub const BUNDLE_ENV_VARS: [&str; 5] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "AWS_CA_BUNDLE",
];

/// Variable that adds certificates to Node's built-in roots.
pub const NODE_EXTRA_ENV_VAR: &str = "NODE_EXTRA_CA_CERTS";

/// The written trust files and the environment `run` must set for the
/// agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentTrustBundle {
    /// System roots + operator CAs + sidecar CA.
    pub bundle: PathBuf,
    /// Sidecar CA + operator CAs.
    pub extra: PathBuf,
    /// `(name, value)` pairs to set in the agent's environment.
    pub env: Vec<(&'static str, PathBuf)>,
}

/// Writes [`BUNDLE_FILE`] and [`EXTRA_CA_FILE`] into `dir` (created if
/// missing) and returns their paths with the environment to set.
pub fn write_agent_bundle(
    dir: &Path,
    anchors: &TrustAnchors,
    ca: &CertificateAuthority,
) -> Result<AgentTrustBundle, TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::WriteBundle {
        path: dir.to_owned(),
        source,
    })?;
    let header = format!(
        "# agent-sidecar trust bundle. Sidecar CA SHA-256 fingerprint: {}\n",
        ca.fingerprint()
    );
    let operator: String = anchors
        .operator()
        .iter()
        .flat_map(|f| f.certs.iter())
        .map(|c| to_pem(c))
        .collect();
    let system: String = anchors
        .system()
        .map(|s| s.certs.iter().map(|c| to_pem(c)).collect())
        .unwrap_or_default();

    let bundle = dir.join(BUNDLE_FILE);
    let extra = dir.join(EXTRA_CA_FILE);
    write_public(
        &bundle,
        &format!("{header}{system}{operator}{}", ca.cert_pem()),
    )?;
    write_public(&extra, &format!("{header}{}{operator}", ca.cert_pem()))?;

    let mut env: Vec<(&'static str, PathBuf)> = BUNDLE_ENV_VARS
        .iter()
        .map(|var| (*var, bundle.clone()))
        .collect();
    env.push((NODE_EXTRA_ENV_VAR, extra.clone()));
    Ok(AgentTrustBundle { bundle, extra, env })
}

/// Writes `contents` to `path` atomically with mode 0644.
fn write_public(path: &Path, contents: &str) -> Result<(), TlsError> {
    let tmp = path.with_extension(format!("pem.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        // The umask may have removed bits from the mode asked above.
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        // Best effort: the temporary file is useless after a failure.
        let _ = fs::remove_file(&tmp);
        TlsError::WriteBundle {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests;
