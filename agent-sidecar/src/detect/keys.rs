//! Bounded tables of what an agent used: the distinct keys (tools,
//! actions, destinations) with their counts, and the action-to-action
//! transitions. Each table has a cap; past it, new keys are not learned
//! (they are counted as overflow), so a baseline's memory never grows
//! without bound whatever the agent does.

use std::collections::HashMap;

use indexmap::IndexMap;

/// Longest key kept, in bytes: longer keys are cut at a character boundary
/// (a DNS name is at most 253 bytes; tool and action names are short).
pub(crate) const MAX_KEY_BYTES: usize = 128;

/// `key` as a table holds it: cut to [`MAX_KEY_BYTES`] at a character
/// boundary. Never allocates.
pub(crate) fn bounded(key: &str) -> &str {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let mut end = MAX_KEY_BYTES;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

/// Distinct keys with counts, at most `cap` of them, in first-seen order
/// (the index of a key never changes).
#[derive(Clone, Debug)]
pub(crate) struct KeyTable {
    map: IndexMap<Box<str>, u64>,
    cap: usize,
    /// Observations of keys that found the table full.
    pub(crate) overflow: u64,
}

impl KeyTable {
    /// An empty table of at most `cap` keys.
    pub(crate) fn new(cap: usize) -> Self {
        KeyTable {
            map: IndexMap::new(),
            cap,
            overflow: 0,
        }
    }

    /// The index of `key`, if learned.
    pub(crate) fn index(&self, key: &str) -> Option<usize> {
        self.map.get_index_of(bounded(key))
    }

    /// Counts one more use of the learned key at `index`.
    pub(crate) fn bump(&mut self, index: usize) {
        if let Some((_, n)) = self.map.get_index_mut(index) {
            *n = n.saturating_add(1);
        }
    }

    /// Learns `key` with `n` uses (adding to a learned key's count); `None`
    /// when the table is full.
    pub(crate) fn add(&mut self, key: &str, n: u64) -> Option<usize> {
        let key = bounded(key);
        if let Some(i) = self.map.get_index_of(key) {
            self.map[i] = self.map[i].saturating_add(n);
            return Some(i);
        }
        if self.map.len() >= self.cap {
            self.overflow = self.overflow.saturating_add(n);
            return None;
        }
        let (i, _) = self.map.insert_full(key.into(), n);
        Some(i)
    }

    /// The key at `index`.
    pub(crate) fn key(&self, index: usize) -> Option<&str> {
        self.map.get_index(index).map(|(k, _)| &**k)
    }

    /// Keys and counts, in first-seen order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.map.iter().map(|(k, n)| (&**k, *n))
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Heap bytes held (keys, entries and the index), an upper estimate.
    pub(crate) fn heap_bytes(&self) -> usize {
        let keys: usize = self.map.keys().map(|k| k.len()).sum();
        // IndexMap: a Vec of (hash, key, value) entries and a table of
        // indices (8 bytes plus a control byte per bucket).
        let entries = self.map.capacity() * (8 + 16 + 8);
        let buckets = (self.map.capacity() * 8 / 7).next_power_of_two() * 9;
        keys + entries + buckets
    }
}

/// Action-to-action transitions: (from, to) action indices with counts, at
/// most `cap` pairs.
#[derive(Clone, Debug)]
pub(crate) struct Transitions {
    map: HashMap<u32, u64>,
    cap: usize,
    /// Observations of pairs that found the table full.
    pub(crate) overflow: u64,
}

fn pair(from: usize, to: usize) -> u32 {
    ((from as u32) << 16) | (to as u32 & 0xffff)
}

impl Transitions {
    /// An empty table of at most `cap` pairs.
    pub(crate) fn new(cap: usize) -> Self {
        Transitions {
            map: HashMap::new(),
            cap,
            overflow: 0,
        }
    }

    /// Whether `from -> to` was learned.
    pub(crate) fn contains(&self, from: usize, to: usize) -> bool {
        self.map.contains_key(&pair(from, to))
    }

    /// Counts `n` uses of `from -> to`; `false` when the table is full.
    pub(crate) fn add(&mut self, from: usize, to: usize, n: u64) -> bool {
        let len = self.map.len();
        match self.map.get_mut(&pair(from, to)) {
            Some(c) => {
                *c = c.saturating_add(n);
                true
            }
            None if len >= self.cap => {
                self.overflow = self.overflow.saturating_add(n);
                false
            }
            None => {
                self.map.insert(pair(from, to), n);
                true
            }
        }
    }

    /// `(from, to, count)`, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, usize, u64)> + '_ {
        self.map
            .iter()
            .map(|(k, n)| ((k >> 16) as usize, (k & 0xffff) as usize, *n))
    }

    /// Number of pairs.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Heap bytes held, an upper estimate.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.map.capacity() * 8 / 7 + 1).next_power_of_two() * (4 + 8 + 1)
    }
}
