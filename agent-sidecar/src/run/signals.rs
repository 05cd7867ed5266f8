//! Forwards the signals `run` receives to the agent.
//!
//! The agent stays in `run`'s process group so terminal job control works;
//! a signal the terminal sent to the whole group (Ctrl-C, Ctrl-\) already
//! reached the agent and is not sent twice.

use std::thread::JoinHandle;

use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH},
    iterator::{Handle, SignalsInfo, exfiltrator::WithOrigin},
    low_level::siginfo::Cause,
};

/// Signals forwarded to the agent.
pub const FORWARDED: [i32; 7] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH];

/// A running forwarder; stops when dropped.
pub struct Forwarder {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Starts forwarding to `pid`.
    pub fn start(pid: u32) -> std::io::Result<Self> {
        let mut signals = SignalsInfo::<WithOrigin>::new(FORWARDED)?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("signal-forwarder".into())
            .spawn(move || {
                for origin in signals.forever() {
                    if matches!(origin.cause, Cause::Kernel) {
                        // From the terminal to the whole foreground group: the agent got it too.
                        continue;
                    }
                    tracing::debug!(
                        signal = origin.signal,
                        pid,
                        "forwarding signal to the agent"
                    );
                    // SAFETY: plain kill(2).
                    unsafe { libc::kill(pid as i32, origin.signal) };
                }
            })?;
        Ok(Self {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
