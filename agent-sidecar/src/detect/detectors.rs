//! [`AgentState`]: one agent's baseline and the running windows the
//! detectors compare with it (this hour, this day, this minute, the last
//! 64 tool calls). [`AgentState::observe`] is O(1) per event: table
//! look-ups, additions, comparisons with thresholds computed once per
//! hour; see `docs/alerts.md` for each detector's maths.

use std::collections::VecDeque;

use super::{
    alert::{Alert, EventRef, Finding, Fold, MAX_EVIDENCE, Pattern},
    baseline::Baseline,
    keys,
    observation::{Observation, ObservedKind},
    series::{self, Floor, RING, SLOTS, local_hour, slot, threshold, week_hour},
};
use crate::policy::detection::{DetectionPolicy, DetectorKind};

/// Two tool calls further apart than this are not a transition.
pub const SESSION_GAP_MS: u64 = 30 * 60 * 1000;
/// Tool calls the tier-mix window holds.
pub const TIER_WINDOW: u32 = 64;
/// Fewest calls in the window before the tier mix is judged.
pub const TIER_MIN_WINDOW: u32 = 16;
/// Most alerts open (within their de-duplication window) per agent.
pub const MAX_OPEN: usize = 32;
/// Open alerts of one detector past which further subjects fold into the
/// latest of them: a flood of distinct new destinations is one storm, not
/// thousands of alerts.
pub const STORM: usize = 8;
/// Most closed alerts kept per agent for marking benign.
pub const MAX_RECENT: usize = 32;
/// Longest gap of hours filled with zeros when time jumps (every slot's
/// ring is then all zeros: more changes nothing).
const MAX_FILL: i64 = (SLOTS * RING) as i64;

/// This hour's, day's and minute's running figures.
#[derive(Clone, Debug, Default)]
struct Windows {
    hour: Option<i64>,
    calls: f64,
    bytes: f64,
    amount: f64,
    activity: u64,
    calls_thr: Option<(f64, f64)>,
    bytes_thr: Option<(f64, f64)>,
    slot_share: f64,
    fired_rate: bool,
    fired_volume: bool,
    fired_off_hours: bool,
    day: Option<i64>,
    day_amount: f64,
    day_thr: Option<(f64, f64)>,
    fired_day: bool,
    minute: Option<u64>,
    minute_denied: u64,
    fired_denied: bool,
    tier_bits: u64,
    tier_n: u32,
    tier_high: bool,
    prev_action: Option<(usize, u64)>,
}

/// An alert within its de-duplication window.
#[derive(Clone, Debug)]
struct Open {
    alert: Alert,
    until_ms: u64,
}

/// What [`AgentState::raise`] made of a finding.
pub(crate) enum Raised {
    /// A new alert, to deliver and respond to.
    New(Box<Alert>),
    /// A repeat folded into an open alert.
    Repeat,
}

/// One agent's baseline, windows and alerts.
#[derive(Clone, Debug)]
pub struct AgentState {
    pub(crate) baseline: Baseline,
    win: Windows,
    open: Vec<Open>,
    pub(crate) recent: VecDeque<Alert>,
    /// Whether the baseline changed since it was last saved.
    pub(crate) dirty: bool,
    /// Repeated alerts closed since the last look: their final counts.
    pending_updates: Vec<Alert>,
}

/// A stack copy of `tool.action` (no allocation on the event path).
struct ActionKey {
    buf: [u8; keys::MAX_KEY_BYTES],
    len: usize,
}

impl ActionKey {
    fn new(tool: &str, action: &str) -> Self {
        let mut k = ActionKey {
            buf: [0; keys::MAX_KEY_BYTES],
            len: 0,
        };
        for part in [tool, ".", action] {
            let part = part.as_bytes();
            let n = part.len().min(k.buf.len() - k.len);
            k.buf[k.len..k.len + n].copy_from_slice(&part[..n]);
            k.len += n;
        }
        k
    }

