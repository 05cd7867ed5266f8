//! Normalising the destination names the agent sends (CONNECT authority,
//! SNI, `Host`) before they reach the [`HostPolicy`](super::HostPolicy).

use std::net::IpAddr;

/// What a destination name turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// A DNS name: lower-case, without a trailing dot.
    Name(String),
    /// An IP literal (v4, v6, or bracketed v6). Never routed by the proxy:
    /// names are enforced, addresses are what the sidecar resolves.
    IpLiteral,
    /// Empty, too long, or with characters no DNS name has.
    Invalid,
}

/// Longest DNS name in presentation form.
const MAX_NAME_LEN: usize = 253;

/// Classifies and normalises `raw` (no port).
pub fn classify_host(raw: &str) -> HostKind {
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return HostKind::IpLiteral;
    }
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !valid_chars
        || name
            .split('.')
            .any(|label| label.is_empty() || label.len() > 63)
    {
        return HostKind::Invalid;
    }
    // Dotted-decimal spellings that inet_aton would still read as an address
    // ("127.1", "0x7f.1") are not names either.
    if name
        .split('.')
        .all(|label| label.bytes().all(|b| b.is_ascii_digit()) || label.starts_with("0x"))
    {
        return HostKind::IpLiteral;
    }
    HostKind::Name(name)
}

/// Splits `host[:port]` / `[v6][:port]` as found in a `Host` header.
/// Returns `None` when the port is present but not a number.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests;
