//! Interception: connects and datagrams to an intercepted (protocol, port)
//! pair — DNS on port 53, HTTP(S) on 80/443 — are rewritten to the sidecar's
//! listener for that pair, whatever address the agent chose. Replies to a
//! redirected UDP socket are rewritten back, so the agent sees them come from
//! the address it sent to (resolvers check that).

use agent_sidecar_common::{OrigDest, PROTO_UDP, RedirectKey, SETTINGS_INTERCEPT, v4_mapped};
use aya_ebpf::{helpers::generated::bpf_get_socket_cookie, programs::SockAddrContext};

use crate::{
    maps::{ORIG_DEST, REDIRECT, SETTINGS},
    verdict::Dest,
};

/// Rewrites the destination of an intercepted connect/sendmsg in `ctx` and
/// returns the new destination; `None` when `dest` is not intercepted.
#[inline(always)]
pub fn intercept(ctx: &SockAddrContext, proto: u8, dest: &Dest, ipv6_socket: bool) -> Option<Dest> {
    // Agents without interception pay one array read, not a hash lookup.
    if SETTINGS.get(0)?.flags & SETTINGS_INTERCEPT == 0 {
        return None;
    }
    let key = RedirectKey {
        proto,
        pad: 0,
        port_be: dest.port_be(),
    };
    // SAFETY: plain-data value, copied at once.
    let target = unsafe { REDIRECT.get(&key) }.copied()?;
    let new = match (*dest, ipv6_socket) {
        (Dest::V4(..), false) => Dest::V4(target.addr4_be, target.port4_be),
        // A v4-mapped destination on an IPv6 socket stays IPv4.
        (Dest::V4(..), true) => Dest::V4(target.addr4_be, target.port4_be),
        (Dest::V6(..), _) => Dest::V6(target.addr6_be, target.port6_be),
    };
    // SAFETY: valid bpf_sock_addr context; user_ip4/user_ip6/user_port are
    // writable in connect and sendmsg programs, one 32-bit word at a time.
    unsafe {
        let sa = &mut *ctx.sock_addr;
        match (new, ipv6_socket) {
            (Dest::V4(a, p), false) => {
                sa.user_ip4 = u32::from_ne_bytes(a);
                sa.user_port = u32::from(p);
            }
            (Dest::V4(a, p), true) => {
                let m = v4_mapped(a);
                sa.user_ip6[0] = u32::from_ne_bytes([m[0], m[1], m[2], m[3]]);
                sa.user_ip6[1] = u32::from_ne_bytes([m[4], m[5], m[6], m[7]]);
                sa.user_ip6[2] = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
                sa.user_ip6[3] = u32::from_ne_bytes([m[12], m[13], m[14], m[15]]);
                sa.user_port = u32::from(p);
            }
            (Dest::V6(a, p), _) => {
                sa.user_ip6[0] = u32::from_ne_bytes([a[0], a[1], a[2], a[3]]);
                sa.user_ip6[1] = u32::from_ne_bytes([a[4], a[5], a[6], a[7]]);
                sa.user_ip6[2] = u32::from_ne_bytes([a[8], a[9], a[10], a[11]]);
                sa.user_ip6[3] = u32::from_ne_bytes([a[12], a[13], a[14], a[15]]);
                sa.user_port = u32::from(p);
            }
        }
    }
    if proto == PROTO_UDP {
        // SAFETY: valid bpf_sock_addr context.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
        let orig = OrigDest {
            addr_be: dest.addr16(),
            port_be: dest.port_be(),
            pad: [0; 2],
        };
        // An evicted entry only means a reply shows the sidecar's address.
        let _ = ORIG_DEST.insert(&cookie, &orig, 0);
    }
    Some(new)
}

/// `recvmsg` on a redirected UDP socket: shows the original destination as
/// the source of the datagram. Leaves every other datagram alone.
#[inline(always)]
pub fn restore_source(ctx: &SockAddrContext, ipv6_socket: bool) {
    // SAFETY: valid bpf_sock_addr context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    // SAFETY: plain-data value, copied at once.
    let Some(orig) = (unsafe { ORIG_DEST.get(&cookie) }).copied() else {
        return;
    };
    let a = orig.addr_be;
    // SAFETY: valid context; the source address fields are writable in
    // recvmsg programs.
    unsafe {
        let sa = &mut *ctx.sock_addr;
        if ipv6_socket {
            sa.user_ip6[0] = u32::from_ne_bytes([a[0], a[1], a[2], a[3]]);
            sa.user_ip6[1] = u32::from_ne_bytes([a[4], a[5], a[6], a[7]]);
            sa.user_ip6[2] = u32::from_ne_bytes([a[8], a[9], a[10], a[11]]);
            sa.user_ip6[3] = u32::from_ne_bytes([a[12], a[13], a[14], a[15]]);
        } else {
            sa.user_ip4 = u32::from_ne_bytes([a[12], a[13], a[14], a[15]]);
        }
        sa.user_port = u32::from(orig.port_be);
    }
}
