//! The allowlist decision shared by every hook. Every function answers
//! "allowed?"; anything that is not a positive match is a refusal.

use agent_sidecar_common::{
    ALLOW_FLAG_LEARNED, Allow4AnyKey, Allow4PortKey, Allow6AnyKey, Allow6PortKey, DOT_PORT,
    DenyReason, EndpointKey, ExactValue, KEY_FIXED_PREFIX_BITS, LAST_SEEN_RESOLUTION_NS,
    SETTINGS_QUARANTINE, SETTINGS_READY, private_port_bit, v4_mapped,
};
use aya_ebpf::{helpers::generated::bpf_ktime_get_boot_ns, maps::lpm_trie::Key};

use crate::maps::{
    ALLOW4_ANY, ALLOW4_PORT, ALLOW6_ANY, ALLOW6_PORT, EXACT, PRIVATE_PORT_BITS, SETTINGS,
    TRIE_CACHE,
};

const FULL_V4: u32 = KEY_FIXED_PREFIX_BITS + 32;
const FULL_V6: u32 = KEY_FIXED_PREFIX_BITS + 128;

/// A destination as seen by a hook: IPv4 addresses are kept as IPv4 (a
/// v4-mapped IPv6 destination is converted by the caller).
#[derive(Clone, Copy)]
pub enum Dest {
    /// Address and port, network byte order.
    V4([u8; 4], u16),
    /// Address and port, network byte order.
    V6([u8; 16], u16),
}

impl Dest {
    /// Builds a destination from an IPv6 socket address, treating
    /// `::ffff:a.b.c.d` as the IPv4 address it maps.
    #[inline(always)]
    pub fn from_v6(addr: [u8; 16], port_be: u16) -> Self {
        if addr[..10] == [0u8; 10] && addr[10] == 0xff && addr[11] == 0xff {
            Dest::V4([addr[12], addr[13], addr[14], addr[15]], port_be)
        } else {
            Dest::V6(addr, port_be)
        }
    }

    /// The address as stored in events and the sidecar map.
    #[inline(always)]
    pub fn addr16(&self) -> [u8; 16] {
        match *self {
            Dest::V4(a, _) => v4_mapped(a),
            Dest::V6(a, _) => a,
        }
    }

    /// The port, network byte order.
    #[inline(always)]
    pub fn port_be(&self) -> u16 {
        match *self {
            Dest::V4(_, p) | Dest::V6(_, p) => p,
        }
    }
}

/// Decides a connection or datagram from the agent's cgroup to `dest`.
#[inline(always)]
pub fn check(proto: u8, dest: &Dest, at: At) -> Result<(), DenyReason> {
    // Fail closed: no settings, or settings not yet marked ready, is a deny.
    let Some(settings) = SETTINGS.get(0) else {
        return Err(DenyReason::NotReady);
    };
    let flags = settings.flags;
    if flags & SETTINGS_QUARANTINE != 0 {
        return Err(DenyReason::Quarantined);
    }
    if flags & SETTINGS_READY == 0 {
        return Err(DenyReason::NotReady);
    }
    // The sidecar's private listeners come before every allowlist map, so
    // no rule, learned address or reload can open them, whatever address
    // (loopback, local, unspecified, v4-mapped) the agent names.
    let (word, bit) = private_port_bit(proto, u16::from_be(dest.port_be()));
    // An array lookup, inlined by the verifier; the index is always in range.
    if PRIVATE_PORT_BITS.get(word).is_some_and(|w| w & bit != 0) {
        return Err(DenyReason::PrivateListener);
    }
    allowlisted(proto, dest, settings.epoch, at)
}

/// Where a destination is being decided.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// `connect()` or `sendmsg()`: a new flow.
    Socket,
    /// A packet of a flow the socket hooks allowed.
    Egress,
}

