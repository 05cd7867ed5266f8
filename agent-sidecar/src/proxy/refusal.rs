//! Refusals the agent sees in its own protocol: an HTTP status with a JSON
//! body, or a fatal TLS alert.

use std::sync::{Arc, OnceLock};

use hyper::StatusCode;
use rustls::{
    ServerConfig,
    server::{Acceptor, ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use serde::Serialize;

use super::host_policy::HostRefusal;

/// Why the proxy refused or failed a connection: what the agent is told and
/// what the event records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// HTTP status for HTTP clients: 403 refused, 400 malformed, 502 upstream
    /// or DNS failure, 408 the client was too slow.
    pub status: StatusCode,
    /// Short machine-readable code, e.g. `sni_mismatch` or `not_allowlisted`.
    pub reason: String,
    /// The rule that refused, or a one-line explanation.
    pub rule: String,
}

impl Denial {
    fn new(status: StatusCode, reason: &str, rule: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.to_owned(),
            rule: rule.into(),
        }
    }

    /// The name policy refused the destination.
    pub fn policy(refusal: HostRefusal) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason: refusal.reason,
            rule: refusal.rule,
        }
    }

    /// 403: the request is refused by the proxy's own rules (`reason`).
    pub fn forbidden(reason: &str, rule: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason, rule)
    }

    /// 400: the first bytes are not a well-formed request or ClientHello.
    pub fn malformed(reason: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, detail)
    }

    /// 502: the name could not be resolved or its addresses not reached.
    pub fn upstream(reason: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, reason, detail)
    }

    /// 408: the client did not send its ClientHello / request head in time.
    pub fn timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "sniff_timeout", detail)
    }

    /// Value of the body's `error` field.
    fn error_kind(&self) -> &'static str {
        match self.status {
            StatusCode::FORBIDDEN => "egress_refused",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            _ => "bad_gateway",
        }
    }

    /// The JSON body: `{"error","host","port","reason","rule"}`.
    pub fn json_body(&self, host: Option<&str>, port: u16) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            host: Option<&'a str>,
            port: u16,
            reason: &'a str,
            rule: &'a str,
        }
        serde_json::to_string(&Body {
            error: self.error_kind(),
            host,
            port,
            reason: &self.reason,
            rule: &self.rule,
        })
        .unwrap_or_else(|_| format!("{{\"error\":\"{}\"}}", self.error_kind()))
    }

    /// A complete `HTTP/1.1` response carrying [`json_body`](Self::json_body),
    /// for connections not served by hyper (transparent listener, plain HTTP
    /// inside a CONNECT tunnel). The connection is closed after it.
    pub fn http_response(&self, host: Option<&str>, port: u16) -> Vec<u8> {
        let body = self.json_body(host, port);
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            self.status.as_str(),
            self.status.canonical_reason().unwrap_or(""),
            body.len(),
        )
        .into_bytes()
    }
}

/// A fatal alert for a refused TLS client, given the bytes it sent.
///
/// The alert is produced by rustls: the buffered ClientHello is replayed into
/// an [`Acceptor`] and handed to a server configuration whose certificate
/// resolver never returns a certificate, so rustls aborts the handshake with a
/// fatal `access_denied` alert (or the alert matching a malformed hello). Only
/// when rustls has no alert to give — the client sent an incomplete hello and
/// went quiet, or sent more than the sniffing bound — is the 7-byte record of a
/// fatal `handshake_failure` alert (RFC 8446 §6) written instead.
pub fn tls_alert(buffered: &[u8]) -> Vec<u8> {
    let mut acceptor = Acceptor::default();
    let mut rest = buffered;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let mut out = Vec::new();
    let written = match acceptor.accept() {
        Ok(Some(accepted)) => match refusing_config() {
            Some(config) => match accepted.into_connection(config) {
                Err((_, mut alert)) => alert.write_all(&mut out).is_ok(),
                Ok(_) => false,
            },
            None => false,
        },
        Err((_, mut alert)) => alert.write_all(&mut out).is_ok(),
        Ok(None) => false,
    };
    if written && !out.is_empty() {
        out
    } else {
        HANDSHAKE_FAILURE_RECORD.to_vec()
    }
}

/// Alert record: content type 21, legacy version TLS 1.2, length 2, level
/// fatal (2), description handshake_failure (40).
const HANDSHAKE_FAILURE_RECORD: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

/// Server configuration that refuses every handshake (it has no
/// certificate). `None` only if the ring provider rejected its own defaults.
fn refusing_config() -> Option<Arc<ServerConfig>> {
    static CONFIG: OnceLock<Option<Arc<ServerConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()
                .map(|b| {
                    Arc::new(
                        b.with_no_client_auth()
                            .with_cert_resolver(Arc::new(NoCertificate)),
                    )
                })
        })
        .clone()
}

/// Resolves no certificate, whatever the client asks: rustls then refuses
/// the handshake with `access_denied`.
#[derive(Debug)]
struct NoCertificate;

impl ResolvesServerCert for NoCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

#[cfg(test)]
mod tests;
