//! `agent-sidecar policy ...`: check, test, explain and diff policies.
//!
//! Exit codes: 0 success; 1 invalid policy, failed scenario or (with
//! `diff --exit-code`) differences; 2 unusable input (unreadable files,
//! malformed `--action`, a set that does not compile for `test`, `explain`
//! or `diff`).

use std::path::{Path, PathBuf};

use agent_sidecar::policy::{
    ActionInput, CompiledPolicySet, PolicyFile, diff, document_kind, fixtures, manifest, schema,
};
use clap::Subcommand;

use super::approvals::{Connection, print_json, refused};

/// `agent-sidecar policy` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum PolicyCommand {
    /// Validate policies: a directory is compiled as a tier policy set
    /// (hierarchy, tools, rules, egress); a file is read as an egress
    /// policy file.
    Check {
        /// Policy set directories and/or egress policy files.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Run scenario fixtures against a policy set; exits 1 on any mismatch,
    /// with a diff-like report.
    Test {
        /// Policy set directory.
        dir: PathBuf,
        /// Fixture files or directories of them.
        #[arg(required = true, value_name = "FIXTURES")]
        fixtures: Vec<PathBuf>,
    },
    /// Explain the decision for one action: the rules tested at each level
    /// of the hierarchy, which matched, and why the final tier won.
    Explain {
        /// Policy set directory.
        dir: PathBuf,
        /// The action as JSON (or @FILE): {"agent": ID, "environment": ENV,
        /// "http"|"mcp": {...}} or {..., "tool", "action", "attributes"}.
        #[arg(long, value_name = "JSON")]
        action: String,
        /// Print the explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rule-level changes between two versions of a policy set
    /// (directories: git checkouts, archived versions).
    Diff {
        /// The old version's directory.
        old: PathBuf,
        /// The new version's directory.
        new: PathBuf,
        /// Exit 1 when the versions differ.
        #[arg(long)]
        exit_code: bool,
        /// Print the changes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of tier policy documents (docs/policy.schema.json).
    Schema,
    /// Which decisions a candidate policy version would change: the tool
    /// calls of an audit trail decided again under the active and the
    /// candidate directories, grouped by change, with the agents and
    /// example audit record ids.
    ShadowReport(super::shadow::ShadowReportArgs),
    /// Put a candidate policy version in force: it must compile; its files
    /// replace the active directory's (staged, then renamed into place), so
    /// every sidecar watching the directory reloads it whole. Dropping a
    /// candidate is removing --shadow-policies.
    Promote(super::shadow::PromoteArgs),
    /// The policy version a running sidecar has in force and the previous
    /// ones it keeps (through its admin API).
    Versions {
        #[command(flatten)]
        conn: Connection,
    },
    /// Put a previous version back in force on a running sidecar (a kept
    /// one, or one in its --policy-archive) until the policy directory
    /// changes again; held calls are decided again under it.
    Rollback {
        /// The version: at least 4 hex digits of its hash.
        version: String,
        /// Who rolls back (logged).
        #[arg(long)]
        operator: String,
        /// Why (logged).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs a `policy` subcommand; returns the exit code.
pub(crate) fn run(cmd: PolicyCommand) -> i32 {
    match cmd {
        PolicyCommand::Check { paths } => check(&paths),
        PolicyCommand::Test { dir, fixtures } => test(&dir, &fixtures),
        PolicyCommand::Explain { dir, action, json } => explain(&dir, &action, json),
        PolicyCommand::Diff {
            old,
            new,
            exit_code,
            json,
        } => diff_command(&old, &new, exit_code, json),
        PolicyCommand::ShadowReport(args) => super::shadow::report(&args),
        PolicyCommand::Promote(args) => super::shadow::promote(&args),
        PolicyCommand::Schema => {
            print!("{}", schema::policy_schema_text());
            0
        }
        PolicyCommand::Versions { conn } => {
            admin(
                &conn,
                |client| async move { client.policy_versions().await },
            )
        }
        PolicyCommand::Rollback {
            version,
            operator,
            reason,
            conn,
        } => admin(&conn, |client| async move {
            client.policy_rollback(&version, &operator, &reason).await
        }),
    }
}

/// Runs one admin API call and prints its JSON answer; 0 done, 1 refused
/// by the sidecar, 2 unusable input.
fn admin<F, Fut>(conn: &Connection, call: F) -> i32
where
    F: FnOnce(agent_sidecar::approvals::ApprovalsClient) -> Fut,
    Fut: std::future::Future<
            Output = Result<serde_json::Value, agent_sidecar::approvals::ClientError>,
        >,
{
    super::block_on(async {
        let answer = call(conn.client()?).await.map_err(refused)?;
        print_json(&answer)
    })
}

fn check(paths: &[PathBuf]) -> i32 {
    let mut failed = false;
    for path in paths {
        let ok = if path.is_dir() {
            check_set(path)
        } else {
            check_file(path)
        };
        failed |= !ok;
    }
    i32::from(failed)
}

fn check_set(dir: &Path) -> bool {
    match CompiledPolicySet::load_dir(dir) {
        Ok(set) => {
            // The sidecar refuses a set its manifest does not vouch for.
            let manifest = match manifest::read(dir) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("{}: {e}", dir.join(manifest::MANIFEST_FILE).display());
                    return false;
                }
            };
            if let Some(m) = manifest
                && let Err(e) = manifest::verify(&m, set.snapshot())
            {
                eprintln!("{e}");
                return false;
            }
            let s = set.summary();
            println!(
                "{}: ok, policy set {}: {} document(s), {} tool(s), {} action(s), {} rule(s), {} agent(s), {} overlay(s)",
                dir.display(),
                set.version(),
                s.documents,
                s.tools,
                s.actions,
                s.rules,
                s.agents,
                s.overlays
            );
            true
        }
        Err(e) => {
            let n = e.problems().len();
            eprintln!("{e}");
            if n > 0 {
                eprintln!(
                    "{}: {n} problem(s); the policy set was not loaded",
                    dir.display()
                );
            }
            false
        }
    }
}

fn check_file(path: &Path) -> bool {
    match PolicyFile::load(path) {
        Ok(p) => {
            let list = p.allowlist(path);
            let names = p.name_rules(path);
            println!(
                "{}: ok, {} egress rule(s), {} name rule(s)",
                path.display(),
                list.rules().len(),
                names.len()
            );
            for rule in list.rules() {
                println!("  allow {} ({:?})", rule.target, rule.protocols);
            }
            for rule in &names {
                let private = if rule.allow_private {
                    ", private answers allowed"
                } else {
                    ""
                };
                println!("  name  {rule} ({:?}{private})", rule.protocols);
            }
            true
        }
        Err(e) => {
            eprintln!("{e}");
            let kind = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| document_kind(&t));
            if let Some(kind) = kind {
                eprintln!(
                    "hint: {} is a tier policy document (kind: {}); check the directory that holds the whole set: agent-sidecar policy check {}",
                    path.display(),
                    kind.as_str(),
                    path.parent()
                        .map_or(".".into(), |p| p.display().to_string())
                );
            }
            false
        }
    }
}

fn load(dir: &Path) -> Option<CompiledPolicySet> {
    match CompiledPolicySet::load_dir(dir) {
        Ok(set) => Some(set),
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{}: the policy set does not compile (see `agent-sidecar policy check`)",
                dir.display()
            );
            None
        }
    }
}

