//! The DNS rebinding guard: which answer addresses an allowlisted public
//! name may not resolve to (unless its rule says `allow_private`).
//!
//! An attacker who controls an allowlisted name's DNS (or a name under an
//! allowlisted wildcard) could point it at `10.0.0.5`, `127.0.0.1` or the
//! cloud metadata service and use the agent's egress to reach internal
//! services. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible and NAT64
//! (`64:ff9b::/96`) IPv6 addresses are judged by the IPv4 address they
//! carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// Why an address is not acceptable in an answer for a public name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockedRange {
    /// Cloud instance metadata (169.254.169.254, fd00:ec2::254,
    /// 100.100.100.200).
    Metadata,
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// RFC 6598 carrier-grade NAT: 100.64.0.0/10.
    SharedAddressSpace,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// Unique local IPv6: fc00::/7 (and the deprecated site-local fec0::/10).
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 0.0.0.0/8 ("this network"), 240.0.0.0/4 and 255.255.255.255,
    /// 192.0.0.0/24 (IETF protocol assignments), 198.18.0.0/15
    /// (benchmarking, often used inside data centres).
    Reserved,
}

/// The blocked range `ip` falls in, or `None` for an ordinary public address.
pub fn classify(ip: IpAddr) -> Option<BlockedRange> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<BlockedRange> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        (169, 254, 169, 254) | (100, 100, 100, 200) => BlockedRange::Metadata,
        (0, 0, 0, 0) => BlockedRange::Unspecified,
        (127, ..) => BlockedRange::Loopback,
        (10, ..) | (192, 168, ..) => BlockedRange::Private,
        (172, b, ..) if (16..32).contains(&b) => BlockedRange::Private,
        (100, b, ..) if (64..128).contains(&b) => BlockedRange::SharedAddressSpace,
        (169, 254, ..) => BlockedRange::LinkLocal,
        (224..=239, ..) => BlockedRange::Multicast,
        (0, ..) | (240..=255, ..) | (192, 0, 0, _) => BlockedRange::Reserved,
        (198, 18 | 19, ..) => BlockedRange::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockedRange> {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    Some(match segments {
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => BlockedRange::Metadata,
        _ if ip.is_unspecified() => BlockedRange::Unspecified,
        _ if ip.is_loopback() => BlockedRange::Loopback,
        [s, ..] if s & 0xfe00 == 0xfc00 => BlockedRange::UniqueLocal,
        [s, ..] if s & 0xffc0 == 0xfec0 => BlockedRange::UniqueLocal,
        [s, ..] if s & 0xffc0 == 0xfe80 => BlockedRange::LinkLocal,
        [s, ..] if s & 0xff00 == 0xff00 => BlockedRange::Multicast,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-compatible (`::/96`, but not `::` and `::1`) and
/// the NAT64 well-known prefix (`64:ff9b::/96`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(tail),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
