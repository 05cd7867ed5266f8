//! What the gateway asks of the rest of the sidecar: to quarantine the
//! agent in the kernel ([`Quarantine`]) and to tell people ([`Alerts`]).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use serde_json::Value;

use crate::approvals::WebhookNotifier;

/// Switches the agent's kernel allowlist to deny-all and back.
pub trait Quarantine: Send + Sync {
    /// Quarantines the agent. An error means the kernel did not take it:
    /// the gateway still refuses every request of the agent.
    fn quarantine(&self, reason: &str) -> Result<(), String>;
    /// Releases the quarantine.
    fn release(&self) -> Result<(), String>;
}

/// A quarantine with no kernel behind it (library use and tests): only the
/// gateway's own refusal applies.
#[derive(Debug, Default)]
pub struct NoKernel;

impl Quarantine for NoKernel {
    fn quarantine(&self, _reason: &str) -> Result<(), String> {
        Ok(())
    }
    fn release(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The quarantine state the gateway checks on every request.
#[derive(Clone)]
pub struct QuarantineSwitch {
    on: Arc<AtomicBool>,
    kernel: Arc<dyn Quarantine>,
}

impl QuarantineSwitch {
    /// Starts released.
    pub fn new(kernel: Arc<dyn Quarantine>) -> Self {
        Self {
            on: Arc::new(AtomicBool::new(false)),
            kernel,
        }
    }

    /// True while quarantined.
    pub fn active(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Quarantines (idempotent). Returns the kernel's error, if any; the
    /// gateway side is on either way.
    pub fn engage(&self, reason: &str) -> Result<(), String> {
        self.on.store(true, Ordering::Release);
        self.kernel.quarantine(reason)
    }

    /// Releases (operator action through the admin API).
    pub fn release(&self) -> Result<(), String> {
        self.kernel.release()?;
        self.on.store(false, Ordering::Release);
        Ok(())
    }
}

/// Who hears about supervised actions, halts and quarantines.
#[derive(Clone, Default)]
pub struct Alerts {
    /// The agent's owner: tier-2 notices (with the reversal window), tier-4
    /// halts.
    pub owner: Option<Arc<WebhookNotifier>>,
    /// The security operations centre: tier-4 halts and quarantines.
    pub soc: Option<Arc<WebhookNotifier>>,
}

impl Alerts {
    /// Sends `event` to the owner. Never waits.
    pub fn owner(&self, event: &Value) {
        if let Some(w) = &self.owner {
            w.post(event);
        }
    }

    /// Sends `event` to the SOC. Never waits.
    pub fn soc(&self, event: &Value) {
        if let Some(w) = &self.soc {
            w.post(event);
        }
    }
}
