//! The fleet CA: `agent-sidecar fleet-ca init` and `issue`. Ed25519 keys;
//! the agent's identity key also signs its delegation tokens, so a token
//! chains to the fleet CA through the agent's certificate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SanType,
};

use super::DelegationError;

/// File names inside a fleet CA directory.
pub const CA_CERT: &str = "fleet-ca.pem";
/// CA private key (mode 0600).
pub const CA_KEY: &str = "fleet-ca.key";
/// Trust domain the CA issues for.
pub const TRUST_DOMAIN: &str = "trust-domain";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DelegationError + '_ {
    move |source| DelegationError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn cert_err(e: impl std::fmt::Display) -> DelegationError {
    DelegationError::Cert(e.to_string())
}

/// Writes `contents` to `path` with mode `mode`, refusing to overwrite.
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), DelegationError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

/// The SPIFFE ID of an agent.
pub fn spiffe_id(trust_domain: &str, team: &str, agent: &str) -> String {
    format!("spiffe://{trust_domain}/team/{team}/agent/{agent}")
}

/// The DNS name an agent's sidecar serves under (also a SAN of its identity).
pub fn dns_name(trust_domain: &str, team: &str, agent: &str) -> String {
    format!("{agent}.{team}.{trust_domain}")
}

fn check_label(what: &str, v: &str) -> Result<(), DelegationError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(DelegationError::Cert(format!(
            "{what} {v:?} must be non-empty lowercase letters, digits, '-' or '.'"
        )))
    }
}

/// Creates a fleet CA in `out` (created if absent): `fleet-ca.pem`,
/// `fleet-ca.key` (0600) and `trust-domain`. Refuses to overwrite.
pub fn init(
    trust_domain: &str,
    out: &Path,
    validity: Duration,
) -> Result<PathBuf, DelegationError> {
    check_label("trust domain", trust_domain)?;
    fs::create_dir_all(out).map_err(io(out))?;
    let key = KeyPair::generate_for(&PKCS_ED25519).map_err(cert_err)?;
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + validity;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("agent-sidecar fleet CA {trust_domain}"),
    );
    dn.push(DnType::OrganizationName, "agent-sidecar");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).map_err(cert_err)?;
    write_new(&out.join(CA_KEY), &key.serialize_pem(), 0o600)?;
    write_new(&out.join(CA_CERT), &cert.pem(), 0o644)?;
    write_new(&out.join(TRUST_DOMAIN), trust_domain, 0o644)?;
    Ok(out.join(CA_CERT))
}

/// An issued identity: certificate and key PEM.
#[derive(Debug)]
pub struct Issued {
    /// SPIFFE ID (URI SAN).
    pub spiffe_id: String,
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8 Ed25519).
    pub key_pem: String,
}

/// Issues an identity for `team`/`agent` valid for `ttl` from the CA in
/// `ca_dir`. `ttl` may be zero or "negative" via `backdate` for tests of
/// expired identities.
pub fn issue(
    ca_dir: &Path,
    team: &str,
    agent: &str,
    ttl: Duration,
    backdate: Duration,
) -> Result<Issued, DelegationError> {
    check_label("team", team)?;
    check_label("agent", agent)?;
    let td_path = ca_dir.join(TRUST_DOMAIN);
    let trust_domain = fs::read_to_string(&td_path).map_err(io(&td_path))?;
    let trust_domain = trust_domain.trim();
    let key_path = ca_dir.join(CA_KEY);
    let ca_key = KeyPair::from_pem(&fs::read_to_string(&key_path).map_err(io(&key_path))?)
        .map_err(cert_err)?;
    let cert_path = ca_dir.join(CA_CERT);
    let ca_pem = fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(cert_err)?;
    let id = spiffe_id(trust_domain, team, agent);
    let key = KeyPair::generate_for(&PKCS_ED25519).map_err(cert_err)?;
    let now = time::OffsetDateTime::now_utc() - backdate;
    let mut params = CertificateParams::default();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + ttl;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, id.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::URI(id.as_str().try_into().map_err(cert_err)?),
        SanType::DnsName(
            dns_name(trust_domain, team, agent)
                .try_into()
                .map_err(cert_err)?,
        ),
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
    Ok(Issued {
        spiffe_id: id,
        cert_pem: cert.pem(),
        key_pem: pkcs8_v1_pem(&key.serialize_der())?,
    })
}

/// The key as PKCS#8 v1 (RFC 8410 without the optional public key):
/// OpenSSL 3.0, and so curl and Python clients, refuse the v2 form ring
/// writes for Ed25519 ("unsupported"); rustls and biscuit read both.
fn pkcs8_v1_pem(der: &[u8]) -> Result<String, DelegationError> {
    use pkcs8::der::{EncodePem, pem::LineEnding};
    let mut info = pkcs8::PrivateKeyInfo::try_from(der).map_err(cert_err)?;
    info.public_key = None;
    info.to_pem(LineEnding::LF).map_err(cert_err)
}

/// Writes an issued identity as `<out>/<agent>.pem` and `<agent>.key` (0600).
pub fn write_issued(
    issued: &Issued,
    out: &Path,
    agent: &str,
) -> Result<(PathBuf, PathBuf), DelegationError> {
    fs::create_dir_all(out).map_err(io(out))?;
    let cert = out.join(format!("{agent}.pem"));
    let key = out.join(format!("{agent}.key"));
    // Rotation replaces files: write beside and rename over.
    for (path, body, mode) in [
        (&key, &issued.key_pem, 0o600),
        (&cert, &issued.cert_pem, 0o644),
    ] {
        let tmp = path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        write_new(&tmp, body, mode)?;
        fs::rename(&tmp, path).map_err(io(path))?;
    }
    Ok((cert, key))
}
