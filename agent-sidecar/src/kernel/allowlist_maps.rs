//! Writes an [`Allowlist`] into the four LPM-trie maps.
//!
//! Updates are "add, then remove": every wanted entry is written before any
//! stale one is deleted, so a live agent never sees a window where a rule
//! present in both the old and new allowlist is missing.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
};

use agent_sidecar_common::{
    ALLOWLIST_CAPACITY, Allow4AnyKey, Allow4PortKey, Allow6AnyKey, Allow6PortKey, AllowValue,
    KEY_FIXED_PREFIX_BITS, map_names,
};
use aya::{
    Pod,
    maps::{
        Map, MapData,
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
            for &proto in rule.protocols.numbers() {
                let prefix = KEY_FIXED_PREFIX_BITS + u32::from(rule.target.net.prefix_len());
                match (rule.target.net, rule.target.port) {
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
        self.v4_port.len() + self.v4_any.len() + self.v6_port.len() + self.v6_any.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails closed, before touching the kernel, if any map would overflow.
    pub fn check_capacity(&self) -> Result<(), KernelError> {
        for (map, n) in [
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

/// Handles on the four allowlist maps.
pub struct AllowlistMaps {
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
        Ok(Self {
            v4_port: trie(map_names::ALLOW4_PORT, open(map_names::ALLOW4_PORT)?)?,
            v4_any: trie(map_names::ALLOW4_ANY, open(map_names::ALLOW4_ANY)?)?,
            v6_port: trie(map_names::ALLOW6_PORT, open(map_names::ALLOW6_PORT)?)?,
            v6_any: trie(map_names::ALLOW6_ANY, open(map_names::ALLOW6_ANY)?)?,
        })
    }

    /// Makes the maps hold exactly `entries` (add, then remove stale).
    pub fn apply(&mut self, entries: &Entries) -> Result<(), KernelError> {
        entries.check_capacity()?;
        sync(map_names::ALLOW4_PORT, &mut self.v4_port, &entries.v4_port)?;
        sync(map_names::ALLOW4_ANY, &mut self.v4_any, &entries.v4_any)?;
        sync(map_names::ALLOW6_PORT, &mut self.v6_port, &entries.v6_port)?;
        sync(map_names::ALLOW6_ANY, &mut self.v6_any, &entries.v6_any)?;
        Ok(())
    }
}

fn sync<K: Pod + Eq + Hash>(
    name: &'static str,
    map: &mut LpmTrie<MapData, K, AllowValue>,
    wanted: &HashMap<(u32, K), AllowValue>,
) -> Result<(), KernelError> {
    for (&(prefix, data), value) in wanted {
        map.insert(&Key::new(prefix, data), value, 0).map_err(|e| {
            if is_full(&e) {
                KernelError::MapFull {
                    map: name,
                    requested: wanted.len(),
                    capacity: ALLOWLIST_CAPACITY,
                }
            } else {
                KernelError::bpf(name, "writing map", &e)
            }
        })?;
    }
    let present: HashSet<(u32, K)> = map
        .keys()
        .filter_map(Result::ok)
        .map(|k| (k.prefix_len(), k.data()))
        .collect();
    for stale in present.into_iter().filter(|k| !wanted.contains_key(k)) {
        map.remove(&Key::new(stale.0, stale.1))
            .map_err(|e| KernelError::bpf(name, "removing a stale entry", &e))?;
    }
    Ok(())
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
    fn compiles_to_prefix_keys_per_protocol() {
        let e = Entries::compile(&list(&[
            ("10.0.0.5:443", Protocols::Tcp),
            ("10.0.0.0/8", Protocols::Any),
            ("[2001:db8::/32]:53", Protocols::Udp),
            ("::1", Protocols::Tcp),
        ]));
        let (&(prefix, k), v) = e.v4_port.iter().next().unwrap();
        assert_eq!(
            (
                prefix,
                k.proto,
                u16::from_be(k.port_be),
                k.addr_be,
                v.rule_id
            ),
            (64, 6, 443, [10, 0, 0, 5], 0)
        );
        assert_eq!(e.v4_any.len(), 2, "any = tcp + udp");
        assert!(
            e.v4_any
                .keys()
                .all(|(p, k)| *p == 40 && k.addr_be == [10, 0, 0, 0])
        );
        let (&(prefix, k), _) = e.v6_port.iter().next().unwrap();
        assert_eq!((prefix, k.proto), (64, 17));
        let (&(prefix, _), v) = e.v6_any.iter().next().unwrap();
        assert_eq!((prefix, v.rule_id), (160, 3));
        assert_eq!(e.len(), 5);
    }

    #[test]
    fn duplicates_keep_the_first_rule() {
        let e = Entries::compile(&list(&[
            ("10.0.0.5:443", Protocols::Tcp),
            ("10.0.0.5:443", Protocols::Any),
        ]));
        assert_eq!(e.v4_port.len(), 2);
        let tcp = e.v4_port.iter().find(|((_, k), _)| k.proto == 6).unwrap();
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
