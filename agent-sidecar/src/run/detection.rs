//! `run`'s behavioural detectors: a [`Detection`] on the action event bus
//! with the policy in force's `detection:` settings, baselines under
//! `--baseline-dir`, alerts to the SOC (webhook, syslog), and responses
//! that act on the gateway (minimum tier) and the kernel (quarantine).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::task::JoinHandle;
use tracing::info;

use super::RunError;
use crate::{
    approvals::WebhookNotifier,
    detect::{
        AlertSink, BaselineStore, Detection, DetectionMetrics, DetectionOptions, GatewayResponder,
        SyslogAlerts, SyslogConfig, SyslogTarget, WebhookAlerts,
    },
    events::{ActionSink, EventBus},
    gateway::Gateway,
    metrics::Metrics,
    policy::PolicyStore,
};

/// How often changed baselines are written.
const SAVE_EVERY: Duration = Duration::from_secs(60);
/// How often agents are checked for idleness (`detection.idle_after`).
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The detectors and their saving task.
pub(crate) struct DetectionServices {
    pub(crate) detection: Detection,
    saver: JoinHandle<()>,
    idle_watch: JoinHandle<()>,
}

/// One sink per syslog collector, each with its queue under
/// `<dir>/syslog-queue/<agent>/<n>`; `tls://` collectors are verified with
/// `tls` (the system roots and `--upstream-ca`).
pub(crate) fn syslog_sinks(
    targets: &[SyslogTarget],
    dir: &Path,
    agent_id: &str,
    tls: &Arc<rustls::ClientConfig>,
    metrics: &Arc<Metrics>,
) -> Result<Vec<Arc<dyn AlertSink>>, RunError> {
    let store = BaselineStore::new(dir.join("syslog-queue"));
    let base = store.agent_path(agent_id).with_extension("");
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut config = SyslogConfig::new(t.clone(), base.join(i.to_string()));
            config.tls = Some(tls.clone());
            config.metrics = Some((
                metrics.clone() as Arc<dyn DetectionMetrics>,
                agent_id.to_string(),
            ));
            info!(target: "agent_sidecar::detect", collector = %t, queue = %config.queue_dir.display(), "alerts to syslog");
            SyslogAlerts::spawn(config)
                .map(|s| Arc::new(s) as Arc<dyn AlertSink>)
                .map_err(|e| RunError::Gateway(e.to_string()))
        })
        .collect()
}

/// Starts the detectors of `gateway`'s agent on `events`.
pub(crate) fn start(
    baseline_dir: Option<PathBuf>,
    policy: Arc<PolicyStore>,
    events: &EventBus,
    gateway: &Gateway,
    soc: Option<Arc<WebhookNotifier>>,
    extra_sinks: Vec<Arc<dyn AlertSink>>,
    metrics: &Arc<Metrics>,
) -> DetectionServices {
    let mut sinks = extra_sinks;
    if let Some(soc) = soc {
        sinks.push(Arc::new(WebhookAlerts(soc)));
    }
    let detection = Detection::new(DetectionOptions {
        policy: Arc::new(move |id| policy.current().detection(id).clone()),
        store: baseline_dir.clone().map(BaselineStore::new),
        sinks,
        responder: Some(Arc::new(GatewayResponder(gateway.clone()))),
        clock: None,
    });
    detection.set_bus(events.clone());
    detection.set_metrics(metrics.clone());
    detection.preload(gateway.agent_id());
    let (learned, n) = detection
        .with_state(gateway.agent_id(), |s| {
            (s.baseline().learned(), s.baseline().events())
        })
        .unwrap_or_default();
    info!(
        target: "agent_sidecar::detect",
        agent = gateway.agent_id(),
        baselines = %baseline_dir.as_ref().map_or("(memory only)".into(), |d| d.display().to_string()),
        learned,
        events = n,
        "behavioural detectors ready"
    );
    metrics.baseline_learned(gateway.agent_id(), learned);
    events.add(Arc::new(detection.clone()) as Arc<dyn ActionSink>);
    let saver = detection.spawn_saver(SAVE_EVERY);
    let idle_watch = detection.spawn_idle_watch(IDLE_CHECK_EVERY);
    DetectionServices {
        detection,
        saver,
        idle_watch,
    }
}

impl DetectionServices {
    /// Stops saving, closes the open alerts and writes the baselines.
    pub(crate) async fn shutdown(self) {
        self.saver.abort();
        self.idle_watch.abort();
        let d = self.detection;
        let _ = tokio::task::spawn_blocking(move || d.close()).await;
    }
}
