//! `run`'s kill switches: the fleet-controls file (`--fleet-controls`)
//! and the switches tripped on this sidecar, acting on the gateway (when
//! one runs) and the kernel.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use tokio::task::JoinHandle;

use super::RunError;
use crate::{
    events::EventBus,
    fleet::{FleetIdentity, KillSwitches, Stopper},
    gateway::Gateway,
    kernel::Enforcer,
};

/// How often the fleet-controls file is read again: well inside the
/// 1 s the documentation promises from a trip to its enforcement.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Stops the agent in the gateway (which quarantines the kernel and
/// cancels held approvals) or, without a gateway, in the kernel alone.
pub(crate) struct RunStopper {
    pub(crate) gateway: Option<Gateway>,
    pub(crate) enforcer: Weak<Mutex<Enforcer>>,
}

impl RunStopper {
    fn kernel(&self, on: bool) -> Result<(), String> {
        let Some(e) = self.enforcer.upgrade() else {
            return Err("the enforcement is gone".into());
        };
        let mut e = e.lock().unwrap_or_else(PoisonError::into_inner);
        e.set_quarantine(on).map_err(|e| e.to_string())
    }
}

impl Stopper for RunStopper {
    fn stopped(&self) -> bool {
        match &self.gateway {
            Some(g) => g.quarantined(),
            None => self.enforcer.upgrade().is_some_and(|e| {
                e.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .quarantined()
            }),
        }
    }

    fn stop(&self, reason: &str) {
        match &self.gateway {
            Some(g) => g.quarantine_now(reason),
            None => {
                if let Err(e) = self.kernel(true) {
                    tracing::error!(target: "agent_sidecar::fleet", error = %e, "kill switch: the kernel quarantine failed");
                }
            }
        }
    }

    fn resume(&self, by: &str, reason: &str) -> Result<(), String> {
        match &self.gateway {
            Some(g) => g.release_quarantine(by, reason),
            None => self.kernel(false),
        }
    }
}

/// The kill switches and the task that follows the file.
pub(crate) struct KillSwitchService {
    pub(crate) switches: KillSwitches,
    watch: JoinHandle<()>,
}

impl KillSwitchService {
    /// Opens the switches (stopping the agent at once if one covers it)
    /// and follows the file.
    pub(crate) fn start(
        identity: FleetIdentity,
        file: Option<PathBuf>,
        state_dir: PathBuf,
        stopper: RunStopper,
        events: &EventBus,
    ) -> Result<Self, RunError> {
        let switches = KillSwitches::open(
            identity,
            file,
            Some(&state_dir),
            Arc::new(stopper),
            Arc::new(events.clone()),
        )
        .map_err(|e| RunError::FleetControls(e.to_string()))?;
        let watch = switches.spawn_watch(WATCH_EVERY);
        Ok(KillSwitchService { switches, watch })
    }

    /// Stops following the file.
    pub(crate) fn stop(self) {
        self.watch.abort();
    }
}
