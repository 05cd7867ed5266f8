//! `run`'s kernel enforcement of one agent: attach the programs to the
//! agent's cgroup, start the action event bus and feed it the kernel's
//! deny events; at the end, drain the last events and tear down (or keep)
//! the pinned state.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::oneshot, task::JoinHandle};
use tracing::{info, warn};

use super::{RunError, RunOptions, egress_plan::EgressPlan, listeners::OperatorListeners};
use crate::{
    events::EventBus,
    kernel::{Enforcer, EnforcerConfig, events as kernel_events},
    metrics::Metrics,
};

/// The agent's attached enforcement and the tasks that read it.
pub(crate) struct Enforcement {
    /// Shared with the name services (learned addresses, quarantine).
    pub(crate) enforcer: Arc<Mutex<Enforcer>>,
    /// Every action event goes here (kernel refusals, DNS and proxy
    /// decisions, tool calls): the log and the metrics consume it, the
    /// gateway's webhooks join when the gateway starts.
    pub(crate) events: EventBus,
    stop_events: oneshot::Sender<()>,
    events_task: Option<JoinHandle<()>>,
    logger_task: Option<JoinHandle<()>>,
}

impl Enforcement {
    /// Attaches `plan`'s allowlist to a new cgroup for `agent_id`, keeping
    /// the agent off the operator listeners.
    pub(crate) fn start(
        opts: &RunOptions,
        agent_id: &str,
        plan: &EgressPlan,
        listeners: &OperatorListeners,
        metrics: &Arc<Metrics>,
        events: EventBus,
    ) -> Result<Self, RunError> {
        // A pod's replicas share the agent id, never their pins.
        let pin_id = opts
            .pod
            .as_ref()
            .map_or(agent_id, |p| p.instance_id.as_str());
        let config = EnforcerConfig {
            agent_id: pin_id.to_string(),
            bpffs: opts.bpffs.clone(),
            mount_bpffs: opts.mount_bpffs,
            state_dir: opts.state_dir.clone(),
            cgroup: opts.cgroup.clone(),
            private_listeners: listeners.private.iter().map(|l| l.addr).collect(),
            exempt_cgroups: opts.exempt_cgroups.clone(),
        };
        let mut enforcer = Enforcer::start(&config, &plan.allowlist)?;
        metrics.set_allowlist_entries(agent_id, enforcer.allowlist_entries());
        // Deny events -> the bus, until told to drain and stop.
        let (stop_events, stopped) = oneshot::channel::<()>();
        let events_task = enforcer.take_events().map(|ring| {
            let events = events.clone();
            let agent_id = agent_id.to_string();
            tokio::spawn(async move {
                let mut sink = |r: kernel_events::DenyRecord| events.kernel_deny(&agent_id, &r);
                kernel_events::consume(ring, &mut sink, stopped).await;
            })
        });
        let logger_task = enforcer
            .take_logger()
            .map(|logger| tokio::spawn(flush_ebpf_logs(logger)));
        Ok(Enforcement {
            enforcer: Arc::new(Mutex::new(enforcer)),
            events,
            stop_events,
            events_task,
            logger_task,
        })
    }

    /// Drains the last events, then tears down (or, with `keep_pinned`,
    /// keeps) the pinned state.
    pub(crate) async fn finish(
        self,
        metrics: &Metrics,
        agent_id: &str,
        keep_pinned: bool,
    ) -> Result<(), RunError> {
        let Enforcement {
            enforcer,
            events: _,
            stop_events,
            events_task,
            logger_task,
        } = self;
        if let Some(task) = logger_task {
            task.abort();
            let _ = task.await;
        }
        let _ = stop_events.send(());
        if let Some(t) = events_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        let counters = enforcer.lock().expect("enforcer lock").counters();
        metrics.observe_kernel(agent_id, counters);
        if counters.events_lost > 0 {
            warn!(
                agent_id,
                lost = counters.events_lost,
                "deny events were lost: the ring buffer was full"
            );
        }
        info!(
            agent_id,
            allowed = counters.allowed,
            denied = counters.denied,
            skb_dropped = counters.skb_dropped,
            "kernel enforcement summary"
        );
        // Helpers hold the enforcer weakly and upgrade it for a moment (a
        // learned address, a quarantine): wait for them briefly.
        let mut enforcer = enforcer;
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let enforcer = loop {
            match Arc::try_unwrap(enforcer) {
                Ok(m) => break m.into_inner().expect("enforcer lock"),
                Err(shared) if std::time::Instant::now() < deadline => {
                    enforcer = shared;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => {
                    warn!(agent_id, "enforcement still referenced; leaving it pinned");
                    return Ok(());
                }
            }
        };
        if keep_pinned {
            let dir = enforcer.layout().agent_dir();
            info!(agent_id, pins = %dir.display(), "keeping pinned enforcement; remove it with `agent-sidecar teardown --agent-id {agent_id}`");
            drop(enforcer);
            return Ok(());
        }
        enforcer.teardown()?;
        info!(agent_id, "kernel enforcement removed");
        Ok(())
    }
}

async fn flush_ebpf_logs(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    let Ok(mut fd) = kernel_events::watch(logger) else {
        return;
    };
    while let Ok(mut guard) = fd.readable_mut().await {
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
