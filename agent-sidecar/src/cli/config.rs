//! `agent-sidecar config ...`: check a config file, show the effective
//! config of `run` with where each value comes from, print the schema.

use std::{ffi::OsString, path::PathBuf};

use agent_sidecar::config::{self, LoadedFile};
use clap::Subcommand;

/// `config` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Check a config file: keys, value types and every value as its flag
    /// would take it. Exit 0 when it is valid, 1 with the errors.
    Check {
        /// The config file (YAML).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Show the effective config of `run` (AGENT_SIDECAR_* variables, the
    /// file, the defaults) and where each value comes from.
    Show {
        /// The config file [default: AGENT_SIDECAR_CONFIG when set].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the JSON Schema of the config file (docs/config.schema.json).
    Schema,
}

/// Runs a `config` subcommand of `cli` (the binary's command line);
/// returns the exit code.
pub(crate) fn run(cmd: ConfigCommand, cli: &clap::Command) -> i32 {
    match cmd {
        ConfigCommand::Check { file } => check(cli, &file),
        ConfigCommand::Show { config } => show(cli, config),
        ConfigCommand::Schema => {
            print!("{}", config::schema_text());
            0
        }
    }
}

/// `agent-sidecar run [--config FILE] -- true`: the command line `run`
/// would be given with no flags.
fn run_line(file: Option<&PathBuf>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["agent-sidecar".into(), "run".into()];
    if let Some(f) = file {
        argv.push("--config".into());
        argv.push(f.into());
    }
    argv.extend(["--".into(), "true".into()]);
    argv
}

fn check(cli: &clap::Command, file: &PathBuf) -> i32 {
    if let Err(e) = LoadedFile::load(file) {
        eprintln!("agent-sidecar: {e}");
        return 1;
    }
    // The file alone, without the variables of this shell.
    let resolved = match config::resolve(cli, "run", &run_line(Some(file)), &|_| None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agent-sidecar: {e}");
            return 1;
        }
    };
    // Flags that need each other (`ca-key` without `ca-cert`).
    if let Err(e) = cli.clone().try_get_matches_from(&resolved.argv) {
        let first = config::layers::clap_message(&e);
        eprintln!(
            "agent-sidecar: {}: {first}\n  help: keys are named like the flags; give the keys the message names together",
            file.display()
        );
        return 1;
    }
    let set = resolved
        .entries
        .iter()
        .filter(|e| e.source == config::Source::File)
        .count();
    println!("{}: ok ({set} keys set)", file.display());
    0
}

fn show(cli: &clap::Command, file: Option<PathBuf>) -> i32 {
    match config::resolve(cli, "run", &run_line(file.as_ref()), &|k| {
        std::env::var_os(k)
    }) {
        Ok(resolved) => {
            print!("{}", config::show(&resolved));
            0
        }
        Err(e) => {
            eprintln!("agent-sidecar: {e}");
            1
        }
    }
}
