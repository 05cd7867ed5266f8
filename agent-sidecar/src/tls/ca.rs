//! The per-sidecar certificate authority that signs the leaf certificates
//! presented to the agent.
//!
//! By default the CA is generated at start (ECDSA P-256, 30 days, path
//! length 0, optional DNS name constraints); its private key lives in memory
//! only: it is never written to disk, never logged, and [`Debug`] elides it.
//! An operator may instead supply a CA certificate and PKCS#8 key as PEM
//! files; they are validated before use (see [`CertificateAuthority::load`]).

use std::{fmt, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, GeneralSubtree,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::TlsError;

/// Default lifetime of a generated CA.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// How far back `not_before` is set, so that agents with a slightly late
/// clock still accept freshly issued certificates.
pub(crate) const CLOCK_SKEW: time::Duration = time::Duration::hours(1);

/// How to generate a per-sidecar CA.
#[derive(Clone, Debug)]
pub struct CaOptions {
    /// Lifetime of the CA; leaf certificates never outlive it.
    pub validity: Duration,
    /// Common name of the CA (shows up in the agent's error messages).
    pub common_name: String,
    /// Permitted DNS subtrees (RFC 5280 name constraints), e.g. the
    /// inspected host patterns: `api.example.com` permits that name and every
    /// name below it; `*.example.com` and `.example.com` are read as
    /// `example.com`. Empty means no name constraints. When set, all IP
    /// addresses are excluded as well, so the CA can only vouch for these
    /// names.
    pub permitted_dns: Vec<String>,
}

impl Default for CaOptions {
    fn default() -> Self {
        Self {
            validity: DEFAULT_CA_VALIDITY,
            common_name: "agent-sidecar per-sidecar CA".to_owned(),
            permitted_dns: Vec::new(),
        }
    }
}

/// A CA able to sign leaf certificates. The signing key never leaves this
/// value.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fingerprint: String,
    generated: bool,
}

impl CertificateAuthority {
    /// Generates a fresh CA (ECDSA P-256) valid from now (minus one hour of
    /// clock skew) for `options.validity`.
    pub fn generate(options: &CaOptions) -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        // Whole seconds: X.509 times have no fractions, and leaves are
        // clipped to exactly these bounds.
        let now = OffsetDateTime::now_utc();
        let now = now - time::Duration::nanoseconds(now.nanosecond().into());
        let not_after = time::Duration::try_from(options.validity)
            .ok()
            .filter(|v| v.is_positive())
            .and_then(|v| now.checked_add(v))
            .ok_or_else(|| {
                TlsError::Config(format!(
                    "CA validity {:?} is out of range",
                    options.validity
                ))
            })?;
        let mut params = CertificateParams::default();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = not_after;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, options.common_name.as_str());
        dn.push(DnType::OrganizationName, "agent-sidecar");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.name_constraints = name_constraints(&options.permitted_dns);
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().clone();
        Ok(Self {
            fingerprint: fingerprint(&cert_der),
            cert_pem: to_pem(&cert_der),
            cert_der,
            not_before: params.not_before,
            not_after: params.not_after,
            issuer: Issuer::new(params, key),
            generated: true,
        })
    }

    /// The CA certificate (DER), last element of every chain served.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate in PEM; safe to hand to the agent.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Start of the CA's validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of the CA's validity; no leaf outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// SHA-256 fingerprint of the certificate (hex, colon-separated), for
    /// logs and for operators comparing what the agent trusts.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the CA was generated by this process (its key exists nowhere
    /// else) rather than loaded from operator files.
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// Fails unless `now` is inside the CA's validity period.
    pub(crate) fn check_valid_at(&self, now: OffsetDateTime) -> Result<(), TlsError> {
        if now < self.not_before || now >= self.not_after {
            return Err(TlsError::CaNotValid {
                not_before: rfc3339(self.not_before),
                not_after: rfc3339(self.not_after),
            });
        }
        Ok(())
    }

    /// The rcgen issuer (holds the signing key).
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint)
            .field("not_before", &rfc3339(self.not_before))
            .field("not_after", &rfc3339(self.not_after))
            .field("generated", &self.generated)
            .field("key", &"<in memory, elided>")
            .finish()
    }
}

/// PEM (LF line endings) of a DER certificate.
pub(crate) fn to_pem(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config)
}

/// RFC 3339 rendering for messages.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// RFC 5280 name constraints for the permitted DNS patterns.
fn name_constraints(patterns: &[String]) -> Option<NameConstraints> {
    let mut permitted: Vec<GeneralSubtree> = patterns
        .iter()
        .map(|p| {
            let name = p.trim_start_matches("*.").trim_start_matches('.');
            GeneralSubtree::DnsName(name.trim_end_matches('.').to_ascii_lowercase())
        })
        .filter(|s| !matches!(s, GeneralSubtree::DnsName(n) if n.is_empty()))
        .collect();
    permitted.dedup();
    if permitted.is_empty() {
        return None;
    }
    Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([0; 4], 0)),
            GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix([0; 16], 0)),
        ],
    })
}

/// SHA-256 fingerprint, hex, colon-separated.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

mod load;

#[cfg(test)]
mod tests;