    fn as_str(&self) -> &str {
        match std::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            // Cut inside a character: keep the valid prefix.
            Err(e) => std::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or_default(),
        }
    }
}

impl AgentState {
    /// A state around `baseline`.
    pub fn new(baseline: Baseline) -> Self {
        AgentState {
            baseline,
            win: Windows::default(),
            open: Vec::new(),
            recent: VecDeque::new(),
            dirty: false,
            pending_updates: Vec::new(),
        }
    }

    /// The baseline.
    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// Heap bytes held (baseline, open and recent alerts), an estimate.
    pub fn heap_bytes(&self) -> usize {
        let alert = |a: &Alert| {
            size_of::<Alert>()
                + a.subject.capacity()
                + a.id.capacity()
                + a.events.capacity() * (size_of::<EventRef>() + 128)
        };
        self.baseline.heap_bytes()
            + self.open.iter().map(|o| alert(&o.alert)).sum::<usize>()
            + self.recent.iter().map(alert).sum::<usize>()
    }

    /// Folds `o` into the baseline and returns what the detectors found.
    pub(crate) fn observe(&mut self, o: &Observation<'_>, p: &DetectionPolicy) -> Vec<Finding> {
        let mut found = Vec::new();
        let b = &mut self.baseline;
        if b.first_ms == 0 {
            b.first_ms = o.at_ms.max(1);
        }
        let just_learned = !b.learned
            && o.at_ms.saturating_sub(b.first_ms) >= p.learning.as_millis() as u64
            && b.events >= p.min_learning_events;
        b.learned |= just_learned;
        self.dirty = true;
        self.roll(o.at_ms, p);
        if just_learned && let Some(h) = self.win.hour {
            // The hour's thresholds were computed from a baseline still
            // learning: compute them from the learned one.
            self.hour_thresholds(h, p);
        }
        let detect = self.baseline.learned && p.enabled;
        let on = |k: DetectorKind| detect && p.detector(k).enabled;
        let b = &mut self.baseline;
        let w = &mut self.win;
        let hour = w.hour.unwrap_or_default();

        if o.is_activity() {
            b.week[week_hour(hour)] += 1;
            w.activity += 1;
            let d = p.detector(DetectorKind::OffHours);
            if on(DetectorKind::OffHours)
                && !w.fired_off_hours
                && w.slot_share < d.threshold
                && w.activity as f64 >= d.min.max(1.0)
            {
                w.fired_off_hours = true;
                found.push(Finding {
                    detector: DetectorKind::OffHours,
                    pattern: Pattern::OffHours,
                    subject: format!("hour {:02} ({})", hour.rem_euclid(24), day_name(hour)),
                    observed: w.activity as f64,
                    baseline: w.slot_share,
                    threshold: d.threshold,
                    unit: "actions",
                    fold: Fold::Hour {
                        week_hour: week_hour(hour),
                        count: w.activity,
                    },
                });
            }
        }

        if o.kind == ObservedKind::ToolCall {
            Self::tool_call(b, w, o, p, &mut found, detect);
        }

        if let Some(dest) = o.destination {
            match b.destinations.index(dest) {
                Some(i) => b.destinations.bump(i),
                None if on(DetectorKind::NewDestination) => found.push(Finding {
                    detector: DetectorKind::NewDestination,
                    pattern: Pattern::Unseen,
                    subject: keys::bounded(dest).to_string(),
                    observed: 1.0,
                    baseline: 0.0,
                    threshold: 0.0,
                    unit: "uses",
                    fold: Fold::Destination {
                        destination: keys::bounded(dest).to_string(),
                    },
                }),
                None if !b.learned => {
                    b.destinations.add(dest, 1);
                }
                None => {}
            }
        }

        if o.bytes > 0 {
            w.bytes += o.bytes as f64;
            let d = p.detector(DetectorKind::VolumeSurge);
            if let Some((med, thr)) = w.bytes_thr
                && on(DetectorKind::VolumeSurge)
                && !w.fired_volume
                && w.bytes > thr
                && w.bytes >= d.min
            {
                w.fired_volume = true;
                found.push(surge(
                    DetectorKind::VolumeSurge,
                    "bytes this hour",
                    w.bytes,
                    med,
                    thr,
                    "bytes",
                    Fold::Slot {
                        series: "bytes".into(),
                        slot: slot(hour),
                        value: w.bytes,
                    },
                ));
            }
        }

        if o.denied_egress {
            b.denied += 1;
            w.minute_denied += 1;
            let d = p.detector(DetectorKind::DeniedBurst);
            let thr = (d.threshold * b.denied_max_minute as f64).max(d.min);
            if on(DetectorKind::DeniedBurst) && !w.fired_denied && w.minute_denied as f64 >= thr {
                w.fired_denied = true;
                found.push(Finding {
                    detector: DetectorKind::DeniedBurst,
                    pattern: Pattern::Burst,
                    subject: "refused egress per minute".into(),
                    observed: w.minute_denied as f64,
                    baseline: b.denied_max_minute as f64,
                    threshold: thr,
                    unit: "refusals",
                    fold: Fold::Denied {
                        per_minute: w.minute_denied,
                    },
                });
            }
        }

        b.events += 1;
        b.last_ms = b.last_ms.max(o.at_ms);
        found
    }

