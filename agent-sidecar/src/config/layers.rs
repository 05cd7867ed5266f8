//! The precedence: a flag given on the command line wins over its
//! `AGENT_SIDECAR_*` variable, which wins over the config file, which wins
//! over the flag's default. A list is taken whole from the layer that
//! gives it (a variable's list replaces the file's).
//!
//! [`resolve`] reads the command line once to find the subcommand, the
//! config file and which flags were given, checks every value of the
//! variables and the file with the flag's own parser (errors say where),
//! and returns the command line to parse: the given one with `--key=value`
//! added for what the variables and the file set.

use std::{
    ffi::{OsStr, OsString},
    path::PathBuf,
};

use clap::{ArgMatches, Command, parser::ValueSource};

use super::{
    ConfigError,
    file::{FileValue, LoadedFile},
    keys::{Key, KeyKind, env_name, keys},
};
use crate::yaml;

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The command line.
    Flag,
    /// An `AGENT_SIDECAR_*` variable.
    Env,
    /// The config file.
    File,
    /// The flag's default.
    Default,
    /// Not set anywhere (the option is off).
    Unset,
}

impl Source {
    /// `flag`, `env`, `file`, `default` or `unset`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
            Source::Unset => "unset",
        }
    }
}

/// One key's effective value.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The key.
    pub key: Key,
    /// Its values as text (`true`/`false` for a switch).
    pub values: Vec<String>,
    /// Where they came from.
    pub source: Source,
}

/// The layers merged.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The command line to parse (the given one when no subcommand that
    /// reads the config is on it).
    pub argv: Vec<OsString>,
    /// The config file, when one was named.
    pub file: Option<PathBuf>,
    /// Every key of the subcommand, in the order of its flags.
    pub entries: Vec<Entry>,
}

