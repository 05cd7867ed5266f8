//! The README and `docs/` cannot drift from the CLI: every `agent-sidecar`
//! command line they show names a real subcommand and real flags (read
//! from the binary's own `--help`), every row of the README's option
//! tables is a real flag, and every flag and subcommand of the binary is in
//! the README's CLI reference.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

/// Flags of each command path (`""` is the binary itself), from `--help`.
type Cli = BTreeMap<String, BTreeSet<String>>;

fn help(path: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"));
    cmd.args(path.split_whitespace()).arg("--help");
    let out = cmd.output().expect("running agent-sidecar --help");
    assert!(out.status.success(), "`agent-sidecar {path} --help` failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// The subcommands listed under `Commands:` in a help text.
fn subcommands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags an options section defines (`  -x, --name <V>` lines).
fn flags(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("--") || (l.starts_with('-') && l.get(2..4) == Some(", ")))
        .filter_map(|l| {
            let start = l.find("--")?;
            let name: String = l[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some(name)
        })
        .collect()
}

fn cli() -> Cli {
    let mut cli = Cli::new();
    let mut todo = vec![String::new()];
    while let Some(path) = todo.pop() {
        let text = help(&path);
        for sub in subcommands(&text) {
            todo.push(format!("{path} {sub}").trim().to_string());
        }
        cli.insert(path, flags(&text));
    }
    cli
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// README.md and every `docs/*.md`, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("reading a document");
            (p, text)
        })
        .collect()
}

/// Every `agent-sidecar ...` command line of a document, with its line
/// number: in fenced code blocks (an indented line continues the previous
/// command) and in inline code spans.
fn command_lines(text: &str) -> Vec<(usize, String)> {
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut in_block = false;
    let mut continuing = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continuing = false;
            continue;
        }
        if in_block {
            if continuing && line.starts_with(' ') && line.trim_start().starts_with('[') {
                let last = found.last_mut().expect("a command to continue");
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            continuing = false;
            if let Some(cmd) = invocation(line) {
                found.push((i + 1, cmd));
                continuing = true;
            }
        } else {
            for span in line.split('`').skip(1).step_by(2) {
                if let Some(cmd) = invocation(span) {
                    found.push((i + 1, cmd));
                }
            }
        }
    }
    found
}

/// The part of `text` from an `agent-sidecar` word followed by a
/// subcommand-like word, up to a ` -- ` (the agent's own command), a pipe
/// or a comment.
fn invocation(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(at) = rest.find("agent-sidecar ") {
        let before = rest[..at].chars().last();
        let after = &rest[at + "agent-sidecar ".len()..];
        let word_start = before.is_none_or(|c| c == ' ' || c == '/' || c == '(' || c == '$');
        // `cargo test -p agent-sidecar --lib` names the package, not the binary.
        let package = ["-p ", "--package "]
            .iter()
            .any(|p| rest[..at].ends_with(p));
        let next = after.split_whitespace().next().unwrap_or("");
        let command_like = !next.is_empty()
            && next
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c == '|');
        if word_start && !package && (command_like || next.starts_with("--")) {
            let end = [" -- ", " | ", " # ", " && ", " > "]
                .iter()
                .filter_map(|stop| after.find(stop))
                .min()
                .unwrap_or(after.len());
            return Some(after[..end].trim_end().to_string());
        }
        rest = after;
    }
    None
}

/// Checks one command line against the CLI; returns what is wrong.
fn check_line(cli: &Cli, line: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut path = String::new();
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.peek() {
        // `approve|deny` names two subcommands.
        let names: Vec<&str> = word.split('|').collect();
        let candidates: Vec<String> = names
            .iter()
            .map(|n| format!("{path} {n}").trim().to_string())
            .collect();
        if candidates.iter().all(|c| cli.contains_key(c)) {
            path = candidates[0].clone();
            words.next();
            continue;
        }
        let is_subcommand_word = word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-' || c == '|')
            && !word.starts_with('-');
        let takes_subcommand = cli
            .keys()
            .any(|k| k.starts_with(&format!("{path} ").trim_start().to_string()) && *k != path);
        if is_subcommand_word && takes_subcommand {
            problems.push(format!("`agent-sidecar {path} {word}`: no such subcommand"));
        }
        break;
    }
    let global = &cli[""];
    let own = &cli[&path];
    for token in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if let Some(name) = token.strip_prefix("--")
            && !name.is_empty()
        {
            let flag = format!("--{name}");
            if !own.contains(&flag) && !global.contains(&flag) {
                problems.push(format!("`agent-sidecar {path}` has no flag {flag}"));
            }
        }
    }
    problems
}