    fn tool_call(
        b: &mut Baseline,
        w: &mut Windows,
        o: &Observation<'_>,
        p: &DetectionPolicy,
        found: &mut Vec<Finding>,
        detect: bool,
    ) {
        let on = |k: DetectorKind| detect && p.detector(k).enabled;
        let hour = w.hour.unwrap_or_default();
        let key = o.tool.map(|t| ActionKey::new(t, o.action.unwrap_or("-")));
        let mut current = None;
        if let (Some(tool), Some(key)) = (o.tool, &key) {
            match b.tools.index(tool) {
                Some(t) => {
                    b.tools.bump(t);
                    match b.actions.index(key.as_str()) {
                        Some(a) => {
                            b.actions.bump(a);
                            current = Some(a);
                        }
                        None if b.learned => {
                            if on(DetectorKind::NewAction) {
                                found.push(unseen(
                                    DetectorKind::NewAction,
                                    key.as_str(),
                                    Fold::Action {
                                        action: key.as_str().to_string(),
                                    },
                                ));
                            }
                        }
                        None => current = b.actions.add(key.as_str(), 1),
                    }
                }
                None if b.learned => {
                    if on(DetectorKind::NewTool) {
                        found.push(unseen(
                            DetectorKind::NewTool,
                            tool,
                            Fold::Tool {
                                tool: keys::bounded(tool).to_string(),
                                action: Some(key.as_str().to_string()),
                            },
                        ));
                    }
                }
                None => {
                    b.tools.add(tool, 1);
                    current = b.actions.add(key.as_str(), 1);
                }
            }
        }
        // Transitions between known actions (a new action has its own alert).
        if let (Some(cur), Some((prev, at))) = (current, w.prev_action)
            && o.at_ms.saturating_sub(at) <= SESSION_GAP_MS
        {
            if b.transitions.contains(prev, cur) || !b.learned {
                b.transitions.add(prev, cur, 1);
            } else if on(DetectorKind::NewTransition) {
                let from = b.actions.key(prev).unwrap_or("-").to_string();
                let to = b.actions.key(cur).unwrap_or("-").to_string();
                found.push(Finding {
                    detector: DetectorKind::NewTransition,
                    pattern: Pattern::Unseen,
                    subject: format!("{from} -> {to}"),
                    observed: 1.0,
                    baseline: 0.0,
                    threshold: 0.0,
                    unit: "times",
                    fold: Fold::Transition { from, to },
                });
            }
        }
        w.prev_action = current.map(|c| (c, o.at_ms));

        // Rate.
        w.calls += 1.0;
        let d = p.detector(DetectorKind::RateSurge);
        if let Some((med, thr)) = w.calls_thr
            && on(DetectorKind::RateSurge)
            && !w.fired_rate
            && w.calls > thr
            && w.calls >= d.min
        {
            w.fired_rate = true;
            found.push(surge(
                DetectorKind::RateSurge,
                "tool calls this hour",
                w.calls,
                med,
                thr,
                "calls",
                Fold::Slot {
                    series: "calls".into(),
                    slot: slot(hour),
                    value: w.calls,
                },
            ));
        }

        // Tier mix.
        if let Some(tier) = o.tier {
            let rank = usize::from(tier.rank()).clamp(1, 5);
            b.tiers[rank - 1] += 1;
            let high = u64::from(rank >= 3);
            w.tier_bits = (w.tier_bits << 1) | high;
            w.tier_n = (w.tier_n + 1).min(TIER_WINDOW);
            let n = f64::from(w.tier_n);
            let mask = if w.tier_n >= 64 {
                u64::MAX
            } else {
                (1u64 << w.tier_n) - 1
            };
            let k = f64::from((w.tier_bits & mask).count_ones());
            let p0 = b.high_tier_share();
            let z = (k - n * p0) / (n * p0 * (1.0 - p0)).sqrt().max(1e-9);
            let d = p.detector(DetectorKind::TierShift);
            if w.tier_high && z < d.threshold / 2.0 {
                w.tier_high = false;
            }
            if on(DetectorKind::TierShift)
                && !w.tier_high
                && w.tier_n >= TIER_MIN_WINDOW
                && k >= d.min
                && z >= d.threshold
            {
                w.tier_high = true;
                found.push(Finding {
                    detector: DetectorKind::TierShift,
                    pattern: Pattern::Shift,
                    subject: "tier 3+ share of the last calls".into(),
                    observed: k / n,
                    baseline: p0,
                    threshold: p0 + d.threshold * (p0 * (1.0 - p0) / n).sqrt(),
                    unit: "share",
                    fold: Fold::Tiers {
                        high: k as u64,
                        calls: n as u64,
                    },
                });
            }
        }

        // Amounts.
        if let Some(a) = o.amount.filter(|a| a.is_finite() && *a > 0.0) {
            w.amount += a;
            w.day_amount += a;
            let d = p.detector(DetectorKind::AmountSurge);
            // The day's running sum against the last days' sums (an hour's
            // sum is too lumpy to judge: a few large orders make it).
            if on(DetectorKind::AmountSurge) && !w.fired_day {
                let day_type = series::slot(hour) / 24;
                if let Some((med, thr)) = w.day_thr
                    && w.day_amount > thr
                    && w.day_amount >= d.min
                {
                    w.fired_day = true;
                    found.push(surge(
                        DetectorKind::AmountSurge,
                        "declared amount today",
                        w.day_amount,
                        med,
                        thr,
                        "amount",
                        Fold::Day {
                            day_type,
                            value: w.day_amount,
                        },
                    ));
                }
            }
        }
    }

