//! Cache of filtered upstream answers for allowlisted names.
//!
//! Keyed by (canonical name, type, class); an entry lives for the answer's
//! TTL (already capped at `max_ttl` by the filter) and is served with its
//! TTLs lowered by its age. At capacity, expired entries go first, then the
//! oldest insertions. Answers without a TTL (no records, no SOA) and TTL 0
//! answers are not cached. The resolver clears the cache whenever the
//! allowlist changes, so a cached answer never outlives its rule.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use super::filter::Filtered;

/// Cache key: canonical name, record type, class.
pub type CacheKey = (String, u16, u16);

#[derive(Debug)]
struct Entry {
    filtered: Arc<Filtered>,
    stored: Instant,
    ttl: Duration,
    generation: u64,
}

/// A bounded TTL cache of filtered answers.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<CacheKey, Entry>,
    order: VecDeque<(CacheKey, u64)>,
    capacity: usize,
    generation: u64,
}

impl Cache {
    /// An empty cache of at most `capacity` entries (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            generation: 0,
        }
    }

    /// The live entry for `key` and its age in whole seconds.
    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<(Arc<Filtered>, u32)> {
        let entry = self.entries.get(key)?;
        let age = now.saturating_duration_since(entry.stored);
        if age >= entry.ttl {
            return None;
        }
        let secs = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        Some((Arc::clone(&entry.filtered), secs))
    }

    /// Stores `filtered` under `key` if it has a non-zero TTL.
    pub fn insert(&mut self, key: CacheKey, filtered: Arc<Filtered>, now: Instant) {
        let Some(ttl) = filtered.cache_ttl().filter(|&t| t > 0) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        self.generation += 1;
        self.order.push_back((key.clone(), self.generation));
        self.entries.insert(
            key,
            Entry {
                filtered,
                stored: now,
                ttl: Duration::from_secs(u64::from(ttl)),
                generation: self.generation,
            },
        );
        // Superseded order slots pile up when the same key is refreshed:
        // compact when they outnumber the entries.
        if self.order.len() > 2 * self.capacity.max(self.entries.len()) {
            let entries = &self.entries;
            self.order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Number of entries (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.stored) < e.ttl);
        while self.entries.len() >= self.capacity {
            let Some((key, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
