//! The keys: one per long flag of `run` (and the global `--log`,
//! `--log-format`), read from the clap definition so that a new flag is a
//! new key and a new variable without another list to keep.

use clap::{ArgAction, Command};

/// How a key takes values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A switch: `true` or `false`.
    Switch,
    /// One value.
    One,
    /// A list (the flag is repeatable).
    Many,
}

/// One key of the config.
#[derive(Clone, Debug)]
pub struct Key {
    /// The flag's name without `--`: the file key.
    pub name: String,
    /// The clap id of the flag.
    pub id: String,
    /// How it takes values.
    pub kind: KeyKind,
    /// The flag's default values, as text.
    pub default: Vec<String>,
}

/// Flags of `run` that are not keys: the file itself and help.
const NOT_KEYS: &[&str] = &["config", "help", "version"];

/// `AGENT_SIDECAR_X_Y` for key `x-y`.
pub fn env_name(key: &str) -> String {
    format!(
        "AGENT_SIDECAR_{}",
        key.to_ascii_uppercase().replace('-', "_")
    )
}

/// The keys of `run` (a built command, so that global flags are there).
pub fn keys(run: &Command) -> Vec<Key> {
    run.get_arguments()
        .filter_map(|arg| {
            let name = arg.get_long()?;
            if NOT_KEYS.contains(&name) {
                return None;
            }
            let kind = match arg.get_action() {
                ArgAction::SetTrue | ArgAction::SetFalse => KeyKind::Switch,
                ArgAction::Append => KeyKind::Many,
                _ => KeyKind::One,
            };
            Some(Key {
                name: name.to_string(),
                id: arg.get_id().to_string(),
                kind,
                default: arg
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect(),
            })
        })
        .collect()
}
