//! Where `run` and `serve` read the agent's fleet identity from (the
//! `--agent-identity-cert`, `--agent-identity-key` and `--fleet-ca-cert`
//! flags), checked at start.

use super::identity;

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

    use super::IdentityConfig;
    use crate::delegation::fleet_ca;

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
