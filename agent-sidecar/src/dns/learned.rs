//! Learned addresses: what an allowlisted non-HTTP name resolved to, so the
//! kernel lets the agent connect to it (promise 2(c)) until the answer's TTL
//! plus a grace period runs out.
//!
//! The resolver calls a [`LearnedSink`] for every address of an allowed
//! answer whose rule has `learn` set. [`Learned`] is the bookkeeping the
//! kernel side needs: the latest expiry per (address, port, protocol),
//! refreshed by every re-resolution, and the list of entries to remove
//! once expired. It takes the time as an argument, so it is tested with a
//! fake clock.

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Instant};

use crate::egress::{Endpoint, NameRule};

/// Receives learned addresses. Called on the resolver's tasks before the
/// answer is sent to the agent, so the kernel allows the address by the time
/// the agent connects: keep it quick.
pub trait LearnedSink: Send + Sync {
    /// `addr` may be reached on `endpoints` (the rule's ports and
    /// protocols) until `expires`.
    fn learned(&self, rule: &NameRule, addr: IpAddr, endpoints: &[Endpoint], expires: Instant);
}

/// One learned (address, port, protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnedKey {
    /// Destination address.
    pub addr: IpAddr,
    /// Port and protocol ([`Endpoint::port`] `None`: every port but 853).
    pub endpoint: Endpoint,
}

/// Learned entries and their expiry.
#[derive(Clone, Debug, Default)]
pub struct Learned {
    entries: HashMap<LearnedKey, Instant>,
}

impl Learned {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `addr` on `endpoints` until `expires` (keeping a later expiry
    /// already recorded). Returns the keys that were not present, which the
    /// kernel side has to insert.
    pub fn record(
        &mut self,
        addr: IpAddr,
        endpoints: &[Endpoint],
        expires: Instant,
    ) -> Vec<LearnedKey> {
        let mut added = Vec::new();
        for &endpoint in endpoints {
            let key = LearnedKey { addr, endpoint };
            match self.entries.get_mut(&key) {
                Some(current) => *current = (*current).max(expires),
                None => {
                    self.entries.insert(key, expires);
                    added.push(key);
                }
            }
        }
        added
    }

    /// Removes and returns every entry whose expiry is at or before `now`,
    /// sorted.
    pub fn expired(&mut self, now: Instant) -> Vec<LearnedKey> {
        let mut gone: Vec<LearnedKey> = self
            .entries
            .iter()
            .filter(|(_, expires)| **expires <= now)
            .map(|(&key, _)| key)
            .collect();
        for key in &gone {
            self.entries.remove(key);
        }
        gone.sort_unstable();
        gone
    }

    /// The expiry of one entry.
    pub fn expiry(&self, key: &LearnedKey) -> Option<Instant> {
        self.entries.get(key).copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A shared table is a sink: it records what the resolver learns.
impl LearnedSink for Mutex<Learned> {
    fn learned(&self, _rule: &NameRule, addr: IpAddr, endpoints: &[Endpoint], expires: Instant) {
        let mut table = self.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        table.record(addr, endpoints, expires);
    }
}

#[cfg(test)]
mod tests;