/// Merges flags, variables (read with `env`) and the config file for the
/// subcommand `sub` of `cli` (e.g. `run`) on `argv`. When `argv` does not
/// name `sub`, it is returned unchanged with no entries.
pub fn resolve(
    cli: &Command,
    sub: &str,
    argv: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Resolved, ConfigError> {
    let mut cli = cli.clone();
    cli.build();
    let unchanged = Resolved {
        argv: argv.to_vec(),
        file: None,
        entries: Vec::new(),
    };
    // Errors (a flag that needs one the file gives) are the final
    // parse's to report: this one only finds what was given.
    let Ok(matches) = cli.clone().ignore_errors(true).try_get_matches_from(argv) else {
        return Ok(unchanged);
    };
    let Some(given) = matches.subcommand_matches(sub) else {
        return Ok(unchanged);
    };
    let Some(cmd) = cli.find_subcommand(sub) else {
        return Ok(unchanged);
    };
    let file_path = given.get_one::<PathBuf>("config").cloned().or_else(|| {
        env(&env_name("config"))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let file = file_path.as_deref().map(LoadedFile::load).transpose()?;
    let mut entries = Vec::new();
    let mut added: Vec<OsString> = Vec::new();
    for key in keys(cmd) {
        let entry = layer(cmd, &key, given, env, file.as_ref())?;
        if matches!(entry.source, Source::Env | Source::File) {
            match key.kind {
                KeyKind::Switch => {
                    if entry.values.first().is_some_and(|v| v == "true") {
                        added.push(format!("--{}", key.name).into());
                    }
                }
                _ => {
                    for v in &entry.values {
                        added.push(format!("--{}={v}", key.name).into());
                    }
                }
            }
        }
        entries.push(entry);
    }
    Ok(Resolved {
        argv: insert_before_command(argv, added),
        file: file_path,
        entries,
    })
}

/// The given arguments with `added` before the agent's command (the
/// first bare `--`), or at the end.
fn insert_before_command(argv: &[OsString], added: Vec<OsString>) -> Vec<OsString> {
    let at = argv
        .iter()
        .position(|a| a == OsStr::new("--"))
        .unwrap_or(argv.len());
    let mut out = argv[..at].to_vec();
    out.extend(added);
    out.extend_from_slice(&argv[at..]);
    out
}

/// The value of one key and where it came from.
fn layer(
    cmd: &Command,
    key: &Key,
    given: &ArgMatches,
    env: &dyn Fn(&str) -> Option<OsString>,
    file: Option<&LoadedFile>,
) -> Result<Entry, ConfigError> {
    let entry = |values: Vec<String>, source| Entry {
        key: key.clone(),
        values,
        source,
    };
    if given.value_source(&key.id) == Some(ValueSource::CommandLine) {
        let values = match key.kind {
            KeyKind::Switch => vec!["true".to_string()],
            _ => given
                .get_raw(&key.id)
                .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default(),
        };
        return Ok(entry(values, Source::Flag));
    }
    let var = env_name(&key.name);
    if let Some(raw) = env(&var) {
        let text = raw.into_string().map_err(|_| ConfigError::Env {
            name: var.clone(),
            message: "not valid UTF-8".into(),
            help: "give the value as UTF-8 text".into(),
        })?;
        let values = env_values(key, &var, &text)?;
        for v in &values {
            check(cmd, key, v).map_err(|message| ConfigError::Env {
                name: var.clone(),
                message,
                help: format!(
                    "give a value `--{}` accepts (see `agent-sidecar run --help`)",
                    key.name
                ),
            })?;
        }
        return Ok(entry(values, Source::Env));
    }
    if let Some(file) = file
        && let Some(value) = file.values.get(&key.name)
    {
        let values = match (value, key.kind) {
            (FileValue::Switch(b), KeyKind::Switch) => vec![b.to_string()],
            (FileValue::Texts(texts), KeyKind::Many) => texts.clone(),
            (FileValue::Texts(texts), KeyKind::One) if texts.len() == 1 => texts.clone(),
            _ => {
                let (line, column) = file.position(&key.name, None);
                return Err(ConfigError::file(
                    &file.path,
                    line,
                    column,
                    format!("`{}` has a value of the wrong kind", key.name),
                    kind_help(key),
                ));
            }
        };
        for (i, v) in values.iter().enumerate() {
            check(cmd, key, v).map_err(|message| {
                let index = (key.kind == KeyKind::Many).then_some(i);
                let (line, column) = file.position(&key.name, index);
                ConfigError::file(
                    &file.path,
                    line,
                    column,
                    message,
                    format!(
                        "give a value `--{}` accepts (see docs/config.md and `agent-sidecar run --help`)",
                        key.name
                    ),
                )
            })?;
        }
        return Ok(entry(values, Source::File));
    }
    match (given.value_source(&key.id), key.kind) {
        (Some(ValueSource::DefaultValue), _) | (_, KeyKind::Switch) if !key.default.is_empty() => {
            Ok(entry(key.default.clone(), Source::Default))
        }
        _ => Ok(entry(Vec::new(), Source::Unset)),
    }
}

fn kind_help(key: &Key) -> String {
    match key.kind {
        KeyKind::Switch => "write `true` or `false`".into(),
        KeyKind::One => "write one value".into(),
        KeyKind::Many => "write a list (`[a, b]` or one `- item` per line)".into(),
    }
}

/// A variable's values: `true`/`false` for a switch; for a list, a YAML
/// flow list (`[a, b]`) or one value; else the text as it is.
fn env_values(key: &Key, var: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    let err = |message: String| ConfigError::Env {
        name: var.to_string(),
        message,
        help: kind_help(key),
    };
    match key.kind {
        KeyKind::Switch => match text.trim() {
            "true" => Ok(vec!["true".into()]),
            "false" => Ok(vec!["false".into()]),
            other => Err(err(format!("`{other}` is not a switch value"))),
        },
        KeyKind::Many if text.trim_start().starts_with('[') => {
            let items: Vec<super::file::Text> = yaml::from_str(text)
                .map_err(|e| err(format!("not a list: {} (column {})", e.message, e.column)))?;
            Ok(items
                .into_iter()
                .map(|t| match t {
                    super::file::Text::Number(n) => n.to_string(),
                    super::file::Text::Text(s) => s,
                })
                .collect())
        }
        _ => Ok(vec![text.to_string()]),
    }
}

/// Checks one value with the flag's own parser (split as the flag splits
/// it); the error as the flag would say it.
fn check(cmd: &Command, key: &Key, value: &str) -> Result<(), String> {
    let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == key.id.as_str()) else {
        return Ok(());
    };
    if key.kind == KeyKind::Switch {
        return Ok(());
    }
    // The flag alone, with its parser and delimiter (without what it
    // needs from other flags: the final parse checks that).
    let mut alone = clap::Arg::new("value")
        .long("value")
        .action(clap::ArgAction::Append)
        .value_parser(arg.get_value_parser().clone());
    if let Some(d) = arg.get_value_delimiter() {
        alone = alone.value_delimiter(d);
    }
    clap::Command::new("value")
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from([format!("--value={value}")])
        .map(|_| ())
        .map_err(|e| clap_message(&e).replace("'--value <value>'", &format!("`{}`", key.name)))
}

/// A clap error's message on one line, without `error: `, the usage and
/// the pointer to `--help`.
pub fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let one = lines.join(" ");
    one.strip_prefix("error: ").unwrap_or(&one).to_string()
}

/// What `config show` prints: one line per key, `key: value  # source`.
pub fn show(resolved: &Resolved) -> String {
    let mut out = String::new();
    if let Some(f) = &resolved.file {
        out.push_str(&format!("# config file: {}\n", f.display()));
    }
    let width = resolved
        .entries
        .iter()
        .map(|e| e.key.name.len())
        .max()
        .unwrap_or(0);
    for e in &resolved.entries {
        let value = match (e.key.kind, e.values.as_slice()) {
            (_, []) => "~".to_string(),
            (KeyKind::Many, vs) => format!(
                "[{}]",
                vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
            ),
            (_, [v, ..]) => quote(v),
        };
        let source = match e.source {
            Source::Env => format!("env {}", env_name(&e.key.name)),
            s => s.as_str().to_string(),
        };
        out.push_str(&format!(
            "{:width$} {value}  # {source}\n",
            format!("{}:", e.key.name),
            width = width + 1
        ));
    }
    out
}

/// A YAML scalar that reads back as the same text.
fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-=:,+@".contains(c))
        && !v.starts_with(['-', ':', '@'])
        && !matches!(v, "true" | "false" | "null" | "~")
        || matches!(v, "true" | "false");
    if plain {
        v.to_string()
    } else {
        serde_json::to_string(v).unwrap_or_default()
    }
}
