//! `agent-sidecar kill trip|release|list`: kill switches on one sidecar,
//! through its admin API. Switches for many sidecars are written in the
//! fleet-controls file they follow (docs/killswitch.md).

use clap::Subcommand;

use super::approvals::{Connection, print_json, refused};

/// The kill subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum KillCommand {
    /// Stop the sidecar's agent now: every call refused, every packet
    /// dropped, its sockets destroyed, its held approvals cancelled; kept
    /// across restarts until released.
    Trip {
        /// Unique id of the switch.
        #[arg(long)]
        id: String,
        /// Who it stops: KIND=VALUE (agent, instance, team, role,
        /// environment) or `fleet`; it must cover this sidecar's agent.
        #[arg(long)]
        scope: String,
        /// Why (told to the agent and the SOC).
        #[arg(long)]
        reason: String,
        /// Who trips it (recorded in the audit trail).
        #[arg(long)]
        by: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Release a switch tripped on this sidecar (recorded with the
    /// approver and the reason).
    Release {
        /// The switch's id.
        id: String,
        /// Who releases it.
        #[arg(long)]
        approver: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// The switches the sidecar follows and whether its agent is stopped
    /// (JSON).
    List {
        #[command(flatten)]
        conn: Connection,
    },
}

/// Runs one subcommand; returns the exit code (0 ok, 1 refused by the
/// sidecar, 2 unusable input).
pub(crate) fn run(cmd: KillCommand) -> i32 {
    super::block_on(async move {
        let answer = match cmd {
            KillCommand::Trip {
                id,
                scope,
                reason,
                by,
                conn,
            } => {
                let scope = agent_sidecar::fleet::Scope::parse(&scope).map_err(|e| (2, e))?;
                let body =
                    serde_json::json!({"id": id, "scope": scope, "reason": reason, "by": by});
                conn.client()?
                    .trip_kill_switch(&body)
                    .await
                    .map_err(refused)?
            }
            KillCommand::Release {
                id,
                approver,
                reason,
                conn,
            } => conn
                .client()?
                .release_kill_switch(&id, &approver, &reason)
                .await
                .map_err(refused)?,
            KillCommand::List { conn } => conn.client()?.kill_switches().await.map_err(refused)?,
        };
        print_json(&answer)
    })
}
