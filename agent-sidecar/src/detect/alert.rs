//! [`Alert`]: one detector's finding with its evidence (the baseline
//! figure, the observed figure, the events that triggered it), and how
//! repeats fold into it (a storm is one alert with a count).

use serde::{Deserialize, Serialize};

use super::observation::Observation;
use crate::policy::detection::{DetectorKind, Response};

/// Most triggering events an alert keeps as evidence.
pub const MAX_EVIDENCE: usize = 8;

/// The shape of the deviation (OCSF `observed_pattern`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Pattern {
    /// Never seen while learning.
    Unseen,
    /// At an hour the agent is not active.
    OffHours,
    /// Above the learned range.
    Surge,
    /// Many in a short time.
    Burst,
    /// A changed mix.
    Shift,
    /// No action for too long.
    Idle,
}

impl Pattern {
    /// As written in alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Unseen => "UNSEEN",
            Pattern::OffHours => "OFF_HOURS",
            Pattern::Surge => "SURGE",
            Pattern::Burst => "BURST",
            Pattern::Shift => "SHIFT",
            Pattern::Idle => "IDLE",
        }
    }
}

/// What marking an alert benign folds into the baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fold", rename_all = "snake_case")]
pub enum Fold {
    /// Learn a tool (and its action).
    Tool {
        /// The tool.
        tool: String,
        /// `tool.action`, when the call named one.
        action: Option<String>,
    },
    /// Learn an action of a known tool.
    Action {
        /// `tool.action`.
        action: String,
    },
    /// Learn a destination.
    Destination {
        /// Host, server or address.
        destination: String,
    },
    /// Learn a transition.
    Transition {
        /// The earlier action.
        from: String,
        /// The later one.
        to: String,
    },
    /// Learn activity in an hour of the week.
    Hour {
        /// Hour of the week, 0 = Sunday 00:00.
        week_hour: usize,
        /// How much activity.
        count: u64,
    },
    /// Learn an hour's figure of a slot series.
    Slot {
        /// `calls`, `bytes` or `amount`.
        series: String,
        /// The slot (0-47).
        slot: usize,
        /// The hour's figure.
        value: f64,
    },
    /// Learn a day's summed amount.
    Day {
        /// 0 weekday, 1 weekend.
        day_type: usize,
        /// The day's sum.
        value: f64,
    },
    /// Learn a minute's refusals.
    Denied {
        /// Refusals in the minute.
        per_minute: u64,
    },
    /// Nothing to learn (an idle agent: the next action ends it).
    Nothing,
    /// Learn a tier mix.
    Tiers {
        /// Calls at tier 3 or above in the window.
        high: u64,
        /// Calls in the window.
        calls: u64,
    },
}

/// One event that triggered an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRef {
    /// `tool_call`, `connection`, `dns`, `kernel_deny`.
    pub kind: String,
    /// When, Unix ms.
    pub at_ms: u64,
    /// Tool, when a tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Action, when a tool call named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Destination, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Declared amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    /// Bytes moved.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// W3C trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Audit record id (the approval or compensation of the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl EventRef {
    /// A copy of what `o` says.
    pub fn of(o: &Observation<'_>) -> Self {
        EventRef {
            kind: o.kind.as_str().to_string(),
            at_ms: o.at_ms,
            tool: o.tool.map(str::to_string),
            action: o.action.map(str::to_string),
            destination: o.destination.map(str::to_string),
            amount: o.amount,
            bytes: o.bytes,
            trace_id: o.trace_id.map(str::to_string),
            record_id: o.record_id.map(str::to_string),
        }
    }
}

/// What a detector found in one event, before de-duplication.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Finding {
    pub(crate) detector: DetectorKind,
    pub(crate) pattern: Pattern,
    /// What deviates (a host, a tool, `a -> b`, `calls per hour`).
    pub(crate) subject: String,
    /// The observed figure.
    pub(crate) observed: f64,
    /// The baseline figure (median, learned maximum, learned share).
    pub(crate) baseline: f64,
    /// The figure the observed one crossed.
    pub(crate) threshold: f64,
    /// Unit of the figures.
    pub(crate) unit: &'static str,
    pub(crate) fold: Fold,
}

/// Whether an alert is new, repeated, or closed (OCSF activity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// First raised.
    Create,
    /// Its de-duplication window ended with repeats: the final count.
    Update,
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique id (`finding_info.uid`).
    pub id: String,
    /// The agent.
    pub agent_id: String,
    /// Its pool (role), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The detector.
    pub detector: DetectorKind,
    /// The shape of the deviation.
    pub pattern: Pattern,
    /// What deviates.
    pub subject: String,
    /// OCSF severity_id, 1..=5.
    pub severity: u8,
    /// First trigger, Unix ms.
    pub first_ms: u64,
    /// Last trigger, Unix ms.
    pub last_ms: u64,
    /// Triggers folded into this alert.
    pub count: u32,
    /// The observed figure (the first trigger's; the largest for surges).
    pub observed: f64,
    /// The baseline figure.
    pub baseline: f64,
    /// The threshold crossed.
    pub threshold: f64,
    /// Unit of the figures.
    pub unit: String,
    /// Up to [`MAX_EVIDENCE`] triggering events, first first.
    pub events: Vec<EventRef>,
    /// What the policy said to do.
    pub response: Response,
    /// What marking it benign folds into the baseline.
    pub fold: Fold,
}

impl Alert {
    /// One sentence for humans.
    pub fn summary(&self) -> String {
        let d = &self.detector;
        match self.pattern {
            Pattern::Unseen => format!(
                "{d}: `{}` was never seen while learning ({} time(s))",
                self.subject, self.count
            ),
            Pattern::Idle => format!(
                "{d}: no action for {:.0} s, above the {:.0} s the policy allows",
                self.observed, self.threshold
            ),
            Pattern::OffHours => format!(
                "{d}: {} actions at an hour with {:.2}% of the learned activity",
                self.observed,
                self.baseline * 100.0
            ),
            _ => format!(
                "{d}: {} is {:.0} {}, above {:.0} (baseline {:.0})",
                self.subject, self.observed, self.unit, self.threshold, self.baseline
            ),
        }
    }

    /// The OCSF `observation_type` of the detector.
    pub fn observation_type(&self) -> &'static str {
        match self.detector {
            DetectorKind::NewTransition => "Sequence Analysis",
            DetectorKind::OffHours | DetectorKind::Idle => "Time Analysis",
            DetectorKind::RateSurge
            | DetectorKind::VolumeSurge
            | DetectorKind::AmountSurge
            | DetectorKind::DeniedBurst => "Frequency Analysis",
            DetectorKind::TierShift => "Distribution Analysis",
            DetectorKind::NewDestination | DetectorKind::NewTool | DetectorKind::NewAction => {
                "Occurrence Analysis"
            }
        }
    }
}
