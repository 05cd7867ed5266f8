//! The `detection:` section of base, team and agent documents: how the
//! behavioural detectors learn and what each does when it fires. Every
//! field is optional; an agent's effective [`DetectionPolicy`] takes each
//! field from the most specific document that sets it (agent, then its
//! roles and team, then the base), else the built-in default.

use std::{collections::BTreeMap, fmt, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::tier::Tier;

/// A duration written in the humantime form (`90s`, `1h30m`, `7days`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HumanDuration(#[serde(serialize_with = "ser_duration")] pub Duration);

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration ({e}); write it like 90s, 15m, 1h30m or 7days"
                ))
            })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: 90s, 15m, 1h30m, 7days."
        })
    }
}

/// The behavioural detectors, as the policy names them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// More calls in the hour than the time-of-day profile allows.
    RateSurge,
    /// A destination (host or MCP server) never reached while learning.
    NewDestination,
    /// A tool never called while learning.
    NewTool,
    /// An action of a known tool never called while learning.
    NewAction,
    /// Two actions in a row that never followed each other.
    NewTransition,
    /// Activity in an hour of the week the agent is never active in.
    OffHours,
    /// More bytes in the hour than the time-of-day profile allows.
    VolumeSurge,
    /// Declared amounts summed over the hour or the day above the norm.
    AmountSurge,
    /// Many refused egress attempts within a minute.
    DeniedBurst,
    /// A rise in the share of tier 3-4 (and denied) calls.
    TierShift,
    /// No action for longer than the policy's `idle_after` (an agent
    /// nobody uses any more, still holding its permissions).
    Idle,
}

impl DetectorKind {
    /// Every detector, in the order of the documentation.
    pub const ALL: [DetectorKind; 11] = [
        DetectorKind::RateSurge,
        DetectorKind::NewDestination,
        DetectorKind::NewTool,
        DetectorKind::NewAction,
        DetectorKind::NewTransition,
        DetectorKind::OffHours,
        DetectorKind::VolumeSurge,
        DetectorKind::AmountSurge,
        DetectorKind::DeniedBurst,
        DetectorKind::TierShift,
        DetectorKind::Idle,
    ];

    /// The policy's and the metrics' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::RateSurge => "rate_surge",
            DetectorKind::NewDestination => "new_destination",
            DetectorKind::NewTool => "new_tool",
            DetectorKind::NewAction => "new_action",
            DetectorKind::NewTransition => "new_transition",
            DetectorKind::OffHours => "off_hours",
            DetectorKind::VolumeSurge => "volume_surge",
            DetectorKind::AmountSurge => "amount_surge",
            DetectorKind::DeniedBurst => "denied_burst",
            DetectorKind::TierShift => "tier_shift",
            DetectorKind::Idle => "idle",
        }
    }

    /// The built-in settings (see `docs/alerts.md` for what `threshold`
    /// and `min` mean for each).
    pub fn defaults(self) -> DetectorPolicy {
        let (threshold, min, severity) = match self {
            DetectorKind::RateSurge => (6.0, 30.0, 3),
            DetectorKind::NewDestination => (0.0, 1.0, 4),
            DetectorKind::NewTool => (0.0, 1.0, 3),
            DetectorKind::NewAction => (0.0, 1.0, 2),
            DetectorKind::NewTransition => (0.0, 1.0, 3),
            DetectorKind::OffHours => (0.002, 3.0, 3),
            DetectorKind::VolumeSurge => (6.0, 1_000_000.0, 4),
            DetectorKind::AmountSurge => (4.0, 100.0, 4),
            DetectorKind::DeniedBurst => (3.0, 10.0, 4),
            DetectorKind::TierShift => (5.0, 6.0, 3),
            DetectorKind::Idle => (0.0, 0.0, 2),
        };
        DetectorPolicy {
            enabled: true,
            threshold,
            min,
            severity,
            response: Response::Notify,
            raise_to: Tier::Approval,
            raise_for: Duration::from_secs(3600),
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the sidecar does when a detector fires (besides raising the alert).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Raise the alert only.
    Notify,
    /// Raise the agent's minimum tier (`raise_to`, default 3: every call
    /// needs an approver) for `raise_for`.
    RaiseTier,
    /// Quarantine the agent in the kernel until an operator releases it.
    Quarantine,
}

impl Response {
    /// The policy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Response::Notify => "notify",
            Response::RaiseTier => "raise_tier",
            Response::Quarantine => "quarantine",
        }
    }
}

/// One detector's settings as written (every field optional).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorDecl {
    /// `false` turns the detector off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The detector's threshold (a robust z-score for the surges, a share
    /// for off-hours, a multiple of the learned maximum for denied bursts).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The least observed figure that may fire (events, bytes, amount).
    #[serde(default)]
    pub min: Option<f64>,
    /// OCSF severity_id 1 (informational) to 5 (critical).
    #[serde(default)]
    #[schemars(range(min = 1, max = 5))]
    pub severity: Option<u8>,
    /// `notify`, `raise_tier` or `quarantine`.
    #[serde(default)]
    pub response: Option<Response>,
    /// `raise_tier`: the minimum tier (2 or 3; default 3).
    #[serde(default)]
    pub raise_to: Option<u8>,
    /// `raise_tier`: for how long (default 1h).
    #[serde(default)]
    pub raise_for: Option<HumanDuration>,
}

