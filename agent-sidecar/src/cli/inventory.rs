//! `agent-sidecar inventory`: one sidecar's report of its agent (owner,
//! team, purpose, policy version, last action, idle time), from
//! `GET /v1/inventory` of its admin API.

use clap::Args;

use super::approvals::{Connection, print_json, refused};

/// `inventory` arguments.
#[derive(Args, Debug)]
pub(crate) struct InventoryArgs {
    /// Print the JSON answer instead of lines of `key: value`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

/// Prints the inventory; returns the exit code (0 ok, 1 refused by the
/// sidecar, 2 unusable input).
pub(crate) fn run(args: InventoryArgs) -> i32 {
    super::block_on(async {
        let entry = args.conn.client()?.inventory().await.map_err(refused)?;
        if args.json {
            print_json(&entry)
        } else {
            print_lines(&entry);
            Ok(())
        }
    })
}

fn print_lines(entry: &serde_json::Value) {
    let Some(map) = entry.as_object() else {
        println!("{entry}");
        return;
    };
    for (key, value) in map {
        match value {
            serde_json::Value::String(s) => println!("{key}: {s}"),
            other => println!("{key}: {other}"),
        }
    }
}
