//! Behavioural baselines and anomaly alerts. Each agent's action events
//! (tool calls with tier and outcome, connections with bytes, DNS and
//! kernel refusals) teach a [`Baseline`] of what it normally does: how
//! many calls an hour at each hour of the day, which tools, actions and
//! destinations, which action follows which, how much data and money,
//! how often it is refused, its tier mix. After a learning period, the
//! detectors compare each event with it and raise an [`Alert`] with its
//! evidence when the agent leaves its normal: a new destination, tool,
//! action or sequence, activity off its hours, a surge of calls, bytes
//! or declared amounts, a burst of refused egress, a rise of tier 3-4
//! calls. The policy's `detection:` section tunes each detector and says
//! what to do: notify, raise the agent's minimum tier for a while, or
//! quarantine it.
//!
//! The maths, the bounds on memory and the alert formats are in
//! `docs/alerts.md`.

mod alert;
mod baseline;
mod detectors;
mod engine;
mod keys;
mod observation;
mod ocsf;
mod respond;
mod series;
mod store;
mod syslog;
mod webhook;

pub use alert::{Activity, Alert, EventRef, Fold, MAX_EVIDENCE, Pattern};
pub use baseline::{
    Baseline, BaselineFile, FORMAT, MAX_ACTIONS, MAX_DESTINATIONS, MAX_TOOLS, MAX_TRANSITIONS,
    MEMORY_BOUND_BYTES, Overflow, TransitionEntry,
};
pub use detectors::{
    AgentState, MAX_OPEN, MAX_RECENT, SESSION_GAP_MS, STORM, TIER_MIN_WINDOW, TIER_WINDOW,
};
pub use engine::{
    AlertSink, Clock, Detection, DetectionMetrics, DetectionOptions, MAX_AGENTS, PolicyLookup,
    Responder,
};
pub use observation::{Observation, ObservedKind};
pub use ocsf::{CATEGORY_UID, CLASS_UID, OCSF_VERSION, detection_finding, severity_name};
pub use respond::GatewayResponder;
pub use series::{RING, Ring};
pub use store::{BaselineStore, DEFAULT_BASELINE_DIR, StoreError, read_file, write_atomic};
pub use syslog::{
    SyslogAlerts, SyslogConfig, SyslogCounters, SyslogError, SyslogTarget, SyslogTransport,
    rfc5424, syslog_severity,
};
pub use webhook::WebhookAlerts;

#[cfg(test)]
mod tests;
