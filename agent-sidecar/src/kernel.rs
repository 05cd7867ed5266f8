//! Kernel enforcement: the eBPF programs attached to one agent's cgroup.
//!
//! Data flow: [`preflight`] checks the host, [`Enforcer::start`] creates the
//! agent's [`cgroup`], loads the embedded [`object`], writes the allowlist
//! into the maps ([`allowlist_maps`]), attaches and pins every program under
//! bpffs ([`pins`]) and hands the deny-event ring buffer to [`events`].

pub mod allowlist_maps;
pub mod cgroup;
mod enforcer;
mod error;
pub mod events;
pub mod limits;
mod lsm_guard;
pub mod object;
pub mod pins;
pub mod preflight;
pub mod sockets;

pub use enforcer::{Enforcer, EnforcerConfig, KernelCounters, teardown_agent};
pub use error::KernelError;