fn test(dir: &Path, paths: &[PathBuf]) -> i32 {
    let Some(set) = load(dir) else { return 2 };
    println!("policy set {}: {}", dir.display(), set.version());
    let mut passed = 0;
    let mut failed = 0;
    for path in paths {
        let report = fixtures::run_fixtures(&set, path);
        for e in &report.errors {
            println!("{e}");
        }
        for f in &report.failures {
            print!("{f}");
        }
        passed += report.passed;
        failed += report.failures.len() + report.errors.len();
    }
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0 || passed == 0)
}

fn explain(dir: &Path, action: &str, json: bool) -> i32 {
    let text = match action.strip_prefix('@') {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("agent-sidecar: cannot read the action from {file}: {e}");
                return 2;
            }
        },
        None => action.to_string(),
    };
    let input: ActionInput = match serde_json::from_str(&text) {
        Ok(i) => i,
        Err(e) => {
            eprintln!(
                "agent-sidecar: invalid --action at line {} column {}: {e}; give {{\"agent\": ID, \"environment\": ENV}} plus \"http\": {{host, method, path, body}}, \"mcp\": {{server, tool, arguments}} or \"tool\", \"action\", \"attributes\" (see docs/policy.md)",
                e.line(),
                e.column()
            );
            return 2;
        }
    };
    let Some(set) = load(dir) else { return 2 };
    let action = match set.action_from_input(&input) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("agent-sidecar: invalid --action: {e}");
            return 2;
        }
    };
    let explanation = set.explain(&action);
    if json {
        match serde_json::to_string_pretty(&explanation) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("agent-sidecar: cannot encode the explanation: {e}");
                return 2;
            }
        }
    } else {
        print!("{explanation}");
    }
    0
}

fn diff_command(old: &Path, new: &Path, exit_code: bool, json: bool) -> i32 {
    let (Some(a), Some(b)) = (load(old), load(new)) else {
        return 2;
    };
    let d = diff::diff(&a, &b);
    if json {
        match serde_json::to_string_pretty(&d) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("agent-sidecar: cannot encode the diff: {e}");
                return 2;
            }
        }
    } else {
        print!("{d}");
    }
    i32::from(exit_code && !d.is_empty())
}
