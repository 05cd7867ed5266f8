//! Writes an [`Allowlist`] into the kernel maps: single-address rules into
//! the exact-endpoint hash map (one lookup, whatever the allowlist size), CIDR
//! rules into the four LPM tries.
//!
//! Updates are "add, then remove": every wanted entry is written before any
//! stale one is deleted, so a live agent never sees a window where a rule
//! present in both the old and new allowlist is missing.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
};

use agent_sidecar_common::{
    ALLOW_FLAG_LEARNED, ALLOW_FLAG_SIDECAR, ALLOWLIST_CAPACITY, Allow4AnyKey, Allow4PortKey,
    Allow6AnyKey, Allow6PortKey, AllowValue, EXACT_CAPACITY, EndpointKey, ExactValue,
    KEY_FIXED_PREFIX_BITS, map_names, v4_mapped,
};
use aya::{
    Pod,
    maps::{
        HashMap as BpfHashMap, Map, MapData,
        lpm_trie::{Key, LpmTrie},
    },
};
use ipnet::IpNet;

use super::KernelError;
use crate::egress::Allowlist;

/// The kernel entries an allowlist becomes: `(prefix length, key data) ->
/// value`, per map.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entries {
    /// Entries of `EXACT`: single addresses, port 0 meaning every port.
    pub exact: HashMap<EndpointKey, ExactValue>,
    /// Entries of `ALLOW4_PORT`.
    pub v4_port: HashMap<(u32, Allow4PortKey), AllowValue>,
    /// Entries of `ALLOW4_ANY`.
    pub v4_any: HashMap<(u32, Allow4AnyKey), AllowValue>,
    /// Entries of `ALLOW6_PORT`.
    pub v6_port: HashMap<(u32, Allow6PortKey), AllowValue>,
    /// Entries of `ALLOW6_ANY`.
    pub v6_any: HashMap<(u32, Allow6AnyKey), AllowValue>,
}

impl Entries {
    /// Compiles an allowlist; when two rules produce the same key the first
    /// one's id is kept.
    pub fn compile(list: &Allowlist) -> Self {
        let mut e = Entries::default();
        for (id, rule) in list.rules().iter().enumerate() {
            let value = AllowValue {
                rule_id: id as u32,
                flags: 0,
            };
            let net = rule.target.net;
            let single = net.prefix_len() == net.max_prefix_len();
            for &proto in rule.protocols.numbers() {
                if single {
                    let addr_be = match net {
                        IpNet::V4(n) => v4_mapped(n.addr().octets()),
                        IpNet::V6(n) => n.addr().octets(),
                    };
                    let key = EndpointKey {
                        addr_be,
                        port_be: rule.target.port.unwrap_or(0).to_be(),
                        proto,
                        pad: 0,
                    };
                    e.exact.entry(key).or_insert(ExactValue {
                        rule_id: value.rule_id,
                        flags: 0,
                        expires_ns: u64::MAX,
                        last_seen_ns: 0,
                    });
                    continue;
                }
                let prefix = KEY_FIXED_PREFIX_BITS + u32::from(net.prefix_len());
                match (net, rule.target.port) {
                    (IpNet::V4(n), Some(port)) => {
                        let k = Allow4PortKey {
                            proto,
                            pad: 0,
                            port_be: port.to_be(),
                            addr_be: n.network().octets(),
                        };
                        e.v4_port.entry((prefix, k)).or_insert(value);
                    }
                    (IpNet::V4(n), None) => {
                        let k = Allow4AnyKey {
                            proto,
                            pad: [0; 3],
                            addr_be: n.network().octets(),
                        };
                        e.v4_any.entry((prefix, k)).or_insert(value);
                    }
                    (IpNet::V6(n), Some(port)) => {
                        let k = Allow6PortKey {
                            proto,
                            pad: 0,
                            port_be: port.to_be(),
                            addr_be: n.network().octets(),
                        };
                        e.v6_port.entry((prefix, k)).or_insert(value);
                    }
                    (IpNet::V6(n), None) => {
                        let k = Allow6AnyKey {
                            proto,
                            pad: [0; 3],
                            addr_be: n.network().octets(),
                        };
                        e.v6_any.entry((prefix, k)).or_insert(value);
                    }
                }
            }
        }
        e
    }

