//! The checks every destination name passes before anything is dialled:
//! normalisation, no IP literals, agreement between the CONNECT target and
//! the SNI / `Host`, then the [`HostPolicy`](super::HostPolicy).

use hyper::Uri;

use super::{
    context::ProxyContext,
    host_policy::Allowed,
    name::{HostKind, classify_host, split_host_port},
    refusal::Denial,
    sniff::{ClientHelloInfo, RequestHead},
};

/// A destination that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cleared {
    /// Normalised name to resolve.
    pub(crate) host: String,
    /// What allowed it.
    pub(crate) allowed: Allowed,
}

/// Checks a CONNECT or absolute-URI host.
pub(crate) fn check_name(ctx: &ProxyContext, raw: &str, port: u16) -> Result<Cleared, Denial> {
    match classify_host(raw) {
        HostKind::IpLiteral => Err(Denial::forbidden(
            "ip_literal",
            "destinations are names: IP literals are never proxied",
        )),
        HostKind::Invalid => Err(Denial::malformed("host_invalid", "not a DNS name")),
        HostKind::Name(host) => decide(ctx, host, port, false),
    }
}

/// Checks a ClientHello: an SNI must be present, a DNS name, equal to the
/// CONNECT target when there is one, and allowed. With ECH, the outer
/// (public) name is what is checked: the hidden inner name never is.
pub(crate) fn check_hello(
    ctx: &ProxyContext,
    hello: &ClientHelloInfo,
    connect_host: Option<&str>,
    port: u16,
) -> Result<Cleared, Denial> {
    let Some(sni) = hello.sni.as_deref() else {
        return Err(Denial::forbidden(
            "sni_missing",
            "TLS ClientHello without server_name: the proxy routes on names only",
        ));
    };
    let host = match classify_host(sni) {
        HostKind::Name(host) => host,
        HostKind::IpLiteral => {
            return Err(Denial::forbidden(
                "sni_ip_literal",
                "TLS server_name is an IP literal: the proxy routes on names only",
            ));
        }
        HostKind::Invalid => {
            return Err(Denial::forbidden(
                "sni_invalid",
                "TLS server_name is not a DNS name",
            ));
        }
    };
    if let Some(expected) = connect_host.filter(|e| *e != host) {
        let (reason, what) = if hello.ech {
            ("ech_outer_mismatch", "ECH outer server_name")
        } else {
            ("sni_mismatch", "TLS server_name")
        };
        return Err(Denial::forbidden(
            reason,
            format!("{what} {host} differs from the CONNECT target {expected}"),
        ));
    }
    decide(ctx, host, port, hello.ech)
}

/// Checks an HTTP request head: one `Host`, a DNS name, on the expected port,
/// equal to the CONNECT target and to an absolute-form target, and allowed.
pub(crate) fn check_head(
    ctx: &ProxyContext,
    head: &RequestHead,
    connect_host: Option<&str>,
    port: u16,
) -> Result<Cleared, Denial> {
    let Some(raw) = head.host.as_deref() else {
        return Err(Denial::forbidden(
            "host_missing",
            "HTTP request without a Host header: the proxy routes on names only",
        ));
    };
    let Some((raw_host, host_port)) = split_host_port(raw) else {
        return Err(Denial::malformed("host_invalid", "malformed Host header"));
    };
    if let Some(p) = host_port.filter(|p| *p != port) {
        return Err(Denial::forbidden(
            "host_port_mismatch",
            format!("Host names port {p} but the connection is to port {port}"),
        ));
    }
    let host = match classify_host(raw_host) {
        HostKind::Name(host) => host,
        HostKind::IpLiteral => {
            return Err(Denial::forbidden(
                "host_ip_literal",
                "Host is an IP literal: the proxy routes on names only",
            ));
        }
        HostKind::Invalid => {
            return Err(Denial::malformed("host_invalid", "Host is not a DNS name"));
        }
    };
    if let Some(expected) = connect_host.filter(|e| *e != host) {
        return Err(Denial::forbidden(
            "host_mismatch",
            format!("Host {host} differs from the CONNECT target {expected}"),
        ));
    }
    let target_host = head
        .target
        .parse::<Uri>()
        .ok()
        .and_then(|uri| uri.authority().map(|a| classify_host(a.host())));
    if target_host.is_some_and(|t| t != HostKind::Name(host.clone())) {
        return Err(Denial::forbidden(
            "host_mismatch",
            format!("request target {} differs from Host {host}", head.target),
        ));
    }
    decide(ctx, host, port, false)
}

fn decide(ctx: &ProxyContext, host: String, port: u16, ech: bool) -> Result<Cleared, Denial> {
    match ctx.policy.decide(&host, port) {
        Ok(allowed) => Ok(Cleared { host, allowed }),
        Err(mut refusal) => {
            if ech {
                refusal.reason = "ech_outer_not_allowed".to_owned();
            }
            Err(Denial::policy(refusal))
        }
    }
}

#[cfg(test)]
mod tests;