    /// Moves the windows to `at_ms`: a new minute, hour or day closes the
    /// last one (its figures join the history) and computes the new
    /// thresholds. An event older than the current hour counts in it.
    fn roll(&mut self, at_ms: u64, p: &DetectionPolicy) {
        let b = &mut self.baseline;
        let w = &mut self.win;
        let minute = at_ms / 60_000;
        if w.minute.is_none_or(|m| minute > m) {
            if !b.learned {
                b.denied_max_minute = b.denied_max_minute.max(w.minute_denied);
            }
            w.minute = Some(minute);
            w.minute_denied = 0;
            w.fired_denied = false;
            self.expire(at_ms);
        }
        let b = &mut self.baseline;
        let w = &mut self.win;
        let hour = local_hour(at_ms, p.utc_offset_minutes);
        if w.hour.is_some_and(|h| hour <= h) {
            return;
        }
        let learned = b.learned;
        // A surge is kept at its threshold: one bad hour does not teach
        // the baseline that bad hours are normal (marking it benign does).
        let cap = |v: f64, thr: Option<(f64, f64)>| match thr {
            Some((_, t)) if learned => v.min(t),
            _ => v,
        };
        if let Some(h) = w.hour {
            let s = slot(h);
            b.calls.push(s, cap(w.calls, w.calls_thr));
            b.volume.push(s, cap(w.bytes, w.bytes_thr));
            b.amount.push(s, w.amount);
            for gap in (h + 1).max(hour - MAX_FILL)..hour {
                let s = slot(gap);
                b.calls.push(s, 0.0);
                b.volume.push(s, 0.0);
                b.amount.push(s, 0.0);
            }
        }
        let day = hour.div_euclid(24);
        if w.day.is_none_or(|d| day > d) {
            if let Some(d) = w.day {
                let t = usize::from(slot(d * 24) >= 24);
                let v = cap(w.day_amount, w.day_thr);
                b.amount_days[t].push(v);
                for gap in (d + 1).max(day - 2 * RING as i64)..day {
                    b.amount_days[usize::from(slot(gap * 24) >= 24)].push(0.0);
                }
            }
            let z = p.detector(DetectorKind::AmountSurge).threshold;
            let t = usize::from(slot(day * 24) >= 24);
            w.day = Some(day);
            w.day_amount = 0.0;
            w.fired_day = false;
            w.day_thr = threshold(
                &b.amount_days[t],
                z,
                Floor::Relative {
                    share: 0.25,
                    abs: 1.0,
                },
            );
        }
        w.hour = Some(hour);
        self.hour_thresholds(hour, p);
        let w = &mut self.win;
        w.calls = 0.0;
        w.bytes = 0.0;
        w.amount = 0.0;
        w.activity = 0;
        w.fired_rate = false;
        w.fired_volume = false;
        w.fired_off_hours = false;
    }

