//! Layouts shared by the agent-sidecar eBPF programs (kernel) and the loader
//! (userspace).
//!
//! This crate is the single source of truth for every map key, map value and
//! ring-buffer event that crosses the kernel/userspace boundary, and for the
//! map capacities. Every type is `#[repr(C)]` with explicit padding fields (no
//! `bool`, no implicit padding) so that both sides agree byte for byte.
#![no_std]
#![deny(unsafe_code)]

/// IANA protocol number for TCP, as stored in map keys.
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number for UDP, as stored in map keys.
pub const PROTO_UDP: u8 = 17;

/// Capacity of each allowlist trie (per address family and key shape), and
/// of the exact-endpoint map's allowlist share.
pub const ALLOWLIST_CAPACITY: u32 = 131_072;
/// Room in the exact-endpoint map for the sidecar's own listeners.
pub const SIDECAR_ENDPOINT_CAPACITY: u32 = 64;
/// Capacity of the exact-endpoint map: allowlist entries plus sidecar
/// listeners.
pub const EXACT_CAPACITY: u32 = ALLOWLIST_CAPACITY + SIDECAR_ENDPOINT_CAPACITY;
/// Capacity of the exempt-cgroup map: the sidecar's own container (and a
/// restarted one's, until the next generation replaces the map).
pub const EXEMPT_CAPACITY: u32 = 8;
/// Capacity of the cache of destinations the CIDR tries allowed (least
/// recently used entries are evicted; an evicted destination is simply
/// looked up in the tries again).
pub const TRIE_CACHE_CAPACITY: u32 = 4096;
/// Capacity of the redirect map (intercepted protocol/port pairs).
pub const REDIRECT_CAPACITY: u32 = 64;
/// Capacity of the per-socket original-destination map of redirected UDP
/// sockets (least recently used entries are evicted).
pub const ORIG_DEST_CAPACITY: u32 = 8192;
/// Size of the deny-event ring buffer in bytes (a power of two, page aligned).
pub const EVENT_RING_BYTES: u32 = 256 * 1024;
/// Words of the sidecar's private-port bitmap
/// ([`map_names::PRIVATE_PORT_BITS`]): one bit per TCP port, then one per
/// UDP port.
pub const PRIVATE_PORT_WORDS: u32 = 2 * 65536 / 64;

/// Where the bit of `port` (host byte order) for `proto` sits in the
/// private-port bitmap: the word's index and the bit's mask. Any protocol
/// but UDP uses the TCP half, so a mistake can only refuse more.
#[inline(always)]
pub fn private_port_bit(proto: u8, port: u16) -> (u32, u64) {
    let half = if proto == PROTO_UDP { 65536 / 64 } else { 0 };
    (half + u32::from(port >> 6), 1u64 << (port & 63))
}

