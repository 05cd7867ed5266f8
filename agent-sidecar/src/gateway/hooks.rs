//! What the gateway asks of the rest of the sidecar: to quarantine the
//! agent in the kernel ([`Quarantine`]). Telling people is a consumer of
//! the gateway's events ([`crate::events::Notices`]).

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

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
///
/// Engaging it refuses every later call at once; the kernel side is applied
/// once the refusal that caused it has been handed to the agent's
/// connection ([`QuarantineSwitch::apply_kernel`]), so the agent learns why
/// before its packets stop.
#[derive(Clone)]
pub struct QuarantineSwitch {
    on: Arc<AtomicBool>,
    pending: Arc<Mutex<Option<String>>>,
    kernel: Arc<dyn Quarantine>,
}

impl QuarantineSwitch {
    /// Starts released.
    pub fn new(kernel: Arc<dyn Quarantine>) -> Self {
        Self {
            on: Arc::new(AtomicBool::new(false)),
            pending: Arc::new(Mutex::new(None)),
            kernel,
        }
    }

    /// True while quarantined.
    pub fn active(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Quarantines in the gateway now; the kernel quarantine waits for
    /// [`apply_kernel`](Self::apply_kernel).
    pub fn engage(&self, reason: &str) {
        self.on.store(true, Ordering::Release);
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.to_string());
    }

    /// Whether a kernel quarantine waits to be applied.
    pub fn kernel_pending(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Applies a pending kernel quarantine (once). A kernel failure is
    /// logged: the gateway keeps refusing every call of the agent.
    pub fn apply_kernel(&self) {
        let reason = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(reason) = reason else { return };
        if let Err(e) = self.kernel.quarantine(&reason) {
            tracing::error!(error = %e, "kernel quarantine failed; the gateway refuses every call of the agent");
        }
    }

    /// Releases (operator action through the admin API).
    pub fn release(&self) -> Result<(), String> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.kernel.release()?;
        self.on.store(false, Ordering::Release);
        Ok(())
    }
}
