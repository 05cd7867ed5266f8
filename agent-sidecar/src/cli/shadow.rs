//! `agent-sidecar policy shadow-report`: the decisions a candidate policy
//! version would change, replayed from an audit trail.

use std::path::PathBuf;

use agent_sidecar::{audit::query::QueryFilter, shadow};
use clap::Args;

/// `policy shadow-report` arguments.
#[derive(Args, Debug)]
pub(crate) struct ShadowReportArgs {
    /// Replay the tool calls of this audit trail (`--audit-dir` of the
    /// sidecar) under --active and --candidate.
    #[arg(
        long,
        value_name = "AUDIT_DIR",
        conflicts_with = "trail",
        requires_all = ["active", "candidate"]
    )]
    replay: Option<PathBuf>,
    /// Report the differences a sidecar running with --shadow-policies
    /// recorded in this audit trail.
    #[arg(long, value_name = "AUDIT_DIR", required_unless_present = "replay")]
    trail: Option<PathBuf>,
    /// The policy set in force (directory), with --replay.
    #[arg(long, value_name = "DIR")]
    active: Option<PathBuf>,
    /// The candidate policy set (directory), with --replay.
    #[arg(long, value_name = "DIR")]
    candidate: Option<PathBuf>,
    /// Only this agent's calls.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// Exit 1 when any decision would differ.
    #[arg(long)]
    exit_code: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Prints the report; 0 done (1 with `--exit-code` and differences), 2
/// unusable input (a trail that cannot be read, a set that does not
/// compile).
pub(crate) fn report(args: &ShadowReportArgs) -> i32 {
    let filter = QueryFilter {
        agent: args.agent.clone(),
        ..QueryFilter::default()
    };
    let result = match (&args.replay, &args.trail, &args.active, &args.candidate) {
        (Some(trail), _, Some(active), Some(candidate)) => {
            shadow::replay_dirs(trail, &filter, active, candidate)
        }
        (_, Some(trail), _, _) => shadow::recorded(trail, &filter),
        _ => {
            eprintln!(
                "agent-sidecar: give --trail AUDIT_DIR, or --replay AUDIT_DIR --active DIR --candidate DIR"
            );
            return 2;
        }
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agent-sidecar: {e}");
            return 2;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("agent-sidecar: cannot encode the report: {e}");
                return 2;
            }
        }
    } else {
        print!("{report}");
    }
    i32::from(args.exit_code && report.differing > 0)
}

/// `policy promote` arguments.
#[derive(Args, Debug)]
pub(crate) struct PromoteArgs {
    /// The candidate policy set (e.g. the `--shadow-policies` directory).
    #[arg(long, value_name = "DIR")]
    candidate: PathBuf,
    /// The active policy directory (`--policy-dir` of the sidecars).
    #[arg(long, value_name = "DIR")]
    active: PathBuf,
}

/// Promotes the candidate; prints what changed as JSON. 0 promoted, 2 the
/// candidate does not compile (nothing written) or a write failed.
pub(crate) fn promote(args: &PromoteArgs) -> i32 {
    match agent_sidecar::policy::promote::promote(&args.candidate, &args.active) {
        Ok(p) => {
            println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