/// Names of the maps, as they appear in the eBPF object and under the pin
/// directory.
pub mod map_names {
    /// IPv4 rules with a port: [`Allow4PortKey`](super::Allow4PortKey).
    pub const ALLOW4_PORT: &str = "ALLOW4_PORT";
    /// IPv4 rules for all ports: [`Allow4AnyKey`](super::Allow4AnyKey).
    pub const ALLOW4_ANY: &str = "ALLOW4_ANY";
    /// IPv6 rules with a port: [`Allow6PortKey`](super::Allow6PortKey).
    pub const ALLOW6_PORT: &str = "ALLOW6_PORT";
    /// IPv6 rules for all ports: [`Allow6AnyKey`](super::Allow6AnyKey).
    pub const ALLOW6_ANY: &str = "ALLOW6_ANY";
    /// Exact endpoints: single-address rules and the sidecar's own
    /// listeners, [`EndpointKey`](super::EndpointKey) ->
    /// [`ExactValue`](super::ExactValue). Looked up before the tries.
    pub const EXACT: &str = "EXACT";
    /// Destinations the CIDR tries allowed: [`EndpointKey`](super::EndpointKey)
    /// -> the [`Settings::epoch`](super::Settings::epoch) they were allowed in.
    pub const TRIE_CACHE: &str = "TRIE_CACHE";
    /// Intercepted destinations: [`RedirectKey`](super::RedirectKey) ->
    /// [`RedirectTarget`](super::RedirectTarget), the sidecar listener.
    pub const REDIRECT: &str = "REDIRECT";
    /// Socket cookie -> [`OrigDest`](super::OrigDest): where a redirected
    /// UDP socket meant to send, so replies seem to come from there.
    pub const ORIG_DEST: &str = "ORIG_DEST";
    /// Enforcement settings: one [`Settings`](super::Settings) at index 0.
    pub const SETTINGS: &str = "SETTINGS";
    /// Per-CPU counters indexed by [`Counter`](super::Counter).
    pub const COUNTERS: &str = "COUNTERS";
    /// Ring buffer of [`DenyEvent`](super::DenyEvent)s.
    pub const EVENTS: &str = "EVENTS";
    /// The sidecar's private listener ports (admin API, metrics), a
    /// bitmap of `u64` words addressed by
    /// [`private_port_bit`](super::private_port_bit) (an array lookup the
    /// verifier inlines). Checked before every allowlist map: no rule,
    /// learned address or sidecar endpoint opens them.
    pub const PRIVATE_PORT_BITS: &str = "PRIVATE_PORT_BITS";
    /// cgroup v2 ids (`u64`) -> `1`: cgroups under the attached one that
    /// the programs leave alone, exactly (not their children). Empty for
    /// `run`; `serve`, attached at the pod's cgroup, puts the sidecar's
    /// own container there so that every other container, including one
    /// created later, is governed from its first instruction.
    pub const EXEMPT: &str = "EXEMPT";
    /// Every map name, in a stable order.
    pub const ALL: [&str; 13] = [
        ALLOW4_PORT,
        ALLOW4_ANY,
        ALLOW6_PORT,
        ALLOW6_ANY,
        EXACT,
        TRIE_CACHE,
        REDIRECT,
        ORIG_DEST,
        SETTINGS,
        COUNTERS,
        EVENTS,
        PRIVATE_PORT_BITS,
        EXEMPT,
    ];
}

/// Names of the eBPF programs in the object file.
pub mod program_names {
    /// `cgroup/connect4`: TCP and connected UDP over IPv4.
    pub const CONNECT4: &str = "connect4";
    /// `cgroup/connect6`: TCP and connected UDP over IPv6 (and v4-mapped).
    pub const CONNECT6: &str = "connect6";
    /// `cgroup/sendmsg4`: unconnected UDP over IPv4.
    pub const SENDMSG4: &str = "sendmsg4";
    /// `cgroup/sendmsg6`: unconnected UDP over IPv6 (and v4-mapped).
    pub const SENDMSG6: &str = "sendmsg6";
    /// `cgroup/sock_create`: refuses raw, packet and non-TCP/UDP inet sockets.
    pub const SOCK_CREATE: &str = "sock_create";
    /// `cgroup_skb/egress`: drops packets to destinations the hooks above refuse.
    pub const EGRESS: &str = "egress";
    /// `cgroup/recvmsg4`: replies to redirected UDP seem to come from the
    /// address the agent sent to.
    pub const RECVMSG4: &str = "recvmsg4";
    /// `cgroup/recvmsg6`: the same for IPv6 sockets.
    pub const RECVMSG6: &str = "recvmsg6";
    /// `lsm_cgroup/socket_create`: refuses every socket family but Unix,
    /// IPv4 and IPv6, and raw inet sockets, which `cgroup/sock_create` does
    /// not see for every family.
    /// Needs the BPF LSM (`bpf` in `/sys/kernel/security/lsm`).
    pub const LSM_SOCKET_CREATE: &str = "lsm_socket_create";
    /// The LSM hook [`LSM_SOCKET_CREATE`] attaches to.
    pub const LSM_SOCKET_CREATE_HOOK: &str = "socket_create";
    /// Every cgroup program name, in attach order (the LSM guard is attached
    /// separately because it is optional).
    pub const ALL: [&str; 8] = [
        SOCK_CREATE,
        CONNECT4,
        CONNECT6,
        SENDMSG4,
        SENDMSG6,
        RECVMSG4,
        RECVMSG6,
        EGRESS,
    ];
}

/// Key of [`map_names::ALLOW4_PORT`]: an LPM-trie key whose data is
/// `proto | pad | port | addr`, so a rule's prefix length is
/// `32 + cidr_bits` and the protocol and port always match exactly.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Allow4PortKey {
    /// IANA protocol ([`PROTO_TCP`] or [`PROTO_UDP`]).
    pub proto: u8,
    /// Always zero.
    pub pad: u8,
    /// Destination port, network byte order.
    pub port_be: u16,
    /// Destination address, network byte order (as in `sockaddr_in`).
    pub addr_be: [u8; 4],
}