    /// The thresholds of `hour`'s slot and its share of the activity, from
    /// the baseline as it is now (at the start of an hour, and when the
    /// learning period ends within one).
    fn hour_thresholds(&mut self, hour: i64, p: &DetectionPolicy) {
        let (b, w) = (&self.baseline, &mut self.win);
        let s = slot(hour);
        let rate_z = p.detector(DetectorKind::RateSurge).threshold;
        let volume_z = p.detector(DetectorKind::VolumeSurge).threshold;
        let ring = |series: &series::SlotSeries| series.ring(s).cloned().unwrap_or_default();
        w.calls_thr = threshold(&ring(&b.calls), rate_z, Floor::Counts);
        w.bytes_thr = threshold(
            &ring(&b.volume),
            volume_z,
            Floor::Relative {
                share: 0.5,
                abs: 65_536.0,
            },
        );
        w.slot_share = b.slot_share(s);
    }

    /// Raises `f` found in `o`: a new alert, or a repeat of an open one
    /// (same detector, same subject, within the window).
    pub(crate) fn raise(
        &mut self,
        f: Finding,
        o: &Observation<'_>,
        p: &DetectionPolicy,
        new_id: impl FnOnce() -> String,
    ) -> Raised {
        if let Some(open) = self
            .open
            .iter_mut()
            .find(|a| a.alert.detector == f.detector && a.alert.subject == f.subject)
        {
            let a = &mut open.alert;
            a.count = a.count.saturating_add(1);
            a.last_ms = a.last_ms.max(o.at_ms);
            if f.observed > a.observed {
                a.observed = f.observed;
                a.fold = f.fold;
            }
            if a.events.len() < MAX_EVIDENCE {
                a.events.push(EventRef::of(o));
            }
            return Raised::Repeat;
        }
        let same = self
            .open
            .iter()
            .filter(|a| a.alert.detector == f.detector)
            .count();
        if same >= STORM
            && let Some(open) = self
                .open
                .iter_mut()
                .rev()
                .find(|a| a.alert.detector == f.detector)
        {
            let a = &mut open.alert;
            a.count = a.count.saturating_add(1);
            a.last_ms = a.last_ms.max(o.at_ms);
            if a.events.len() < MAX_EVIDENCE {
                a.events.push(EventRef::of(o));
            }
            return Raised::Repeat;
        }
        let d = p.detector(f.detector);
        let alert = Alert {
            id: new_id(),
            agent_id: self.baseline.agent_id.clone(),
            pool: p.pool.clone(),
            detector: f.detector,
            pattern: f.pattern,
            subject: f.subject,
            severity: d.severity,
            first_ms: o.at_ms,
            last_ms: o.at_ms,
            count: 1,
            observed: f.observed,
            baseline: f.baseline,
            threshold: f.threshold,
            unit: f.unit.to_string(),
            events: vec![EventRef::of(o)],
            response: d.response,
            fold: f.fold,
        };
        if self.open.len() >= MAX_OPEN {
            let first = self.open.remove(0);
            self.remember(first.alert);
        }
        self.open.push(Open {
            alert: alert.clone(),
            until_ms: o.at_ms.saturating_add(p.dedup_window.as_millis() as u64),
        });
        Raised::New(Box::new(alert))
    }

