//! One way to configure the sidecar: flags, `AGENT_SIDECAR_*` environment
//! variables and a YAML config file, with one precedence (flag > env >
//! file > default), shared by every subcommand that runs a sidecar.
//!
//! The flags ([`args`]) are the one definition: every long flag `--x-y`
//! of `run` is the file key `x-y` and the variable `AGENT_SIDECAR_X_Y`
//! ([`keys`]). The file ([`file`]) is checked against the schema of
//! [`ConfigFile`] (unknown keys refused with the nearest valid one), then
//! every value against the flag's own parser ([`layers`]), so that a value
//! means the same wherever it is written. [`layers::resolve`] merges the
//! layers into the argument list the flags are finally parsed from, and
//! says where each value came from (`config show`).

pub mod args;
mod error;
pub mod file;
pub mod keys;
pub mod layers;
mod positions;
mod suggest;

pub use args::{GatewayArgs, PinArgs, RunArgs, ServeArgs, SidecarArgs};
pub use error::ConfigError;
pub use file::{ConfigFile, LoadedFile, schema, schema_text};
pub use keys::{Key, KeyKind, env_name, keys};
pub use layers::{Entry, Resolved, Source, resolve, show};

#[cfg(test)]
mod tests;
