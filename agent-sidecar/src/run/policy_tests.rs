//! Continuous governance tests: the policy fixtures of `--policy-fixtures`
//! run against the set in force at every load and reload and every 5
//! minutes. Results are metrics; a failing run is a warning and an action
//! event (`policy_fixtures_failed` audit record). It never changes what is
//! enforced, nor the sidecar's readiness: the set in force is still the
//! one the security team shipped, and a mismatch is theirs to resolve.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::task::JoinHandle;

use crate::{
    events::{ActionEvent, EventBus, PolicyEvent},
    policy::{PolicyStore, fixtures},
};

/// How often the fixtures run between loads.
pub(crate) const EVERY: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct FixtureMetrics {
    scenarios: IntGaugeVec,
    runs: IntCounterVec,
    last_run: IntGauge,
}

impl FixtureMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let scenarios = IntGaugeVec::new(
            Opts::new(
                "agent_sidecar_policy_fixtures",
                "Scenarios of --policy-fixtures at the last run against the policy set in force, \
                 by result (passed, failed: a different decision or a scenario that could not run).",
            ),
            &["result"],
        )?;
        let runs = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_policy_fixture_runs_total",
                "Runs of --policy-fixtures against the set in force (at each load and every 5 min), \
                 by result (ok, failed).",
            ),
            &["result"],
        )?;
        let last_run = IntGauge::new(
            "agent_sidecar_policy_fixtures_last_run_timestamp_seconds",
            "When --policy-fixtures last ran (Unix seconds).",
        )?;
        registry.register(Box::new(scenarios.clone()))?;
        registry.register(Box::new(runs.clone()))?;
        registry.register(Box::new(last_run.clone()))?;
        Ok(FixtureMetrics {
            scenarios,
            runs,
            last_run,
        })
    }
}

/// Runs the fixtures once against the set in force; returns whether they
/// all passed.
fn run_once(
    store: &PolicyStore,
    path: &std::path::Path,
    agent_id: &str,
    metrics: &FixtureMetrics,
    events: &EventBus,
) -> bool {
    let set = store.current();
    let report = fixtures::run_fixtures(&set, path);
    let failed = report.failures.len() + report.errors.len();
    metrics
        .scenarios
        .with_label_values(&["passed"])
        .set(i64::try_from(report.passed).unwrap_or(i64::MAX));
    metrics
        .scenarios
        .with_label_values(&["failed"])
        .set(i64::try_from(failed).unwrap_or(i64::MAX));
    metrics.last_run.set(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    );
    let ok = report.ok();
    metrics
        .runs
        .with_label_values(&[if ok { "ok" } else { "failed" }])
        .inc();
    if ok {
        tracing::info!(target: "agent_sidecar::policy", version = %set.version(), passed = report.passed, "policy fixtures passed against the set in force");
        return true;
    }
    let mut lines: Vec<String> = report
        .failures
        .iter()
        .map(|f| {
            format!(
                "{} (expected {}, decided {})",
                f.name, f.expected.tier, f.actual.tier
            )
        })
        .collect();
    lines.extend(report.errors.iter().map(|e| e.message.clone()));
    if report.passed + failed == 0 {
        lines.push(format!("no scenario in {}", path.display()));
    }
    let reason = format!(
        "{failed} of {} policy fixture scenarios failed against the set in force: {}",
        report.passed + failed,
        lines.join("; ")
    );
    tracing::warn!(target: "agent_sidecar::policy", version = %set.version(), "{reason}");
    events.emit(ActionEvent::Policy(PolicyEvent {
        agent_id,
        result: "fixtures_failed",
        version: Some(set.version()),
        reason: Some(&reason),
    }));
    false
}

/// Starts the runs: now, at every change of the set in force, and every
/// [`EVERY`].
pub(crate) fn start(
    store: Arc<PolicyStore>,
    path: PathBuf,
    agent_id: String,
    registry: &Registry,
    events: EventBus,
) -> Result<JoinHandle<()>, prometheus::Error> {
    let metrics = FixtureMetrics::new(registry)?;
    let mut changes = store.subscribe();
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            let (s, p, a, m, e) = (
                store.clone(),
                path.clone(),
                agent_id.clone(),
                metrics.clone(),
                events.clone(),
            );
            let _ = tokio::task::spawn_blocking(move || run_once(&s, &p, &a, &m, &e)).await;
            tokio::select! {
                _ = tick.tick() => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{events::ActionSink, policy::StoreOptions};

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl ActionSink for Seen {
        fn consume(&self, event: ActionEvent<'_>) {
            if let ActionEvent::Policy(p) = event {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", p.result, p.reason.unwrap_or("")));
            }
        }
    }

    #[test]
    fn the_fixtures_run_against_the_set_in_force_and_a_failure_is_an_event() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
        let store = PolicyStore::open(&root, StoreOptions::default(), None).unwrap();
        let registry = Registry::new();
        let metrics = FixtureMetrics::new(&registry).unwrap();
        let seen = Arc::new(Seen::default());
        let events = EventBus::new(vec![seen.clone() as Arc<dyn ActionSink>]);
        assert!(run_once(
            &store,
            &root.join("tests"),
            "a",
            &metrics,
            &events
        ));
        let passed = metrics.scenarios.with_label_values(&["passed"]).get();
        assert!(passed > 5, "{passed}");
        assert_eq!(metrics.scenarios.with_label_values(&["failed"]).get(), 0);
        assert!(metrics.last_run.get() > 0);
        assert!(seen.0.lock().unwrap().is_empty());

        let dir = tempfile::tempdir().unwrap();
        let wrong = dir.path().join("wrong.yaml");
        std::fs::write(
            &wrong,
            "scenarios:\n  - name: a lookup is denied\n    action:\n      agent: support-agent\n      environment: prod\n      mcp: { server: crm, tool: get_customer, arguments: { id: \"c-19\" } }\n    expect:\n      tier: deny\n",
        )
        .unwrap();
        assert!(!run_once(&store, &wrong, "a", &metrics, &events));
        assert_eq!(metrics.scenarios.with_label_values(&["failed"]).get(), 1);
        assert_eq!(metrics.runs.with_label_values(&["failed"]).get(), 1);
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].starts_with("fixtures_failed 1 of 1 policy fixture scenarios failed")
                && seen[0]
                    .contains("a lookup is denied (expected deny, decided tier 1 (autonomous))"),
            "{seen:?}"
        );
    }
}
