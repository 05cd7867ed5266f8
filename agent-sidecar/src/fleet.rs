//! Fleet controls: what a control plane, or one operator, does to many
//! sidecars at once. A **kill switch** names a scope (one agent, an
//! instance, a team, a role, an environment, the whole fleet); every
//! sidecar whose agent is in scope stops it: the gateway refuses every
//! call, the kernel drops every packet and the agent's open sockets are
//! destroyed, its held approvals are cancelled. Switches come from a
//! watched fleet-controls file that every sidecar follows (so a control
//! plane that cannot reach each pod can still stop all of them) or are
//! tripped on one sidecar through its admin API (kept in its state
//! directory across restarts). See `docs/killswitch.md`.

mod controls;
mod identity;
mod killswitch;

pub use controls::{Controls, ControlsError, KillSwitch, Scope};
pub use identity::FleetIdentity;
pub use killswitch::{
    KillSwitchEvent, KillSwitchSink, KillSwitchStep, KillSwitches, LocalError, Stopper,
    SwitchSource, SwitchView,
};

#[cfg(test)]
mod tests;
