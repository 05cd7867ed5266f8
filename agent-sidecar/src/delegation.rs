//! Agent-to-agent delegation: a fleet CA issues each agent a short-lived
//! identity (`spiffe://<trust-domain>/team/<team>/agent/<agent>`); a calling
//! agent's sidecar authenticates to the callee's sidecar with that identity
//! (mTLS) and attaches a biscuit token, signed with the caller's identity
//! key, that names only the tools it delegates for this call. The callee's
//! sidecar verifies signature, audience, expiry and replay and allows a
//! call only on the intersection of its own policy and the delegation; the
//! caller's sidecar validates the answer against the tool's JSON schema.
//! `docs/delegation.md` describes formats and behaviour.

pub mod answer;
pub mod fleet_ca;
pub mod identity;
pub mod token;

/// Header carrying the delegation token (base64url biscuit) between sidecars.
pub const TOKEN_HEADER: &str = "x-agent-delegation";
/// Header by which an agent narrows a delegation for one call (comma-separated
/// tools); the sidecar strips it before forwarding.
pub const NARROW_HEADER: &str = "x-agent-delegate-tools";

/// Why a call between agents was refused; `reason()` is the metric label of
/// `agent_sidecar_delegation_refused_total{reason}`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No client identity was presented (no or untrusted client certificate).
    #[error(
        "no fleet identity presented: the caller must authenticate with a certificate issued by the fleet CA"
    )]
    MissingIdentity,
    /// No delegation token in the request.
    #[error("no delegation token in header {TOKEN_HEADER}")]
    MissingToken,
    /// The token does not verify with the caller's identity key.
    #[error("delegation token signature does not verify with the caller's identity key: {0}")]
    Signature(String),
    /// The token was minted for another agent.
    #[error("delegation token is for audience {found}, this agent is {expected}")]
    Audience {
        /// Audience named in the token.
        found: String,
        /// This agent's identity.
        expected: String,
    },
    /// The token was minted by someone other than the caller.
    #[error("delegation token names delegator {found}, the caller is {peer}")]
    Delegator {
        /// Delegator named in the token.
        found: String,
        /// Identity of the TLS peer.
        peer: String,
    },
    /// The token has expired.
    #[error("delegation token expired at {0} (unix seconds)")]
    Expired(i64),
    /// The token's unique id was already used within its lifetime.
    #[error("delegation token {0} was already used: tokens are single-use")]
    Replay(String),
    /// The tool is not delegated (or an attenuation block forbids it).
    #[error("tool {0} is not delegated to this agent by the caller's token")]
    NotDelegated(String),
    /// The callee's own policy does not allow the tool.
    #[error("tool {0} is not allowed by this agent's own policy")]
    OwnPolicy(String),
    /// The token is malformed.
    #[error("malformed delegation token: {0}")]
    Malformed(String),
}

impl Refusal {
    /// The `reason` label of `agent_sidecar_delegation_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::MissingIdentity => "missing_identity",
            Refusal::MissingToken => "missing_token",
            Refusal::Signature(_) => "signature",
            Refusal::Audience { .. } => "audience",
            Refusal::Delegator { .. } => "delegator",
            Refusal::Expired(_) => "expired",
            Refusal::Replay(_) => "replay",
            Refusal::NotDelegated(_) => "not_delegated",
            Refusal::OwnPolicy(_) => "own_policy",
            Refusal::Malformed(_) => "malformed",
        }
    }
}

/// Errors of the fleet CA, identities and minting.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Cert(String),
    /// The identity certificate is expired or not yet valid.
    #[error(
        "identity certificate {path} is not valid now (valid until {not_after}); issue a fresh one with `agent-sidecar fleet-ca issue`"
    )]
    ExpiredIdentity {
        /// Certificate file.
        path: std::path::PathBuf,
        /// Its notAfter (unix seconds).
        not_after: i64,
    },
    /// The agent asked to delegate more than its policy allows.
    #[error(
        "cannot delegate {tool} to {audience}: this agent's policy does not allow delegating it"
    )]
    Widen {
        /// Tool requested.
        tool: String,
        /// Audience.
        audience: String,
    },
    /// Token construction failed.
    #[error("token: {0}")]
    Token(String),
}

/// The agent's fleet identity as configured (`--agent-identity-cert`,
/// `--agent-identity-key`, `--fleet-ca-cert`).
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Identity certificate (PEM).
    pub cert: std::path::PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: std::path::PathBuf,
    /// The fleet CA certificate (PEM).
    pub ca: std::path::PathBuf,
}

impl IdentityConfig {
    /// The configuration when all three files are given (clap enforces
    /// that they come together).
    pub fn from_flags(
        cert: Option<std::path::PathBuf>,
        key: Option<std::path::PathBuf>,
        ca: Option<std::path::PathBuf>,
    ) -> Option<Self> {
        Some(Self {
            cert: cert?,
            key: key?,
            ca: ca?,
        })
    }

    /// Loads and checks the identity: readable, key 0600, chained to the
    /// fleet CA, valid now. The error names the flag to fix.
    pub fn load(&self) -> Result<identity::AgentIdentity, String> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&self.key)
            .map_err(|e| format!("--agent-identity-key {}: {e}", self.key.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "--agent-identity-key {} has mode {:o}: a private key must be readable by its owner only (chmod 600)",
                self.key.display(),
                mode & 0o777
            ));
        }
        identity::AgentIdentity::load(&self.cert, &self.key, &self.ca).map_err(|e| {
            format!(
                "--agent-identity-cert {} (fleet CA --fleet-ca-cert {}): {e}",
                self.cert.display(),
                self.ca.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{IdentityConfig, fleet_ca};

    fn issued(dir: &std::path::Path, ttl: Duration, backdate: Duration) -> IdentityConfig {
        let ca = dir.join("ca");
        if !ca.join(fleet_ca::CA_CERT).exists() {
            fleet_ca::init("fleet.example", &ca, Duration::from_secs(86400)).unwrap();
        }
        let id = fleet_ca::issue(&ca, "t", "a", ttl, backdate).unwrap();
        let (cert, key) = fleet_ca::write_issued(&id, &dir.join("ids"), "a").unwrap();
        IdentityConfig {
            cert,
            key,
            ca: ca.join(fleet_ca::CA_CERT),
        }
    }

    #[test]
    fn a_valid_identity_loads_and_an_expired_or_foreign_one_is_refused_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let ok = issued(dir.path(), Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(
            ok.load().unwrap().spiffe_id,
            "spiffe://fleet.example/team/t/agent/a"
        );
        let expired = issued(
            dir.path(),
            Duration::from_secs(60),
            Duration::from_secs(7200),
        );
        let e = expired.load().unwrap_err();
        assert!(
            e.contains("--agent-identity-cert") && e.contains("fleet-ca issue"),
            "{e}"
        );
        // An identity from another CA does not chain to the configured one.
        let other = tempfile::tempdir().unwrap();
        let foreign = issued(other.path(), Duration::from_secs(3600), Duration::ZERO);
        let mixed = IdentityConfig {
            ca: ok.ca.clone(),
            ..foreign
        };
        assert!(mixed.load().is_err());
        // A world-readable key is refused before it is used.
        use std::os::unix::fs::PermissionsExt;
        let fresh = issued(dir.path(), Duration::from_secs(3600), Duration::ZERO);
        std::fs::set_permissions(&fresh.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = fresh.load().unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        let missing = IdentityConfig {
            cert: dir.path().join("nope.pem"),
            ..fresh
        };
        std::fs::set_permissions(&missing.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(missing.load().unwrap_err().contains("nope.pem"));
    }
}