/// Key of [`map_names::ALLOW4_ANY`]: data is `proto | pad[3] | addr`, prefix
/// length `32 + cidr_bits`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Allow4AnyKey {
    /// IANA protocol.
    pub proto: u8,
    /// Always zero.
    pub pad: [u8; 3],
    /// Destination address, network byte order.
    pub addr_be: [u8; 4],
}

/// Key of [`map_names::ALLOW6_PORT`]: data is `proto | pad | port | addr`,
/// prefix length `32 + cidr_bits`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Allow6PortKey {
    /// IANA protocol.
    pub proto: u8,
    /// Always zero.
    pub pad: u8,
    /// Destination port, network byte order.
    pub port_be: u16,
    /// Destination address, network byte order.
    pub addr_be: [u8; 16],
}

/// Key of [`map_names::ALLOW6_ANY`]: data is `proto | pad[3] | addr`, prefix
/// length `32 + cidr_bits`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Allow6AnyKey {
    /// IANA protocol.
    pub proto: u8,
    /// Always zero.
    pub pad: [u8; 3],
    /// Destination address, network byte order.
    pub addr_be: [u8; 16],
}

/// Number of bits in the fixed part (`proto`, padding, port) that precedes the
/// address in every allowlist key; a rule's LPM prefix length is this plus the
/// CIDR length.
pub const KEY_FIXED_PREFIX_BITS: u32 = 32;

/// Value of every allowlist map entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowValue {
    /// Identifier of the rule that produced the entry (index into the loaded
    /// policy's rule table; reported in logs).
    pub rule_id: u32,
    /// Reserved; always zero.
    pub flags: u32,
}

/// [`ExactValue::flags`]: one of the sidecar's own listeners, not an
/// allowlist rule (allowlist updates leave it alone).
pub const ALLOW_FLAG_SIDECAR: u32 = 1;
/// [`ExactValue::flags`]: learned from an allowed DNS answer; new
/// connections are allowed until [`ExactValue::expires_ns`], packets of
/// established ones as long as the entry exists (allowlist updates leave it
/// alone; the sidecar removes it once expired and idle).
pub const ALLOW_FLAG_LEARNED: u32 = 2;

/// Value of [`map_names::EXACT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExactValue {
    /// Identifier of the rule that produced the entry.
    pub rule_id: u32,
    /// Who owns the entry: `ALLOW_FLAG_*` (0 for an allowlist rule).
    pub flags: u32,
    /// Learned entries: `CLOCK_BOOTTIME` nanoseconds after which new
    /// connections are refused. `u64::MAX` for everything else.
    pub expires_ns: u64,
    /// Learned entries: when the egress hook last passed a packet to this
    /// destination (`CLOCK_BOOTTIME` ns, refreshed at most once a second).
    pub last_seen_ns: u64,
}

/// DNS over TLS: a learned "every port" entry never covers it (only an
/// explicit rule for port 853 does).
pub const DOT_PORT: u16 = 853;

/// How often the egress hook refreshes [`ExactValue::last_seen_ns`].
pub const LAST_SEEN_RESOLUTION_NS: u64 = 1_000_000_000;

/// Key of [`map_names::EXACT`]: one address and port (port 0: every port).
/// IPv4 addresses are stored as v4-mapped IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// Address, network byte order, IPv4 as `::ffff:a.b.c.d`.
    pub addr_be: [u8; 16],
    /// Port, network byte order.
    pub port_be: u16,
    /// IANA protocol.
    pub proto: u8,
    /// Always zero.
    pub pad: u8,
}

/// Key of [`map_names::REDIRECT`]: an intercepted protocol and destination
/// port, whatever the destination address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RedirectKey {
    /// IANA protocol.
    pub proto: u8,
    /// Always zero.
    pub pad: u8,
    /// Original destination port, network byte order.
    pub port_be: u16,
}

