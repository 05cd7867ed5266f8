//! `agent-sidecar approvals list|show|approve|deny`: the approvers' CLI, a
//! thin layer over the sidecar's admin API ([`ApprovalsClient`]).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use agent_sidecar::approvals::{ApprovalId, ApprovalsClient, PendingApproval};

/// Where the admin API is and how to authenticate.
#[derive(Args, Debug)]
pub(crate) struct Connection {
    /// Base URL of the sidecar's admin API, e.g. http://127.0.0.1:9443.
    #[arg(long, env = "AGENT_SIDECAR_ADMIN_URL", value_name = "URL")]
    url: String,
    /// File holding the bearer token (not readable by others).
    #[arg(long, env = "AGENT_SIDECAR_ADMIN_TOKEN_FILE", value_name = "FILE")]
    token_file: PathBuf,
}

/// The approvals subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum ApprovalsCommand {
    /// List approvals (default: pending ones).
    List {
        /// pending, approved, denied, expired, cancelled, forwarded or all.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one approval in full (JSON).
    Show {
        /// Approval id (apr_...).
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Approve a held action; it is then forwarded once.
    Approve(Decide),
    /// Deny a held action.
    Deny(Decide),
}

/// `approve` / `deny` arguments.
#[derive(Args, Debug)]
pub(crate) struct Decide {
    /// Approval id (apr_...).
    id: String,
    /// Who decides (recorded in the audit trail).
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
pub(crate) fn run(cmd: ApprovalsCommand) -> i32 {
    super::block_on(execute(cmd))
}

async fn execute(cmd: ApprovalsCommand) -> Result<(), (i32, String)> {
    match cmd {
        ApprovalsCommand::List { state, json, conn } => {
            let filter = (state != "all").then_some(state.as_str());
            let items = client(&conn)?.list(filter).await.map_err(refused)?;
            if json {
                print_json(&items)?;
            } else {
                print_table(&items);
            }
        }
        ApprovalsCommand::Show { id, conn } => {
            let item = client(&conn)?
                .show(&parse_id(&id)?)
                .await
                .map_err(refused)?;
            print_json(&item)?;
        }
        ApprovalsCommand::Approve(d) => {
            let item = client(&d.conn)?
                .approve(&parse_id(&d.id)?, &d.approver, &d.reason)
                .await
                .map_err(refused)?;
            println!("{} {}", item.id, item.state.name());
        }
        ApprovalsCommand::Deny(d) => {
            let item = client(&d.conn)?
                .deny(&parse_id(&d.id)?, &d.approver, &d.reason)
                .await
                .map_err(refused)?;
            println!("{} {}", item.id, item.state.name());
        }
    }
    Ok(())
}

fn client(conn: &Connection) -> Result<ApprovalsClient, (i32, String)> {
    conn.client()
}

impl Connection {
    /// A client of the admin API at `--url` with the token of
    /// `--token-file`; `(2, why)` for unusable input.
    pub(crate) fn client(&self) -> Result<ApprovalsClient, (i32, String)> {
        let token = read_token(&self.token_file)?;
        ApprovalsClient::new(&self.url, &token).map_err(|e| (2, format!("--url {}: {e}", self.url)))
    }
}

/// Reads the token, refusing a file others may read.
fn read_token(path: &Path) -> Result<String, (i32, String)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| (2, format!("reading token file {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err((
            2,
            format!(
                "token file {} is readable by others; run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        ));
    }
    let token = std::fs::read_to_string(path)
        .map_err(|e| (2, format!("reading token file {}: {e}", path.display())))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err((2, format!("token file {} is empty", path.display())));
    }
    Ok(token)
}

fn parse_id(id: &str) -> Result<ApprovalId, (i32, String)> {
    ApprovalId::parse(id).ok_or_else(|| {
        (
            2,
            format!("`{id}` is not an approval id (apr_ followed by 32 hex digits)"),
        )
    })
}

pub(super) fn refused(e: impl std::fmt::Display) -> (i32, String) {
    (1, e.to_string())
}

pub(super) fn print_json(value: &impl serde::Serialize) -> Result<(), (i32, String)> {
    let text = serde_json::to_string_pretty(value).map_err(|e| (1, e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn print_table(items: &[PendingApproval]) {
    if items.is_empty() {
        println!("no approvals");
        return;
    }
    println!("ID\tSTATE\tAGENT\tACTION\tTIER\tREASON");
    for a in items {
        println!(
            "{}\t{}\t{}\t{}.{} -> {}\t{}\t{}",
            a.id,
            a.state.name(),
            a.agent_id,
            a.action.tool,
            a.action.action,
            a.action.target,
            a.tier,
            a.reason
        );
    }
}