    /// Closes the alerts whose window ended by `now_ms`; those that were
    /// repeated wait in the updates (their final count is delivered).
    fn expire(&mut self, now_ms: u64) {
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].until_ms <= now_ms {
                let a = self.open.remove(i).alert;
                if a.count > 1 {
                    self.pending_updates.push(a.clone());
                }
                self.remember(a);
            } else {
                i += 1;
            }
        }
    }

    /// Keeps `a`, raised outside the event path (an idle alert), with the
    /// recent closed alerts, for listing and marking benign.
    pub(crate) fn keep(&mut self, a: Alert) {
        self.remember(a);
    }

    fn remember(&mut self, a: Alert) {
        if self.recent.len() >= MAX_RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(a);
    }

    /// Closes every open alert (at shutdown); returns the repeated ones.
    pub(crate) fn close_all(&mut self) -> Vec<Alert> {
        self.expire(u64::MAX);
        self.take_updates()
    }

    /// The repeated alerts closed since the last call.
    pub(crate) fn take_updates(&mut self) -> Vec<Alert> {
        if self.pending_updates.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.pending_updates)
    }

    /// Folds the alert `id` (open or recent) into the baseline: what it
    /// found becomes normal. `false` if no such alert is kept.
    pub fn mark_benign(&mut self, id: &str) -> bool {
        let fold = if let Some(i) = self.open.iter().position(|o| o.alert.id == id) {
            let a = self.open.remove(i).alert;
            let f = a.fold.clone();
            self.remember(a);
            f
        } else if let Some(a) = self.recent.iter().find(|a| a.id == id) {
            a.fold.clone()
        } else {
            return false;
        };
        self.recent.retain(|a| a.id != id);
        self.baseline.fold_benign(&fold);
        self.dirty = true;
        true
    }

    /// Alerts kept for marking benign: open ones, then recent closed ones.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.open.iter().map(|o| &o.alert).chain(self.recent.iter())
    }
}

fn unseen(detector: DetectorKind, key: &str, fold: Fold) -> Finding {
    Finding {
        detector,
        pattern: Pattern::Unseen,
        subject: keys::bounded(key).to_string(),
        observed: 1.0,
        baseline: 0.0,
        threshold: 0.0,
        unit: "calls",
        fold,
    }
}

fn surge(
    detector: DetectorKind,
    subject: &str,
    observed: f64,
    baseline: f64,
    threshold: f64,
    unit: &'static str,
    fold: Fold,
) -> Finding {
    Finding {
        detector,
        pattern: Pattern::Surge,
        subject: subject.to_string(),
        observed,
        baseline,
        threshold,
        unit,
        fold,
    }
}

fn day_name(hour: i64) -> &'static str {
    ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][series::weekday(hour)]
}
