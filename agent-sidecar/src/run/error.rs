//! [`RunError`]: why `run` could not start or finish the command, and the
//! exit codes `run` reports.

use super::{env::EnvError, sandbox, uid_pool::UidPoolError};
use crate::{
    kernel::{KernelError, limits::LimitsError},
    policy::PolicyError,
};

/// Exit code when `run` itself fails before the command starts.
pub const EXIT_SIDECAR_FAILED: i32 = 125;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Why `run` could not start or finish the command.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A policy file is unusable.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Kernel enforcement failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The command could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// The error.
        source: std::io::Error,
        /// Exit code to report.
        code: i32,
    },
    /// Other I/O failure.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    /// The name-based egress services could not start.
    #[error("name-based egress: {0}")]
    Names(String),
    /// The tool gateway could not start.
    #[error("tool gateway: {0}")]
    Gateway(String),
    /// The kill switches could not be read (fail closed: the agent does
    /// not start without knowing them).
    #[error("fleet controls: {0}")]
    FleetControls(String),
    /// The audit trail could not start.
    #[error("audit trail: {0}")]
    Audit(String),
    /// A rule would let the agent reach one of the sidecar's own listeners.
    #[error("{0}")]
    PrivateListener(String),
    /// The agent's environment is refused.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// No uid could be allocated for the agent.
    #[error(transparent)]
    Uid(#[from] UidPoolError),
    /// The agent's resource limits could not be set.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// `serve` could not find or govern its pod.
    #[error("serve: {0}")]
    Serve(String),
    /// The agent's seccomp filter or Landlock scopes could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
}

impl RunError {
    /// The exit code `run` reports for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Spawn { code, .. } => *code,
            _ => EXIT_SIDECAR_FAILED,
        }
    }
}
