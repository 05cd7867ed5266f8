//! Loading and validating an operator-supplied CA (certificate + PKCS#8
//! key, PEM). Every error names the file and the fix.

use std::{fs, path::Path};

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::{CertificateAuthority, fingerprint, rfc3339, to_pem};
use crate::tls::TlsError;

impl CertificateAuthority {
    /// Loads an operator-supplied CA: `cert_path` holds one PEM certificate,
    /// `key_path` its PKCS#8 PEM private key. Refuses a certificate that is
    /// not a CA, a key that does not match it, and a CA outside its validity
    /// period; every error names the file and the fix.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let pem = pem_certificate(cert_path, &cert_pem)?;
        let cert_der = CertificateDer::from(pem.contents().to_vec());
        let (_, x509) = X509Certificate::from_der(&cert_der).map_err(|e| {
            TlsError::bad_file(
                cert_path,
                format!("not a valid X.509 certificate: {e}"),
                "supply the CA certificate in PEM (BEGIN CERTIFICATE)",
            )
        })?;
        if !is_signing_ca(&x509) {
            return Err(TlsError::bad_file(
                cert_path,
                "the certificate is not a CA (basicConstraints CA:TRUE and keyCertSign required)",
                "supply a CA certificate, not a server certificate",
            ));
        }
        let key = KeyPair::from_pem(&key_pem).map_err(|e| {
            TlsError::bad_file(
                key_path,
                format!("not a usable private key: {e}"),
                "supply an unencrypted PKCS#8 PEM key (BEGIN PRIVATE KEY); \
                 convert with `openssl pkcs8 -topk8 -nocrypt`",
            )
        })?;
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(TlsError::bad_file(
                key_path,
                format!(
                    "the key does not match the certificate {}",
                    cert_path.display()
                ),
                "supply the private key that belongs to this CA certificate",
            ));
        }
        let not_before = x509.validity().not_before.to_datetime();
        let not_after = x509.validity().not_after.to_datetime();
        let now = OffsetDateTime::now_utc();
        if now < not_before || now >= not_after {
            return Err(TlsError::bad_file(
                cert_path,
                format!(
                    "the CA is not valid now (valid {} .. {})",
                    rfc3339(not_before),
                    rfc3339(not_after)
                ),
                "renew the CA certificate or let the sidecar generate one",
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| {
            TlsError::bad_file(
                cert_path,
                format!("cannot use the certificate as issuer: {e}"),
                "supply a standard X.509 v3 CA certificate",
            )
        })?;
        Ok(Self {
            fingerprint: fingerprint(&cert_der),
            cert_pem: to_pem(&cert_der),
            cert_der,
            not_before,
            not_after,
            issuer,
            generated: false,
        })
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The single `CERTIFICATE` block of an operator CA file.
fn pem_certificate(path: &Path, text: &str) -> Result<pem::Pem, TlsError> {
    let blocks = pem::parse_many(text).map_err(|e| {
        TlsError::bad_file(
            path,
            format!("not PEM: {e}"),
            "supply the CA certificate in PEM",
        )
    })?;
    let mut certs = blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE");
    match (certs.next(), certs.next()) {
        (Some(cert), None) => Ok(cert),
        (None, _) => Err(TlsError::bad_file(
            path,
            "no CERTIFICATE block",
            "supply the CA certificate in PEM (BEGIN CERTIFICATE)",
        )),
        (Some(_), Some(_)) => Err(TlsError::bad_file(
            path,
            "more than one CERTIFICATE block",
            "supply only the signing CA's certificate",
        )),
    }
}

/// basicConstraints CA:TRUE and, when keyUsage is present, keyCertSign.
fn is_signing_ca(x509: &X509Certificate<'_>) -> bool {
    let ca = matches!(x509.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let can_sign = match x509.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    ca && can_sign
}
