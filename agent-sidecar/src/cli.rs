//! Command handlers of the `agent-sidecar` binary, one module per command
//! group, so `main.rs` stays a dispatcher.

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod baseline;
pub(crate) mod config;
pub(crate) mod fleet_ca;
pub(crate) mod grants;
pub(crate) mod inject_webhook;
pub(crate) mod inventory;
pub(crate) mod kill;
pub(crate) mod policy;
pub(crate) mod shadow;

/// Runs one command's future on a fresh current-thread runtime and turns
/// its outcome into the exit code: 0 done, else the code it failed with
/// (1 refused by the sidecar, 2 unusable input), its message on stderr.
pub(crate) fn block_on<F>(work: F) -> i32
where
    F: std::future::Future<Output = Result<(), (i32, String)>>,
{
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (2, format!("cannot start the runtime: {e}")))
        .and_then(|runtime| runtime.block_on(work));
    match result {
        Ok(()) => 0,
        Err((code, message)) => {
            eprintln!("agent-sidecar: {message}");
            code
        }
    }
}
