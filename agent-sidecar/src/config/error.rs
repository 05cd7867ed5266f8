//! [`ConfigError`]: what is wrong with a config file or variable, where,
//! and how to fix it.

use std::path::PathBuf;

/// A config file or variable that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A value of the file is wrong.
    #[error("{path}{at}: {message}\n  help: {help}")]
    File {
        /// The file.
        path: PathBuf,
        /// `:line:column`, when known.
        at: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },
    /// An `AGENT_SIDECAR_*` variable is wrong.
    #[error("environment variable {name}: {message}\n  help: {help}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },
    /// The layers together do not make a valid command line (a flag that
    /// needs another, two that exclude each other).
    #[error("{0}")]
    Combined(String),
}

impl ConfigError {
    pub(super) fn file(
        path: &std::path::Path,
        line: u32,
        column: u32,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        ConfigError::File {
            path: path.to_path_buf(),
            at: if line > 0 {
                format!(":{line}:{column}")
            } else {
                String::new()
            },
            message: message.into(),
            help: help.into(),
        }
    }
}