/// What an exact-map entry says for `at`.
#[inline(always)]
fn exact_allows(value: *mut ExactValue, at: At) -> bool {
    // SAFETY: a map value pointer from a successful lookup.
    let v = unsafe { &mut *value };
    if v.flags & ALLOW_FLAG_LEARNED == 0 {
        return true;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    match at {
        At::Socket => now < v.expires_ns,
        // Established flows outlive the lifetime of the answer; record that
        // the destination is in use so the sidecar keeps the entry.
        At::Egress => {
            if now.wrapping_sub(v.last_seen_ns) > LAST_SEEN_RESOLUTION_NS {
                v.last_seen_ns = now;
            }
            true
        }
    }
}

/// Whether the maps allow `dest`: the exact-endpoint map first (one hash
/// lookup with the port, one for "every port"), then the CIDR tries through
/// their cache of this `epoch`. An expired learned entry that nothing else
/// covers is reported as [`DenyReason::Expired`].
#[inline(always)]
fn allowlisted(proto: u8, dest: &Dest, epoch: u32, at: At) -> Result<(), DenyReason> {
    let mut expired = false;
    let mut endpoint = EndpointKey {
        addr_be: dest.addr16(),
        port_be: dest.port_be(),
        proto,
        pad: 0,
    };
    if let Some(v) = EXACT.get_ptr_mut(&endpoint) {
        if exact_allows(v, at) {
            return Ok(());
        }
        expired = true;
    }
    endpoint.port_be = 0;
    if let Some(v) = EXACT.get_ptr_mut(&endpoint) {
        // SAFETY: a map value pointer from a successful lookup.
        let learned = unsafe { (*v).flags } & ALLOW_FLAG_LEARNED != 0;
        // A learned "every port" entry never opens DNS over TLS.
        if !(learned && dest.port_be() == DOT_PORT.to_be()) {
            if exact_allows(v, at) {
                return Ok(());
            }
            expired = true;
        }
    }
    endpoint.port_be = dest.port_be();
    // SAFETY: plain-data value, copied at once.
    if unsafe { TRIE_CACHE.get(&endpoint) }.copied() == Some(epoch) {
        return Ok(());
    }
    let hit = match *dest {
        Dest::V4(addr_be, port_be) => {
            let with_port = Allow4PortKey {
                proto,
                pad: 0,
                port_be,
                addr_be,
            };
            ALLOW4_PORT.get(Key::new(FULL_V4, with_port)).is_some() || {
                let any_port = Allow4AnyKey {
                    proto,
                    pad: [0; 3],
                    addr_be,
                };
                ALLOW4_ANY.get(Key::new(FULL_V4, any_port)).is_some()
            }
        }
        Dest::V6(addr_be, port_be) => {
            let with_port = Allow6PortKey {
                proto,
                pad: 0,
                port_be,
                addr_be,
            };
            ALLOW6_PORT.get(Key::new(FULL_V6, with_port)).is_some() || {
                let any_port = Allow6AnyKey {
                    proto,
                    pad: [0; 3],
                    addr_be,
                };
                ALLOW6_ANY.get(Key::new(FULL_V6, any_port)).is_some()
            }
        }
    };
    if hit {
        // A full cache evicts its least recently used entry; a failed insert
        // only costs the next lookup a trie walk.
        let _ = TRIE_CACHE.insert(&endpoint, &epoch, 0);
        Ok(())
    } else if expired {
        Err(DenyReason::Expired)
    } else {
        Err(DenyReason::NotAllowlisted)
    }
}

/// Decides a socket at the LSM `socket_create` hook, where the protocol may
/// still be 0 (the family default) and `type` may carry
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC`: only Unix, IPv4 and IPv6 sockets are
/// allowed, and no raw or packet inet socket. Every other family (netlink,
/// vsock, packet, bluetooth, alg, xdp, ...) is refused.
#[inline(always)]
pub fn check_socket_lsm(family: i32, sock_type: i32) -> Result<(), DenyReason> {
    const AF_UNIX: i32 = 1;
    const AF_INET: i32 = 2;
    const AF_INET6: i32 = 10;
    const SOCK_RAW: i32 = 3;
    const SOCK_PACKET: i32 = 10;
    const SOCK_TYPE_MASK: i32 = 0xf;
    match (family, sock_type & SOCK_TYPE_MASK) {
        (AF_INET | AF_INET6, SOCK_RAW | SOCK_PACKET) => Err(DenyReason::SocketType),
        (AF_UNIX | AF_INET | AF_INET6, _) => Ok(()),
        _ => Err(DenyReason::SocketType),
    }
}

/// Refuses inet sockets the agent may not create; `Ok` for TCP and UDP over
/// IPv4 and IPv6. The kernel runs `cgroup/sock_create` for inet sockets
/// (and packet sockets on some kernels); other families are decided by the
/// LSM guard ([`check_socket_lsm`]) or the agent's seccomp filter.
#[inline(always)]
pub fn check_socket(family: u32, sock_type: u32, protocol: u32) -> Result<(), DenyReason> {
    const AF_INET: u32 = 2;
    const AF_INET6: u32 = 10;
    const AF_PACKET: u32 = 17;
    const SOCK_STREAM: u32 = 1;
    const SOCK_DGRAM: u32 = 2;
    const IPPROTO_TCP: u32 = 6;
    const IPPROTO_UDP: u32 = 17;
    match family {
        AF_INET | AF_INET6 => match (sock_type, protocol) {
            (SOCK_STREAM, IPPROTO_TCP) | (SOCK_DGRAM, IPPROTO_UDP) => Ok(()),
            _ => Err(DenyReason::SocketType),
        },
        AF_PACKET => Err(DenyReason::SocketType),
        _ => Ok(()),
    }
}