#[test]
fn every_command_line_in_the_docs_names_a_real_subcommand_and_real_flags() {
    let cli = cli();
    assert!(
        cli.contains_key("run") && cli["run"].contains("--allow"),
        "{cli:?}"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for (file, text) in documents() {
        for (line_no, line) in command_lines(&text) {
            checked += 1;
            for p in check_line(&cli, &line) {
                problems.push(format!("{}:{line_no}: {p}", file.display()));
            }
        }
    }
    assert!(checked > 20, "found only {checked} command lines");
    assert!(
        problems.is_empty(),
        "the docs show commands the binary does not have (fix the doc or the CLI):\n{}",
        problems.join("\n")
    );
}

/// The README's `## CLI reference` section.
fn readme_reference() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme
        .find("## CLI reference")
        .expect("a CLI reference section");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn the_readme_reference_covers_every_flag_and_subcommand_and_nothing_else() {
    let cli = cli();
    let reference = readme_reference();
    let mut missing = Vec::new();
    for (path, flags) in &cli {
        // `approvals approve|deny` shows two subcommands at once.
        let (parent, last) = path.rsplit_once(' ').unwrap_or(("", path.as_str()));
        let alternative = reference.lines().any(|l| {
            l.contains(&format!("{parent} "))
                && (l.contains(&format!("|{last} ")) || l.contains(&format!(" {last}|")))
        });
        if !path.is_empty() && !reference.contains(&format!(" {path}")) && !alternative {
            missing.push(format!("subcommand `{path}`"));
        }
        for flag in flags {
            if matches!(flag.as_str(), "--help" | "--version") {
                continue;
            }
            let shown = reference.contains(&format!("{flag} "))
                || reference.contains(&format!("{flag}`"))
                || reference.contains(&format!("{flag}]"))
                || reference.contains(&format!("{flag},"))
                || reference.contains(&format!("{flag}\n"));
            if !shown {
                missing.push(format!("`agent-sidecar {path} {flag}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's CLI reference does not mention (document them there):\n{}",
        missing.join("\n")
    );
    // Every option row of its tables is a flag of some command.
    let all: BTreeSet<&String> = cli.values().flatten().collect();
    let mut unknown = Vec::new();
    for row in reference.lines().filter(|l| l.starts_with("| `--")) {
        let cell = row.split('|').nth(1).unwrap_or("");
        for token in cell.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if token.starts_with("--") && !all.contains(&token.to_string()) {
                unknown.push(format!("{token} (row: {})", row.trim()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "README.md's option tables list flags no command has:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_parsers_of_this_test_see_what_they_should() {
    let line = "agent-sidecar approvals approve|deny ID --approver NAME --url URL";
    let text = format!(
        "x\n```\ncargo bench -p agent-sidecar --bench kernel\n{line}\n$ sudo agent-sidecar run --allow 1.2.3.4:80 -- curl --max-time 5\n  [--bpffs DIR]\n```\nsee `agent-sidecar policy nope --json`.\n"
    );
    let lines = command_lines(&text);
    assert_eq!(
        lines,
        vec![
            (
                4,
                "approvals approve|deny ID --approver NAME --url URL".to_string()
            ),
            (5, "run --allow 1.2.3.4:80 [--bpffs DIR]".to_string()),
            (8, "policy nope --json".to_string()),
        ]
    );
    let mut cli = Cli::new();
    cli.insert(String::new(), BTreeSet::from(["--log".to_string()]));
    cli.insert("run".into(), BTreeSet::from(["--allow".to_string()]));
    cli.insert("policy".into(), BTreeSet::new());
    cli.insert("policy check".into(), BTreeSet::new());
    assert!(
        check_line(&cli, &lines[1].1)
            .iter()
            .any(|p| p.contains("no flag --bpffs"))
    );
    assert!(
        check_line(&cli, &lines[2].1)
            .iter()
            .any(|p| p.contains("`agent-sidecar policy nope`: no such subcommand"))
    );
    assert!(check_line(&cli, "run --allow X --log info").is_empty());
}

/// Every `[env: NAME=]` a help text shows.
fn help_variables(path: &str) -> BTreeSet<String> {
    help(path)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[env: "))
        .filter_map(|l| l.split('=').next())
        .map(str::to_string)
        .collect()
}

/// The config keys: the long flags of `run` (globals included) but
/// `--config`, `--help` and `--version` (docs/config.md).
fn config_keys(cli: &Cli) -> BTreeSet<String> {
    cli["run"]
        .iter()
        .chain(cli["serve"].iter())
        .filter(|f| !matches!(f.as_str(), "--config" | "--help" | "--version"))
        .map(|f| f.trim_start_matches("--").to_string())
        .collect()
}

/// The keys docs/config.md's key table lists (backticked names in the
/// first cell of each row after the `| key |` header).
fn documented_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("| key |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let cell = row.split('|').nth(1).unwrap_or("").to_string();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn docs_config_lists_every_key_and_the_docs_name_only_real_variables() {
    let cli = cli();
    let keys = config_keys(&cli);
    assert!(
        keys.contains("approval-sla") && keys.contains("log"),
        "{keys:?}"
    );
    let config_md = std::fs::read_to_string(repo().join("docs/config.md")).expect("docs/config.md");
    let documented = documented_keys(&config_md);
    let missing: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/config.md's key table drifted from `run --help`: keys it lacks {missing:?}, \
         keys no flag has {unknown:?} (a key is a flag of `run` without `--`)"
    );
    // Every AGENT_SIDECAR_* variable the README and docs/ name is a key's
    // variable, one a help text shows, or one of the test and build
    // variables.
    let mut known: BTreeSet<String> = keys
        .iter()
        .map(|k| format!("AGENT_SIDECAR_{}", k.to_ascii_uppercase().replace('-', "_")))
        .collect();
    for path in cli.keys() {
        known.extend(help_variables(path));
    }
    for test_or_build in [
        "AGENT_SIDECAR_BIN",
        "AGENT_SIDECAR_PRIVILEGED_TESTS",
        "AGENT_SIDECAR_TEST_SCRIPTS",
        "AGENT_SIDECAR_TOOLS",
        "AGENT_SIDECAR_BPF_RUSTC",
        "AGENT_SIDECAR_KUBECTL",
    ] {
        known.insert(test_or_build.to_string());
    }
    assert!(known.contains("AGENT_SIDECAR_ADMIN_URL"), "{known:?}");
    let mut unknown = Vec::new();
    for (file, text) in documents() {
        for (line_no, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("AGENT_SIDECAR_") {
                let name: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // `AGENT_SIDECAR_*`, `AGENT_SIDECAR_<KEY>`: the prefix.
                if name != "AGENT_SIDECAR_" && !known.contains(&name) {
                    unknown.push(format!("{}:{}: {name}", file.display(), line_no + 1));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "the docs name variables nothing reads (rename them to a key's variable, docs/config.md):\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_key_table_parser_sees_the_keys() {
    let text = "x\n| key | what | default |\n|---|---|---|\n| `log`, `log-format` | a `b` | c |\n| `allow` | d | e |\n\nafter\n| `not-a-key` | x | y |\n";
    assert_eq!(
        documented_keys(text),
        BTreeSet::from([
            "log".to_string(),
            "log-format".to_string(),
            "allow".to_string()
        ])
    );
}
