//! [`Baseline`]: what one agent (or a pool of agents of one role) normally
//! does, learned online from its action events, with fixed caps so that
//! its memory is bounded (see [`MEMORY_BOUND_BYTES`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    alert::Fold,
    keys::{KeyTable, Transitions},
    series::{Ring, SlotSeries, WEEK_HOURS, merge_rings},
};

/// Most distinct tools a baseline learns.
pub const MAX_TOOLS: usize = 64;
/// Most distinct actions (`tool.action`) a baseline learns.
pub const MAX_ACTIONS: usize = 256;
/// Most distinct destinations (host names, MCP servers) a baseline learns.
pub const MAX_DESTINATIONS: usize = 256;
/// Most distinct action-to-action transitions a baseline learns.
pub const MAX_TRANSITIONS: usize = 2048;
/// The most heap one agent's baseline and detector state can hold with
/// every table full and every key at its longest (see `docs/alerts.md`
/// for the sum).
pub const MEMORY_BOUND_BYTES: usize = 256 * 1024;

/// The version of the baseline file format.
pub const FORMAT: u32 = 1;

/// One agent's (or pool's) learned behaviour.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub(crate) agent_id: String,
    pub(crate) pool: Option<String>,
    pub(crate) first_ms: u64,
    pub(crate) last_ms: u64,
    pub(crate) events: u64,
    pub(crate) learned: bool,
    pub(crate) tools: KeyTable,
    pub(crate) actions: KeyTable,
    pub(crate) destinations: KeyTable,
    pub(crate) transitions: Transitions,
    /// Activity per hour of the week (0 = Sunday 00:00, local time).
    pub(crate) week: Vec<u64>,
    /// Tool calls per hour, per slot.
    pub(crate) calls: SlotSeries,
    /// Bytes per hour, per slot.
    pub(crate) volume: SlotSeries,
    /// Declared amounts per hour, per slot.
    pub(crate) amount: SlotSeries,
    /// Declared amounts per day: weekdays, weekend days.
    pub(crate) amount_days: [Ring; 2],
    /// Tool calls per decided tier (1-4, deny).
    pub(crate) tiers: [u64; 5],
    /// Refused egress attempts.
    pub(crate) denied: u64,
    /// Most refused egress attempts in one minute while learning.
    pub(crate) denied_max_minute: u64,
    /// Alerts marked benign and folded in.
    pub(crate) benign: u64,
}

impl Baseline {
    /// An empty baseline of `agent_id`.
    pub fn new(agent_id: &str, pool: Option<String>) -> Self {
        Baseline {
            agent_id: agent_id.to_string(),
            pool,
            first_ms: 0,
            last_ms: 0,
            events: 0,
            learned: false,
            tools: KeyTable::new(MAX_TOOLS),
            actions: KeyTable::new(MAX_ACTIONS),
            destinations: KeyTable::new(MAX_DESTINATIONS),
            transitions: Transitions::new(MAX_TRANSITIONS),
            week: vec![0; WEEK_HOURS],
            calls: SlotSeries::default(),
            volume: SlotSeries::default(),
            amount: SlotSeries::default(),
            amount_days: [Ring::default(), Ring::default()],
            tiers: [0; 5],
            denied: 0,
            denied_max_minute: 0,
            benign: 0,
        }
    }

    /// The agent (or pool) it belongs to.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Whether its learning period is over (detectors may fire).
    pub fn learned(&self) -> bool {
        self.learned
    }

