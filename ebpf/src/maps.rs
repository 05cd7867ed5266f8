//! The maps shared with userspace. Layouts and capacities come from
//! `agent-sidecar-common`; every map is pinned by name so enforcement outlives
//! the sidecar process.

use agent_sidecar_common::{
    ALLOWLIST_CAPACITY, Allow4AnyKey, Allow4PortKey, Allow6AnyKey, Allow6PortKey, AllowValue,
    COUNTER_SLOTS, EVENT_RING_BYTES, EXACT_CAPACITY, EXEMPT_CAPACITY, EndpointKey, ExactValue,
    ORIG_DEST_CAPACITY, OrigDest, PRIVATE_PORT_WORDS, REDIRECT_CAPACITY, RedirectKey,
    RedirectTarget, Settings, TRIE_CACHE_CAPACITY,
};
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};

/// IPv4 `CIDR:PORT` rules (a single address goes to [`EXACT`]).
#[map]
pub static ALLOW4_PORT: LpmTrie<Allow4PortKey, AllowValue> = LpmTrie::pinned(ALLOWLIST_CAPACITY, 0);

/// IPv4 `CIDR` rules (every port).
#[map]
pub static ALLOW4_ANY: LpmTrie<Allow4AnyKey, AllowValue> = LpmTrie::pinned(ALLOWLIST_CAPACITY, 0);

/// IPv6 `CIDR:PORT` rules (a single address goes to [`EXACT`]).
#[map]
pub static ALLOW6_PORT: LpmTrie<Allow6PortKey, AllowValue> = LpmTrie::pinned(ALLOWLIST_CAPACITY, 0);

/// IPv6 `CIDR` rules (every port).
#[map]
pub static ALLOW6_ANY: LpmTrie<Allow6AnyKey, AllowValue> = LpmTrie::pinned(ALLOWLIST_CAPACITY, 0);

/// Single-address rules (port 0: every port) and the sidecar's own
/// listeners: one hash lookup decides most destinations, whatever the size
/// of the allowlist. Memory is allocated per entry, not up front.
#[map]
pub static EXACT: HashMap<EndpointKey, ExactValue> =
    HashMap::pinned(EXACT_CAPACITY, BPF_F_NO_PREALLOC);

/// Destinations the tries allowed, with the trie epoch they were allowed
/// in: a repeated destination costs one hash lookup, not a trie walk whose
/// depth grows with the allowlist.
#[map]
pub static TRIE_CACHE: LruHashMap<EndpointKey, u32> = LruHashMap::pinned(TRIE_CACHE_CAPACITY, 0);

/// Index 0: enforcement [`Settings`].
#[map]
pub static SETTINGS: Array<Settings> = Array::pinned(1, 0);

/// Per-CPU counters, indexed by `agent_sidecar_common::Counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(COUNTER_SLOTS, 0);

/// Deny events for userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::pinned(EVENT_RING_BYTES, 0);

/// Intercepted (protocol, port) pairs -> the sidecar listener that gets them
/// (DNS on port 53, HTTP(S) on 80/443).
#[map]
pub static REDIRECT: HashMap<RedirectKey, RedirectTarget> = HashMap::pinned(REDIRECT_CAPACITY, 0);

/// Socket cookie -> original destination of a redirected UDP socket.
#[map]
pub static ORIG_DEST: LruHashMap<u64, OrigDest> = LruHashMap::pinned(ORIG_DEST_CAPACITY, 0);

/// The sidecar's private listener ports (admin API, metrics): refused to
/// the agent before any allowlist map is consulted.
#[map]
pub static PRIVATE_PORT_BITS: Array<u64> = Array::pinned(PRIVATE_PORT_WORDS, 0);

/// cgroup ids the programs leave alone (the sidecar's own container when
/// attached at a pod's cgroup): an exact match, never a subtree.
#[map]
pub static EXEMPT: HashMap<u64, u8> = HashMap::pinned(EXEMPT_CAPACITY, 0);
