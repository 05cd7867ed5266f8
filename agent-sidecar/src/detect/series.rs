//! Time slots and the per-slot history the surge detectors compare with.
//!
//! An hour belongs to one of 48 slots: its hour of day (local time) on a
//! weekday or on a weekend day. Each slot keeps the totals of its last
//! [`RING`] hours (a ring), so a slot's history covers about three weeks
//! of weekdays or eight weekends: old behaviour ages out, memory is fixed.
//! The robust threshold of a slot is `median + z * sigma`, with `sigma`
//! the scaled median absolute deviation (1.4826 MAD, the standard
//! deviation for normal data, unmoved by a few outliers) floored so that a
//! flat history does not make every small rise a surge.

use serde::{Deserialize, Serialize};

/// Hours kept per slot.
pub const RING: usize = 16;
/// Slots: 24 hours x (weekday, weekend).
pub(crate) const SLOTS: usize = 48;
/// Hours in a week, for the hour-of-week profile.
pub(crate) const WEEK_HOURS: usize = 168;

const HOUR_MS: i64 = 3_600_000;

/// Local hours since the epoch of `at_ms` (UTC ms) at `offset_min`.
pub(crate) fn local_hour(at_ms: u64, offset_min: i32) -> i64 {
    (at_ms as i64 + i64::from(offset_min) * 60_000).div_euclid(HOUR_MS)
}

/// Day of week of a local hour, 0 = Sunday (1970-01-01 was a Thursday).
pub(crate) fn weekday(hour: i64) -> usize {
    (hour.div_euclid(24) + 4).rem_euclid(7) as usize
}

/// The slot (hour of day, weekday or weekend) of a local hour.
pub(crate) fn slot(hour: i64) -> usize {
    let wd = weekday(hour);
    let weekend = usize::from(wd == 0 || wd == 6);
    weekend * 24 + hour.rem_euclid(24) as usize
}

/// The hour of the week (0 = Sunday 00:00) of a local hour.
pub(crate) fn week_hour(hour: i64) -> usize {
    weekday(hour) * 24 + hour.rem_euclid(24) as usize
}

/// The last [`RING`] values of one slot (in a baseline file: `vals`, and
/// `next`, where the next value goes once the ring is full).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    /// Oldest first once full.
    vals: Vec<f32>,
    next: u8,
}

impl Ring {
    /// Adds a value, dropping the oldest when full.
    pub(crate) fn push(&mut self, v: f64) {
        let v = v as f32;
        if self.vals.len() < RING {
            self.vals.push(v);
        } else {
            self.vals[self.next as usize % RING] = v;
            self.next = ((self.next as usize + 1) % RING) as u8;
        }
    }

    /// Values held (oldest first until full, then from `next` on).
    pub fn values(&self) -> &[f32] {
        &self.vals
    }

    /// `(median, 1.4826 * MAD)`, `None` when empty. At most [`RING`]
    /// values: sorting them is a bounded cost, paid once per hour.
    pub(crate) fn robust(&self) -> Option<(f64, f64)> {
        if self.vals.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.vals.iter().map(|&x| f64::from(x)).collect();
        let med = median(&mut v);
        for x in &mut v {
            *x = (*x - med).abs();
        }
        let mad = median(&mut v);
        Some((med, 1.4826 * mad))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// How a series floors its sigma.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Floor {
    /// Counts of clustered events (calls come in sessions): at least
    /// `sqrt(median)` (the Poisson deviation), half the median, and 2.
    Counts,
    /// Quantities: at least `share * median`, and `abs`.
    Relative {
        /// Share of the median.
        share: f64,
        /// Absolute least sigma.
        abs: f64,
    },
}

/// One figure per slot: [`SLOTS`] rings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SlotSeries {
    slots: Vec<Ring>,
}

impl Default for SlotSeries {
    fn default() -> Self {
        SlotSeries {
            slots: vec![Ring::default(); SLOTS],
        }
    }
}

impl SlotSeries {
    /// Adds the total of one hour of `slot`.
    pub(crate) fn push(&mut self, slot: usize, v: f64) {
        if let Some(r) = self.slots.get_mut(slot) {
            r.push(v);
        }
    }

    /// The ring of `slot`.
    pub(crate) fn ring(&self, slot: usize) -> Option<&Ring> {
        self.slots.get(slot)
    }

    /// Mixes `other`'s history in (pooling): per slot, the values of both
    /// alternately, newest kept.
    pub(crate) fn merge(&mut self, other: &SlotSeries) {
        for (a, b) in self.slots.iter_mut().zip(&other.slots) {
            *a = merge_rings(a, b);
        }
    }

    /// The slots (for files); repaired to [`SLOTS`] rings on load.
    pub(crate) fn rings(&self) -> &[Ring] {
        &self.slots
    }

    /// From stored rings; missing slots are empty, extra ones dropped.
    pub(crate) fn from_rings(mut slots: Vec<Ring>) -> Self {
        slots.resize(SLOTS, Ring::default());
        for r in &mut slots {
            r.vals.truncate(RING);
            r.next %= RING as u8;
        }
        SlotSeries { slots }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Ring>()
            + self
                .slots
                .iter()
                .map(|r| r.vals.capacity() * 4)
                .sum::<usize>()
    }
}

/// Both rings' values, alternately from the newest back, at most [`RING`].
pub(crate) fn merge_rings(a: &Ring, b: &Ring) -> Ring {
    let newest_first = |r: &Ring| -> Vec<f32> {
        let n = r.vals.len();
        let start = if n < RING { 0 } else { r.next as usize };
        (0..n).rev().map(|i| r.vals[(start + i) % n]).collect()
    };
    let (va, vb) = (newest_first(a), newest_first(b));
    let mut mixed = Vec::with_capacity(RING);
    for i in 0..va.len().max(vb.len()) {
        for v in [va.get(i), vb.get(i)].into_iter().flatten() {
            if mixed.len() < RING {
                mixed.push(*v);
            }
        }
    }
    mixed.reverse();
    Ring {
        vals: mixed,
        next: 0,
    }
}

/// The threshold of a ring: `median + z * max(sigma, floor)`; with no
/// history, `None` (nothing to compare with: the slot is new).
pub(crate) fn threshold(ring: &Ring, z: f64, floor: Floor) -> Option<(f64, f64)> {
    let (med, sigma) = ring.robust()?;
    let least = match floor {
        Floor::Counts => med.sqrt().max(0.5 * med).max(2.0),
        Floor::Relative { share, abs } => (share * med).max(abs),
    };
    Some((med, med + z * sigma.max(least)))
}
