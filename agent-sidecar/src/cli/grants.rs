//! `agent-sidecar grants request|approve|deny|list|revoke`: just-in-time
//! grants on one sidecar, through its admin API (docs/grants.md).

use clap::Subcommand;

use super::approvals::{Connection, print_json, refused};

/// The grants subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum GrantsCommand {
    /// Ask for a grant for the sidecar's agent (pending until an approver
    /// decides); it must be within the policy's `grantable:` entries.
    Request {
        /// The agent the grant is for.
        #[arg(long)]
        agent: String,
        /// What is asked for: `egress`, `tool`, `action` or `tier_ceiling`.
        #[arg(long, default_value = "egress")]
        kind: String,
        /// The destination `IP:PORT`, the tool, `tool.action`, or the ceiling tier `1`..`3`.
        #[arg(long)]
        target: String,
        /// Why (shown to the approver, kept in the audit trail).
        #[arg(long)]
        purpose: String,
        /// How long, in seconds (at most the policy's `max_ttl_secs`).
        #[arg(long, value_name = "SECONDS")]
        ttl: u64,
        /// Who asks (recorded; may not approve it).
        #[arg(long)]
        requested_by: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Approve a pending grant: in force for its TTL from now.
    Approve(Decision),
    /// Deny a pending grant.
    Deny(Decision),
    /// End an approved grant now (its kernel entry and the agent's
    /// connections to it are cut).
    Revoke(Decision),
    /// The sidecar's grants (JSON).
    List {
        /// Only grants in this state: pending, approved, denied, revoked,
        /// expired.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// A decision on one grant.
#[derive(clap::Args, Debug)]
pub(crate) struct Decision {
    /// The grant's id (`g-...`).
    id: String,
    /// Who decides (with an approver directory, the owner of the token).
    #[arg(long)]
    approver: String,
    /// Why (recorded in the audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    conn: Connection,
}

/// Runs one subcommand; returns the exit code (0 ok, 1 refused by the
/// sidecar, 2 unusable input).
pub(crate) fn run(cmd: GrantsCommand) -> i32 {
    super::block_on(async move {
        let answer = match cmd {
            GrantsCommand::Request {
                agent,
                kind,
                target,
                purpose,
                ttl,
                requested_by,
                conn,
            } => {
                let body = serde_json::json!({"agent": agent, "kind": kind, "target": target,
                    "purpose": purpose, "ttl_secs": ttl, "requested_by": requested_by});
                conn.client()?.request_grant(&body).await.map_err(refused)?
            }
            GrantsCommand::Approve(d) => decide(d, "approve").await?,
            GrantsCommand::Deny(d) => decide(d, "deny").await?,
            GrantsCommand::Revoke(d) => decide(d, "revoke").await?,
            GrantsCommand::List { state, conn } => conn
                .client()?
                .grants(state.as_deref())
                .await
                .map_err(refused)?,
        };
        print_json(&answer)
    })
}

async fn decide(d: Decision, verb: &str) -> Result<serde_json::Value, (i32, String)> {
    d.conn
        .client()?
        .decide_grant(&d.id, verb, &d.approver, &d.reason)
        .await
        .map_err(refused)
}