    /// Events folded in.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Distinct (tools, actions, destinations, transitions) learned.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.tools.len(),
            self.actions.len(),
            self.destinations.len(),
            self.transitions.len(),
        )
    }

    /// Heap bytes the baseline holds now (an upper estimate).
    pub fn heap_bytes(&self) -> usize {
        self.agent_id.capacity()
            + self.pool.as_ref().map_or(0, String::capacity)
            + self.tools.heap_bytes()
            + self.actions.heap_bytes()
            + self.destinations.heap_bytes()
            + self.transitions.heap_bytes()
            + self.week.capacity() * 8
            + self.calls.heap_bytes()
            + self.volume.heap_bytes()
            + self.amount.heap_bytes()
            + 2 * 16 * 4
    }

    /// Share of the learned activity in `slot` (0..48) and the hours on
    /// either side of it (on the same kind of day): an agent whose work
    /// spills past its last usual hour is not off-hours, one at 03:00 is.
    /// 0 when nothing was learned.
    pub(crate) fn slot_share(&self, slot: usize) -> f64 {
        let total: u64 = self.week.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let (weekend, hour) = (slot / 24 == 1, slot % 24);
        let days: &[usize] = if weekend { &[0, 6] } else { &[1, 2, 3, 4, 5] };
        let n: u64 = days
            .iter()
            .flat_map(|d| [23, 0, 1].map(|k| d * 24 + (hour + k) % 24))
            .map(|i| self.week[i])
            .sum();
        n as f64 / total as f64
    }

    /// The share of tier 3, 4 and deny among learned tool calls, smoothed
    /// (Laplace) so that an agent that never needed approval is not at 0.
    pub(crate) fn high_tier_share(&self) -> f64 {
        let high: u64 = self.tiers[2..].iter().sum();
        let total: u64 = self.tiers.iter().sum();
        (high as f64 + 1.0) / (total as f64 + 2.0)
    }

    /// Folds `other` in (pooling baselines of one role, or seeding an
    /// agent's from its pool): counts add, keys and transitions unite
    /// (within the caps, most used first), per-slot histories interleave.
    pub fn merge(&mut self, other: &Baseline) {
        let mut ranked: Vec<(&str, u64)> = other.tools.iter().collect();
        ranked.sort_by_key(|e| std::cmp::Reverse(e.1));
        for (k, n) in ranked {
            self.tools.add(k, n);
        }
        let mut ranked: Vec<(&str, u64)> = other.destinations.iter().collect();
        ranked.sort_by_key(|e| std::cmp::Reverse(e.1));
        for (k, n) in ranked {
            self.destinations.add(k, n);
        }
        let mut ranked: Vec<(&str, u64)> = other.actions.iter().collect();
        ranked.sort_by_key(|e| std::cmp::Reverse(e.1));
        for (k, n) in ranked {
            self.actions.add(k, n);
        }
        for (from, to, n) in other.transitions.iter() {
            let (Some(f), Some(t)) = (other.actions.key(from), other.actions.key(to)) else {
                continue;
            };
            if let (Some(f), Some(t)) = (self.actions.index(f), self.actions.index(t)) {
                self.transitions.add(f, t, n);
            }
        }
        for (a, b) in self.week.iter_mut().zip(&other.week) {
            *a = a.saturating_add(*b);
        }
        self.calls.merge(&other.calls);
        self.volume.merge(&other.volume);
        self.amount.merge(&other.amount);
        for i in 0..2 {
            self.amount_days[i] = merge_rings(&self.amount_days[i], &other.amount_days[i]);
        }
        for i in 0..5 {
            self.tiers[i] = self.tiers[i].saturating_add(other.tiers[i]);
        }
        self.denied = self.denied.saturating_add(other.denied);
        self.denied_max_minute = self.denied_max_minute.max(other.denied_max_minute);
        self.first_ms = match (self.first_ms, other.first_ms) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.last_ms = self.last_ms.max(other.last_ms);
        self.events = self.events.saturating_add(other.events);
        self.learned |= other.learned;
        self.benign = self.benign.saturating_add(other.benign);
    }

    /// Folds what an alert found (its [`Fold`]) in: marking it benign.
    pub fn fold_benign(&mut self, fold: &Fold) {
        fold_into(self, fold);
        self.benign += 1;
    }

    /// The file form.
    pub fn to_file(&self) -> BaselineFile {
        let table = |t: &KeyTable| t.iter().map(|(k, n)| (k.to_string(), n)).collect();
        let mut transitions: Vec<TransitionEntry> = self
            .transitions
            .iter()
            .filter_map(|(f, t, n)| {
                Some(TransitionEntry {
                    from: self.actions.key(f)?.to_string(),
                    to: self.actions.key(t)?.to_string(),
                    count: n,
                })
            })
            .collect();
        transitions.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        BaselineFile {
            format: FORMAT,
            agent_id: self.agent_id.clone(),
            pool: self.pool.clone(),
            first_seen_ms: self.first_ms,
            last_seen_ms: self.last_ms,
            events: self.events,
            learned: self.learned,
            tools: table(&self.tools),
            actions: table(&self.actions),
            destinations: table(&self.destinations),
            transitions,
            week_profile: self.week.clone(),
            calls_per_hour: self.calls.rings().to_vec(),
            bytes_per_hour: self.volume.rings().to_vec(),
            amount_per_hour: self.amount.rings().to_vec(),
            amount_per_day: self.amount_days.to_vec(),
            tiers: self.tiers,
            denied: self.denied,
            denied_max_per_minute: self.denied_max_minute,
            overflow: Overflow {
                tools: self.tools.overflow,
                actions: self.actions.overflow,
                destinations: self.destinations.overflow,
                transitions: self.transitions.overflow,
            },
            benign: self.benign,
        }
    }

    /// From the file form; tables beyond the caps are cut (most used kept).
    pub fn from_file(f: BaselineFile) -> Self {
        let mut b = Baseline::new(&f.agent_id, f.pool);
        let fill = |t: &mut KeyTable, m: BTreeMap<String, u64>| {
            let mut v: Vec<(String, u64)> = m.into_iter().collect();
            v.sort_by_key(|e| std::cmp::Reverse(e.1));
            for (k, n) in v {
                t.add(&k, n);
            }
        };
        fill(&mut b.tools, f.tools);
        fill(&mut b.actions, f.actions);
        fill(&mut b.destinations, f.destinations);
        for t in f.transitions {
            if let (Some(a), Some(c)) = (b.actions.index(&t.from), b.actions.index(&t.to)) {
                b.transitions.add(a, c, t.count);
            }
        }
        let mut week = f.week_profile;
        week.resize(WEEK_HOURS, 0);
        b.week = week;
        b.calls = SlotSeries::from_rings(f.calls_per_hour);
        b.volume = SlotSeries::from_rings(f.bytes_per_hour);
        b.amount = SlotSeries::from_rings(f.amount_per_hour);
        // Repaired like the slots: two rings, each within its length.
        let days = SlotSeries::from_rings(f.amount_per_day);
        b.amount_days = [days.rings()[0].clone(), days.rings()[1].clone()];
        b.first_ms = f.first_seen_ms;
        b.last_ms = f.last_seen_ms;
        b.events = f.events;
        b.learned = f.learned;
        b.tiers = f.tiers;
        b.denied = f.denied;
        b.denied_max_minute = f.denied_max_per_minute;
        b.tools.overflow = f.overflow.tools;
        b.actions.overflow = f.overflow.actions;
        b.destinations.overflow = f.overflow.destinations;
        b.transitions.overflow = f.overflow.transitions;
        b.benign = f.benign;
        b
    }
}

