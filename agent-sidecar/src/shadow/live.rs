//! The candidate set beside the active one on live traffic: every
//! decision is also decided with the candidate, never enforced; each one
//! that would differ is counted and handed to a sink (the action event
//! bus: a `shadow_difference` audit record).

use std::sync::Arc;

use prometheus::{IntCounterVec, Opts, Registry};

use super::compare::{Difference, compare};
use crate::policy::{Action, Decision, PolicyStore};

/// A decision the candidate would make differently, as an action event.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ShadowEvent<'a> {
    /// The agent.
    pub agent_id: &'a str,
    /// The action decided.
    #[serde(skip)]
    pub action: &'a Action,
    /// What each set decides.
    pub difference: &'a Difference,
    /// The candidate's version (content hash).
    pub candidate_version: &'a str,
    /// The call's W3C trace id, linking the call's own records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<&'a str>,
}

/// Where shadow differences go (the action event bus implements it).
pub trait ShadowSink: Send + Sync {
    /// One decision that would differ.
    fn shadow_difference(&self, event: &ShadowEvent<'_>);
}

/// The candidate policy set of a gateway. Cheap to clone.
#[derive(Clone)]
pub struct Shadow {
    candidate: Arc<PolicyStore>,
    differences: IntCounterVec,
    sink: Option<Arc<dyn ShadowSink>>,
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadow")
            .field("candidate", &self.candidate.dir())
            .finish()
    }
}

impl Shadow {
    /// The candidate in `candidate` (a hot-reloaded store: a candidate
    /// that stops compiling keeps its last good version), differences told
    /// to `sink` and counted in `registry`.
    pub fn new(
        candidate: Arc<PolicyStore>,
        sink: Option<Arc<dyn ShadowSink>>,
        registry: Option<&Registry>,
    ) -> Result<Shadow, prometheus::Error> {
        let differences = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_shadow_differences_total",
                "Decisions the candidate policy set (--shadow-policies) would make differently: \
                 kind tier (another tier) or rules (same tier, other deciding rules), with the \
                 deciding rules of each set.",
            ),
            &["kind", "active_rules", "candidate_rules"],
        )?;
        if let Some(r) = registry {
            r.register(Box::new(differences.clone()))?;
        }
        Ok(Shadow {
            candidate,
            differences,
            sink,
        })
    }

    /// Decides `action` with the candidate and compares with `active` (the
    /// policy's decision, before behavioural floors and quotas, which are
    /// state, not policy). Never changes what is enforced.
    pub fn observe(&self, action: &Action, active: &Decision, traceparent: Option<&str>) {
        let candidate = self.candidate.current();
        let Some(diff) = compare(active, &candidate, action) else {
            return;
        };
        self.differences
            .with_label_values(&[
                diff.kind(),
                &diff.active.rules.join(","),
                &diff.candidate.rules.join(","),
            ])
            .inc();
        if let Some(s) = &self.sink {
            s.shadow_difference(&ShadowEvent {
                agent_id: &action.agent.id,
                action,
                difference: &diff,
                candidate_version: &candidate.version().hash,
                traceparent,
            });
        }
    }

    /// Differences counted so far.
    pub fn differences(&self) -> u64 {
        use prometheus::core::Collector;
        self.differences
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }
}