/// The `detection:` section as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionSection {
    /// `false` turns every detector off (baselines still learn).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How long a new baseline learns before anything alerts (default 7days).
    #[serde(default)]
    pub learning: Option<HumanDuration>,
    /// Events a new baseline must have seen before anything alerts (default 200).
    #[serde(default)]
    pub min_learning_events: Option<u64>,
    /// The pool whose baseline seeds a new agent's (default: the agent's
    /// first role, else its team).
    #[serde(default)]
    pub pool: Option<String>,
    /// Offset of the agent's local time from UTC, minutes (hour-of-day
    /// profiles are kept in local time; default 0).
    #[serde(default)]
    pub utc_offset_minutes: Option<i32>,
    /// A repeat of an alert (same detector, same subject) within this
    /// window adds to its count instead of raising another (default 1h).
    #[serde(default)]
    pub dedup_window: Option<HumanDuration>,
    /// Per detector settings.
    #[serde(default)]
    pub detectors: BTreeMap<DetectorKind, DetectorDecl>,
    /// An agent with no action for this long raises an `idle` alert (and
    /// the `idle` detector's response). Unset: never.
    #[serde(default)]
    pub idle_after: Option<HumanDuration>,
}

/// One detector's effective settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectorPolicy {
    /// Whether it runs.
    pub enabled: bool,
    /// Its threshold (see [`DetectorKind::defaults`]).
    pub threshold: f64,
    /// The least observed figure that may fire.
    pub min: f64,
    /// OCSF severity_id, 1..=5.
    pub severity: u8,
    /// What happens when it fires.
    pub response: Response,
    /// `raise_tier`: the minimum tier.
    pub raise_to: Tier,
    /// `raise_tier`: for how long.
    #[serde(serialize_with = "ser_duration")]
    pub raise_for: Duration,
}

/// An agent's effective detection settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectionPolicy {
    /// Whether any detector runs.
    pub enabled: bool,
    /// Learning period of a new baseline.
    #[serde(serialize_with = "ser_duration")]
    pub learning: Duration,
    /// Events needed before the learning period can end.
    pub min_learning_events: u64,
    /// The pool (role) whose baseline seeds the agent's.
    pub pool: Option<String>,
    /// Local time offset from UTC, minutes.
    pub utc_offset_minutes: i32,
    /// Repeat window of one alert.
    #[serde(serialize_with = "ser_duration")]
    pub dedup_window: Duration,
    /// Per detector, in [`DetectorKind::ALL`] order.
    pub detectors: [DetectorPolicy; 11],
    /// No action for this long raises an `idle` alert; `None`: never.
    #[serde(serialize_with = "ser_opt_duration")]
    pub idle_after: Option<Duration>,
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

impl Default for DetectionPolicy {
    fn default() -> Self {
        DetectionPolicy {
            enabled: true,
            learning: Duration::from_secs(7 * 86_400),
            min_learning_events: 200,
            pool: None,
            utc_offset_minutes: 0,
            dedup_window: Duration::from_secs(3600),
            detectors: DetectorKind::ALL.map(DetectorKind::defaults),
            idle_after: None,
        }
    }
}

impl DetectionPolicy {
    /// The settings of `kind`.
    pub fn detector(&self, kind: DetectorKind) -> &DetectorPolicy {
        &self.detectors[kind as usize]
    }

    /// Applies `section` over these settings (a more specific document's).
    pub fn apply(&mut self, section: &DetectionSection) {
        if let Some(v) = section.enabled {
            self.enabled = v;
        }
        if let Some(v) = section.learning {
            self.learning = v.0;
        }
        if let Some(v) = section.min_learning_events {
            self.min_learning_events = v;
        }
        if let Some(v) = &section.pool {
            self.pool = Some(v.clone());
        }
        if let Some(v) = section.utc_offset_minutes {
            self.utc_offset_minutes = v.clamp(-14 * 60, 14 * 60);
        }
        if let Some(v) = section.dedup_window {
            self.dedup_window = v.0;
        }
        if let Some(v) = section.idle_after {
            self.idle_after = Some(v.0);
        }
        for (kind, d) in &section.detectors {
            let p = &mut self.detectors[*kind as usize];
            if let Some(v) = d.enabled {
                p.enabled = v;
            }
            if let Some(v) = d.threshold.filter(|v| v.is_finite() && *v >= 0.0) {
                p.threshold = v;
            }
            if let Some(v) = d.min.filter(|v| v.is_finite() && *v >= 0.0) {
                p.min = v;
            }
            if let Some(v) = d.severity {
                p.severity = v.clamp(1, 5);
            }
            if let Some(v) = d.response {
                p.response = v;
            }
            if let Some(v) = d.raise_to {
                p.raise_to = if v <= 2 {
                    Tier::Supervised
                } else {
                    Tier::Approval
                };
            }
            if let Some(v) = d.raise_for {
                p.raise_for = v.0;
            }
        }
    }
}

#[cfg(test)]
mod tests;
