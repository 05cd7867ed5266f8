//! `agent-sidecar policy shadow-report`: the decisions a candidate policy
//! version would change, replayed from an audit trail.

use std::path::PathBuf;

use agent_sidecar::{audit::query::QueryFilter, shadow};
use clap::Args;

/// `policy shadow-report` arguments.
#[derive(Args, Debug)]
pub(crate) struct ShadowReportArgs {
    /// The audit trail directory whose tool calls are replayed
    /// (`--audit-dir` of the sidecar).
    #[arg(long, value_name = "AUDIT_DIR")]
    replay: PathBuf,
    /// The policy set in force (directory).
    #[arg(long, value_name = "DIR")]
    active: PathBuf,
    /// The candidate policy set (directory).
    #[arg(long, value_name = "DIR")]
    candidate: PathBuf,
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
    let report = match shadow::replay_dirs(&args.replay, &filter, &args.active, &args.candidate) {
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