/// Value of [`map_names::REDIRECT`]: the sidecar listener that receives the
/// intercepted traffic, one per address family.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedirectTarget {
    /// IPv4 listener address, network byte order.
    pub addr4_be: [u8; 4],
    /// IPv4 listener port, network byte order.
    pub port4_be: u16,
    /// IPv6 listener port, network byte order.
    pub port6_be: u16,
    /// IPv6 listener address, network byte order.
    pub addr6_be: [u8; 16],
}

/// Value of [`map_names::ORIG_DEST`]: the destination a redirected socket
/// addressed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrigDest {
    /// Address, network byte order, IPv4 as `::ffff:a.b.c.d`.
    pub addr_be: [u8; 16],
    /// Port, network byte order.
    pub port_be: u16,
    /// Always zero.
    pub pad: [u8; 2],
}

/// Value stored at index 0 of [`map_names::SETTINGS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// Bit set of `SETTINGS_*` flags.
    pub flags: u32,
    /// Trie epoch: userspace bumps it after removing a trie entry, which
    /// invalidates every [`map_names::TRIE_CACHE`] entry of an older epoch.
    pub epoch: u32,
}

/// [`Settings::flags`]: deny everything, including sidecar endpoints
/// (quarantine).
pub const SETTINGS_QUARANTINE: u32 = 1;
/// [`Settings::flags`]: the maps are filled and enforcement is active. Until
/// userspace sets it, every attempt is denied (fail closed while loading).
pub const SETTINGS_READY: u32 = 2;
/// [`Settings::flags`]: the redirect map has entries (interception is on);
/// without it the socket hooks skip the redirect lookup.
pub const SETTINGS_INTERCEPT: u32 = 4;

/// Indices of [`map_names::COUNTERS`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Attempts allowed by a hook.
    Allowed = 0,
    /// Attempts denied by a hook.
    Denied = 1,
    /// Deny events that could not be written because the ring buffer was full.
    EventsLost = 2,
    /// Packets dropped by `cgroup_skb/egress`.
    SkbDropped = 3,
    /// IPv4/IPv6 sockets `cgroup/sock_create` let the agent create. Zero
    /// means the agent has no inet socket for the teardown to look for.
    SocketsCreated = 4,
}

/// Number of entries in [`map_names::COUNTERS`].
pub const COUNTER_SLOTS: u32 = 5;

/// Which hook refused an attempt ([`DenyEvent::hook`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `cgroup/connect4`.
    Connect4 = 1,
    /// `cgroup/connect6`.
    Connect6 = 2,
    /// `cgroup/sendmsg4`.
    Sendmsg4 = 3,
    /// `cgroup/sendmsg6`.
    Sendmsg6 = 4,
    /// `cgroup/sock_create`.
    SockCreate = 5,
    /// `cgroup_skb/egress`.
    Egress = 6,
    /// `lsm_cgroup/socket_create`.
    LsmSocketCreate = 7,
}

impl Hook {
    /// Decodes [`DenyEvent::hook`].
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Connect4,
            2 => Self::Connect6,
            3 => Self::Sendmsg4,
            4 => Self::Sendmsg6,
            5 => Self::SockCreate,
            6 => Self::Egress,
            7 => Self::LsmSocketCreate,
            _ => return None,
        })
    }

    /// The hook's name as used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect4 => "connect4",
            Self::Connect6 => "connect6",
            Self::Sendmsg4 => "sendmsg4",
            Self::Sendmsg6 => "sendmsg6",
            Self::SockCreate => "sock_create",
            Self::Egress => "egress",
            Self::LsmSocketCreate => "lsm_socket_create",
        }
    }
}

/// Why an attempt was refused ([`DenyEvent::reason`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// The destination matches no allowlist entry.
    NotAllowlisted = 1,
    /// The agent is quarantined: everything is denied.
    Quarantined = 2,
    /// The socket family, type or protocol is not permitted (netlink, vsock,
    /// packet, raw, SCTP, ICMP...).
    SocketType = 3,
    /// The packet or context could not be parsed; refused to stay closed.
    Unparsable = 4,
    /// Enforcement was still being configured.
    NotReady = 5,
    /// The destination was learned from a DNS answer whose lifetime (TTL +
    /// grace) has passed; new connections need a new resolution.
    Expired = 6,
    /// The destination port is one of the sidecar's private listeners
    /// (admin API, metrics), which the agent may never reach.
    PrivateListener = 7,
}