    /// Total number of kernel entries.
    pub fn len(&self) -> usize {
        self.exact.len()
            + self.v4_port.len()
            + self.v4_any.len()
            + self.v6_port.len()
            + self.v6_any.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails closed, before touching the kernel, if any map would overflow.
    pub fn check_capacity(&self) -> Result<(), KernelError> {
        for (map, n) in [
            (map_names::EXACT, self.exact.len()),
            (map_names::ALLOW4_PORT, self.v4_port.len()),
            (map_names::ALLOW4_ANY, self.v4_any.len()),
            (map_names::ALLOW6_PORT, self.v6_port.len()),
            (map_names::ALLOW6_ANY, self.v6_any.len()),
        ] {
            if n > ALLOWLIST_CAPACITY as usize {
                return Err(KernelError::MapFull {
                    map,
                    requested: n,
                    capacity: ALLOWLIST_CAPACITY,
                });
            }
        }
        Ok(())
    }
}

/// Handles on the allowlist maps.
pub struct AllowlistMaps {
    exact: BpfHashMap<MapData, EndpointKey, ExactValue>,
    v4_port: LpmTrie<MapData, Allow4PortKey, AllowValue>,
    v4_any: LpmTrie<MapData, Allow4AnyKey, AllowValue>,
    v6_port: LpmTrie<MapData, Allow6PortKey, AllowValue>,
    v6_any: LpmTrie<MapData, Allow6AnyKey, AllowValue>,
}

impl AllowlistMaps {
    /// Wraps the maps; `open` yields a map by name.
    pub fn new(
        mut open: impl FnMut(&'static str) -> Result<Map, KernelError>,
    ) -> Result<Self, KernelError> {
        fn trie<K: Pod>(
            name: &'static str,
            map: Map,
        ) -> Result<LpmTrie<MapData, K, AllowValue>, KernelError> {
            LpmTrie::try_from(map).map_err(|e| KernelError::bpf(name, "opening map", &e))
        }
        let exact = BpfHashMap::try_from(open(map_names::EXACT)?)
            .map_err(|e| KernelError::bpf(map_names::EXACT, "opening map", &e))?;
        Ok(Self {
            exact,
            v4_port: trie(map_names::ALLOW4_PORT, open(map_names::ALLOW4_PORT)?)?,
            v4_any: trie(map_names::ALLOW4_ANY, open(map_names::ALLOW4_ANY)?)?,
            v6_port: trie(map_names::ALLOW6_PORT, open(map_names::ALLOW6_PORT)?)?,
            v6_any: trie(map_names::ALLOW6_ANY, open(map_names::ALLOW6_ANY)?)?,
        })
    }

    /// Makes the maps hold exactly `entries` (add, then remove stale).
    /// Returns whether a trie entry was removed: the caller must then bump
    /// the trie epoch, which invalidates the kernel's trie cache.
    pub fn apply(&mut self, entries: &Entries) -> Result<bool, KernelError> {
        entries.check_capacity()?;
        sync_exact(&mut self.exact, &entries.exact)?;
        let mut removed = 0;
        removed += sync(map_names::ALLOW4_PORT, &mut self.v4_port, &entries.v4_port)?;
        removed += sync(map_names::ALLOW4_ANY, &mut self.v4_any, &entries.v4_any)?;
        removed += sync(map_names::ALLOW6_PORT, &mut self.v6_port, &entries.v6_port)?;
        removed += sync(map_names::ALLOW6_ANY, &mut self.v6_any, &entries.v6_any)?;
        Ok(removed > 0)
    }

    /// Entries in each allowlist map now (allowlist rules, learned
    /// destinations and the sidecar's own endpoints), read from the kernel
    /// by walking the keys, with each map's capacity.
    pub fn occupancy(&self) -> [(&'static str, usize, u32); 5] {
        [
            (map_names::EXACT, self.exact.keys().count(), EXACT_CAPACITY),
            (
                map_names::ALLOW4_PORT,
                self.v4_port.keys().count(),
                ALLOWLIST_CAPACITY,
            ),
            (
                map_names::ALLOW4_ANY,
                self.v4_any.keys().count(),
                ALLOWLIST_CAPACITY,
            ),
            (
                map_names::ALLOW6_PORT,
                self.v6_port.keys().count(),
                ALLOWLIST_CAPACITY,
            ),
            (
                map_names::ALLOW6_ANY,
                self.v6_any.keys().count(),
                ALLOWLIST_CAPACITY,
            ),
        ]
    }

    /// Lets the agent always reach `endpoint`, one of the sidecar's own
    /// listeners (allowlist updates never remove it).
    pub fn add_sidecar_endpoint(&mut self, endpoint: EndpointKey) -> Result<(), KernelError> {
        let value = ExactValue {
            rule_id: u32::MAX,
            flags: ALLOW_FLAG_SIDECAR,
            expires_ns: u64::MAX,
            last_seen_ns: 0,
        };
        self.exact
            .insert(endpoint, value, 0)
            .map_err(|e| KernelError::bpf(map_names::EXACT, "writing map", &e))
    }

    /// Allows new connections to `endpoint` until `expires_ns`
    /// (`CLOCK_BOOTTIME`), on behalf of rule `rule_id`: a destination learned
    /// from an allowed DNS answer. Refreshes an existing learned entry (its
    /// expiry only moves forward); leaves allowlist rules and sidecar
    /// endpoints alone. Returns whether the entry is (now) a learned one.
    pub fn learn(
        &mut self,
        endpoint: EndpointKey,
        rule_id: u32,
        expires_ns: u64,
    ) -> Result<bool, KernelError> {
        let value = match self.exact.get(&endpoint, 0) {
            Ok(v) if v.flags & ALLOW_FLAG_LEARNED == 0 => return Ok(false),
            Ok(v) => ExactValue {
                rule_id,
                expires_ns: v.expires_ns.max(expires_ns),
                ..v
            },
            Err(_) => ExactValue {
                rule_id,
                flags: ALLOW_FLAG_LEARNED,
                expires_ns,
                last_seen_ns: 0,
            },
        };
        self.exact
            .insert(endpoint, value, 0)
            .map_err(|e| write_error(map_names::EXACT, 1, &e))?;
        Ok(true)
    }

    /// Removes learned entries that expired before `now_ns` and saw no packet
    /// during the last `idle_ns` (established flows keep theirs); returns how
    /// many went.
    pub fn forget_expired(&mut self, now_ns: u64, idle_ns: u64) -> Result<usize, KernelError> {
        let stale: Vec<EndpointKey> = self
            .exact
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| {
                v.flags & ALLOW_FLAG_LEARNED != 0
                    && v.expires_ns <= now_ns
                    && now_ns.saturating_sub(v.last_seen_ns.max(v.expires_ns)) >= idle_ns
            })
            .map(|(k, _)| k)
            .collect();
        for key in &stale {
            self.exact
                .remove(key)
                .map_err(|e| KernelError::bpf(map_names::EXACT, "removing a stale entry", &e))?;
        }
        Ok(stale.len())
    }
}

/// `sync` for the exact-endpoint map, which the allowlist shares with the
/// sidecar's endpoints and learned destinations: sidecar endpoints are never
/// overwritten or removed here, learned ones are never removed (a rule for
/// the same endpoint replaces a learned entry).
fn sync_exact(
    map: &mut BpfHashMap<MapData, EndpointKey, ExactValue>,
    wanted: &HashMap<EndpointKey, ExactValue>,
) -> Result<(), KernelError> {
    let name = map_names::EXACT;
    let present: HashMap<EndpointKey, ExactValue> = map.iter().filter_map(Result::ok).collect();
    for (key, value) in wanted {
        if present
            .get(key)
            .is_some_and(|v| v.flags & ALLOW_FLAG_SIDECAR != 0 || v == value)
        {
            continue;
        }
        map.insert(key, value, 0)
            .map_err(|e| write_error(name, wanted.len(), &e))?;
    }
    for (key, value) in present {
        if value.flags == 0 && !wanted.contains_key(&key) {
            map.remove(&key)
                .map_err(|e| KernelError::bpf(name, "removing a stale entry", &e))?;
        }
    }
    Ok(())
}

fn sync<K: Pod + Eq + Hash>(
    name: &'static str,
    map: &mut LpmTrie<MapData, K, AllowValue>,
    wanted: &HashMap<(u32, K), AllowValue>,
) -> Result<usize, KernelError> {
    for (&(prefix, data), value) in wanted {
        map.insert(&Key::new(prefix, data), value, 0)
            .map_err(|e| write_error(name, wanted.len(), &e))?;
    }
    let present: HashSet<(u32, K)> = map
        .keys()
        .filter_map(Result::ok)
        .map(|k| (k.prefix_len(), k.data()))
        .collect();
    let mut removed = 0;
    for stale in present.into_iter().filter(|k| !wanted.contains_key(k)) {
        map.remove(&Key::new(stale.0, stale.1))
            .map_err(|e| KernelError::bpf(name, "removing a stale entry", &e))?;
        removed += 1;
    }
    Ok(removed)
}

/// A failed insert of one of `requested` entries: a full map is
/// [`KernelError::MapFull`] (fail closed, naming the capacity).
fn write_error(name: &'static str, requested: usize, e: &aya::maps::MapError) -> KernelError {
    if is_full(e) {
        KernelError::MapFull {
            map: name,
            requested,
            capacity: ALLOWLIST_CAPACITY,
        }
    } else {
        KernelError::bpf(name, "writing map", e)
    }
}

fn is_full(e: &aya::maps::MapError) -> bool {
    matches!(e, aya::maps::MapError::SyscallError(s)
        if matches!(s.io_error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::E2BIG)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::{EgressRule, Protocols, RuleSource};

    fn list(rules: &[(&str, Protocols)]) -> Allowlist {
        let mut l = Allowlist::new();
        for (i, (t, p)) in rules.iter().enumerate() {
            l.push(EgressRule {
                target: t.parse().unwrap(),
                protocols: *p,
                source: RuleSource::Flag(i + 1),
            });
        }
        l
    }

    #[test]
    fn single_addresses_go_to_the_exact_map_and_networks_to_the_tries() {
        let e = Entries::compile(&list(&[
            ("10.0.0.5:443", Protocols::Tcp),
            ("10.0.0.0/8", Protocols::Any),
            ("[2001:db8::/32]:53", Protocols::Udp),
            ("::1", Protocols::Tcp),
            ("10.0.0.6", Protocols::Udp),
            ("[2001:db8::7]:443", Protocols::Tcp),
        ]));
        let exact = |addr: &str, port: u16, proto: u8| {
            let ip: std::net::IpAddr = addr.parse().unwrap();
            let addr_be = match ip {
                std::net::IpAddr::V4(v4) => v4_mapped(v4.octets()),
                std::net::IpAddr::V6(v6) => v6.octets(),
            };
            e.exact
                .get(&EndpointKey {
                    addr_be,
                    port_be: port.to_be(),
                    proto,
                    pad: 0,
                })
                .map(|v| v.rule_id)
        };
        assert_eq!(exact("10.0.0.5", 443, 6), Some(0));
        assert_eq!(exact("::1", 0, 6), Some(3), "port 0: every port");
        assert_eq!(exact("10.0.0.6", 0, 17), Some(4));
        assert_eq!(exact("2001:db8::7", 443, 6), Some(5));
        assert_eq!(e.exact.len(), 4);

        assert!(e.v4_port.is_empty());
        assert_eq!(e.v4_any.len(), 2, "any = tcp + udp");
        assert!(
            e.v4_any
                .keys()
                .all(|(p, k)| *p == 40 && k.addr_be == [10, 0, 0, 0])
        );
        let (&(prefix, k), v) = e.v6_port.iter().next().unwrap();
        assert_eq!(
            (prefix, k.proto, u16::from_be(k.port_be), v.rule_id),
            (64, 17, 53, 2)
        );
        assert!(e.v6_any.is_empty());
        assert_eq!(e.len(), 7);
    }

    #[test]
    fn duplicates_keep_the_first_rule() {
        let e = Entries::compile(&list(&[
            ("10.0.0.5:443", Protocols::Tcp),
            ("10.0.0.5:443", Protocols::Any),
        ]));
        assert_eq!(e.exact.len(), 2);
        let tcp = e.exact.iter().find(|(k, _)| k.proto == 6).unwrap();
        assert_eq!(tcp.1.rule_id, 0);
    }

    #[test]
    fn capacity_is_checked_before_the_kernel_is_touched() {
        let mut e = Entries::default();
        for i in 0..=ALLOWLIST_CAPACITY {
            let k = Allow4AnyKey {
                proto: 6,
                pad: [0; 3],
                addr_be: i.to_be_bytes(),
            };
            e.v4_any.insert(
                (64, k),
                AllowValue {
                    rule_id: 0,
                    flags: 0,
                },
            );
        }
        let msg = e.check_capacity().unwrap_err().to_string();
        assert!(
            msg.contains("ALLOW4_ANY") && msg.contains("131072") && msg.contains("fail closed"),
            "{msg}"
        );
    }
}