/// Folds what an alert found into `b`.
fn fold_into(b: &mut Baseline, fold: &Fold) {
    match fold {
        Fold::Tool { tool, action } => {
            b.tools.add(tool, 1);
            if let Some(a) = action {
                b.actions.add(a, 1);
            }
        }
        Fold::Action { action } => {
            b.actions.add(action, 1);
        }
        Fold::Destination { destination } => {
            b.destinations.add(destination, 1);
        }
        Fold::Transition { from, to } => {
            if let (Some(f), Some(t)) = (b.actions.add(from, 0), b.actions.add(to, 0)) {
                b.transitions.add(f, t, 1);
            }
        }
        Fold::Hour { week_hour, count } => {
            if let Some(h) = b.week.get_mut(*week_hour) {
                *h += count;
            }
        }
        Fold::Slot {
            series,
            slot,
            value,
        } => match series.as_str() {
            "calls" => b.calls.push(*slot, *value),
            "bytes" => b.volume.push(*slot, *value),
            _ => b.amount.push(*slot, *value),
        },
        Fold::Day { day_type, value } => b.amount_days[(*day_type).min(1)].push(*value),
        Fold::Denied { per_minute } => {
            b.denied_max_minute = b.denied_max_minute.max(*per_minute);
        }
        Fold::Nothing => {}
        Fold::Tiers { high, calls } => {
            b.tiers[2] += high;
            b.tiers[0] += calls.saturating_sub(*high);
        }
    }
}

/// A baseline as written to disk and exchanged by `agent-sidecar baseline
/// export|import|merge` (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFile {
    /// [`FORMAT`].
    pub format: u32,
    /// The agent, or the pool for a pooled baseline.
    pub agent_id: String,
    /// The pool (role) it belongs to.
    #[serde(default)]
    pub pool: Option<String>,
    /// First event folded in, Unix ms.
    pub first_seen_ms: u64,
    /// Last event folded in, Unix ms.
    pub last_seen_ms: u64,
    /// Events folded in.
    pub events: u64,
    /// The learning period is over.
    pub learned: bool,
    /// Tool -> calls.
    pub tools: BTreeMap<String, u64>,
    /// `tool.action` -> calls.
    pub actions: BTreeMap<String, u64>,
    /// Destination -> uses.
    pub destinations: BTreeMap<String, u64>,
    /// Action-to-action transitions.
    pub transitions: Vec<TransitionEntry>,
    /// Activity per hour of the week, 168 values from Sunday 00:00.
    pub week_profile: Vec<u64>,
    /// Per slot (hour of day on weekdays 0-23, on weekends 24-47): the
    /// last hours' tool calls.
    pub calls_per_hour: Vec<Ring>,
    /// Per slot: the last hours' bytes.
    pub bytes_per_hour: Vec<Ring>,
    /// Per slot: the last hours' summed declared amounts.
    pub amount_per_hour: Vec<Ring>,
    /// Weekdays, weekend days: the last days' summed declared amounts.
    pub amount_per_day: Vec<Ring>,
    /// Tool calls per tier 1, 2, 3, 4 and deny.
    pub tiers: [u64; 5],
    /// Refused egress attempts.
    pub denied: u64,
    /// Most refused egress attempts in one minute while learning.
    pub denied_max_per_minute: u64,
    /// Observations that found a table full.
    pub overflow: Overflow,
    /// Alerts marked benign and folded in.
    #[serde(default)]
    pub benign: u64,
}

/// One learned transition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionEntry {
    /// The earlier action.
    pub from: String,
    /// The action right after it.
    pub to: String,
    /// How often.
    pub count: u64,
}

/// Observations of keys that found their table full.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overflow {
    /// Tools.
    pub tools: u64,
    /// Actions.
    pub actions: u64,
    /// Destinations.
    pub destinations: u64,
    /// Transitions.
    pub transitions: u64,
}