impl DenyReason {
    /// Decodes [`DenyEvent::reason`].
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::NotAllowlisted,
            2 => Self::Quarantined,
            3 => Self::SocketType,
            4 => Self::Unparsable,
            5 => Self::NotReady,
            6 => Self::Expired,
            7 => Self::PrivateListener,
            _ => return None,
        })
    }

    /// The reason as used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotAllowlisted => "not_allowlisted",
            Self::Quarantined => "quarantined",
            Self::SocketType => "socket_type",
            Self::Unparsable => "unparsable",
            Self::NotReady => "not_ready",
            Self::Expired => "expired",
            Self::PrivateListener => "private_listener",
        }
    }
}

/// One refused attempt, written to [`map_names::EVENTS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyEvent {
    /// `bpf_ktime_get_boot_ns()` at the refusal.
    pub boot_ns: u64,
    /// cgroup v2 id of the refused socket's cgroup.
    pub cgroup_id: u64,
    /// Thread-group id (process id) of the caller; 0 when not in process context.
    pub pid: u32,
    /// Real uid of the caller.
    pub uid: u32,
    /// Real gid of the caller.
    pub gid: u32,
    /// Destination port, host byte order (0 for `sock_create`).
    pub dst_port: u16,
    /// Address family (`AF_INET` = 2, `AF_INET6` = 10, `AF_PACKET` = 17...).
    pub family: u16,
    /// Destination address: IPv4 as `::ffff:a.b.c.d`, network byte order.
    pub dst_addr: [u8; 16],
    /// IANA protocol (or the socket protocol for `sock_create`).
    pub protocol: u16,
    /// Socket type for `sock_create` (`SOCK_RAW` = 3 ...), else 0.
    pub sock_type: u8,
    /// A [`Hook`].
    pub hook: u8,
    /// A [`DenyReason`].
    pub reason: u8,
    /// Always zero.
    pub pad: [u8; 3],
    /// Command name of the caller (`comm`), NUL padded.
    pub comm: [u8; 16],
}

/// Writes `addr` (network order) as the v4-mapped IPv6 address `::ffff:addr`.
pub const fn v4_mapped(addr_be: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, addr_be[0], addr_be[1], addr_be[2], addr_be[3],
    ]
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: every type is #[repr(C)], made only of integers and integer
    // arrays, with explicit padding fields, so every bit pattern is valid.
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for Allow4PortKey {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for Allow4AnyKey {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for Allow6PortKey {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for Allow6AnyKey {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for AllowValue {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for EndpointKey {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for Settings {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for ExactValue {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for RedirectKey {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for RedirectTarget {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for OrigDest {}
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for DenyEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<Allow4PortKey>(), 8);
        assert_eq!(size_of::<Allow4AnyKey>(), 8);
        assert_eq!(size_of::<Allow6PortKey>(), 20);
        assert_eq!(size_of::<Allow6AnyKey>(), 20);
        assert_eq!(size_of::<AllowValue>(), 8);
        assert_eq!(size_of::<EndpointKey>(), 20);
        assert_eq!(size_of::<Settings>(), 8);
        assert_eq!(size_of::<RedirectKey>(), 4);
        assert_eq!(size_of::<ExactValue>(), 24);
        assert_eq!(size_of::<RedirectTarget>(), 24);
        assert_eq!(size_of::<OrigDest>(), 20);
        // 8+8+4+4+4+2+2+16+2+1+1+1+3+16
        assert_eq!(size_of::<DenyEvent>(), 72);
    }

    #[test]
    fn codes_round_trip() {
        for h in [
            Hook::Connect4,
            Hook::Connect6,
            Hook::Sendmsg4,
            Hook::Sendmsg6,
            Hook::SockCreate,
            Hook::Egress,
            Hook::LsmSocketCreate,
        ] {
            assert_eq!(Hook::from_u8(h as u8), Some(h));
        }
        assert_eq!(Hook::from_u8(0), None);
        for r in [
            DenyReason::NotAllowlisted,
            DenyReason::Quarantined,
            DenyReason::SocketType,
            DenyReason::Unparsable,
            DenyReason::NotReady,
            DenyReason::Expired,
            DenyReason::PrivateListener,
        ] {
            assert_eq!(DenyReason::from_u8(r as u8), Some(r));
        }
        assert_eq!(v4_mapped([10, 0, 0, 1])[10..], [0xff, 0xff, 10, 0, 0, 1]);
    }
}
