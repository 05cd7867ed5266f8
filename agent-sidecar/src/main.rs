//! The `agent-sidecar` command line.
#![deny(clippy::mod_module_files)]

use std::{ffi::OsString, process::ExitCode};

use agent_sidecar::{
    config::{
        self, PinArgs, RunArgs, ServeArgs,
        args::{LogArgs, LogFormat},
    },
    kernel::limits,
    kernel::{EnforcerConfig, teardown_agent},
    run,
};
use clap::{Args, CommandFactory, Parser, Subcommand};

mod cli;

/// mimalloc: the gateway's calls allocate and free many small buffers
/// (headers, TLS records, JSON values) across threads; see
/// `docs/benchmarks-gateway.md` for what it changes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps AI agents accountable: kernel-enforced egress allowlists for agent processes.
#[derive(Parser, Debug)]
#[command(name = "agent-sidecar", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    logging: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run COMMAND in a governed cgroup: it can reach only what the allowlist names.
    Run(Box<RunArgs>),
    /// The sidecar of a Kubernetes pod: govern the pod's other containers (found from the
    /// pod UID under the host's cgroupfs) until SIGTERM.
    Serve(Box<ServeArgs>),
    /// Remove the pinned enforcement of an agent whose sidecar is gone
    /// (after `run --keep-pinned` or a crash); kills what is left in its cgroup.
    Teardown(TeardownArgs),
    /// Policies: check egress files and tier policy sets, run fixtures,
    /// explain a decision, diff two versions.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Tier-3 approvals held by a sidecar: list, show, approve, deny
    /// (through its admin API).
    #[command(subcommand)]
    Approvals(cli::approvals::ApprovalsCommand),
    /// The audit log: verify it, prove and check records and checkpoints,
    /// query and follow records, make a signing key.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// The config file of `run`: check one, show the effective config and
    /// where each value comes from, print its JSON Schema.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Behavioural baselines on disk: show, export, import, merge (pool by
    /// role), fold an alert marked benign back in.
    #[command(subcommand)]
    Baseline(cli::baseline::BaselineCommand),
    /// Kubernetes mutating admission webhook (HTTPS) that injects the
    /// sidecar into agent pods.
    InjectWebhook(Box<cli::inject_webhook::InjectWebhookArgs>),
    /// The governed agent's inventory from a sidecar's admin API: owner,
    /// team, purpose, policy version, last action, idle time.
    Inventory(cli::inventory::InventoryArgs),
    /// Kill switches on one sidecar (through its admin API): trip, release,
    /// list. Switches for many sidecars go in the fleet-controls file.
    #[command(subcommand)]
    Kill(cli::kill::KillCommand),
    /// Just-in-time grants on one sidecar (through its admin API):
    /// request, approve, deny, revoke, list.
    #[command(subcommand)]
    Grants(cli::grants::GrantsCommand),
    /// The fleet CA for agent-to-agent calls: init a CA, issue an agent's
    /// short-lived identity (docs/delegation.md).
    #[command(subcommand)]
    FleetCa(cli::fleet_ca::FleetCaCommand),
}

#[derive(Args, Debug)]
struct TeardownArgs {
    /// Agent id given to `run`.
    #[arg(long, value_name = "ID")]
    agent_id: String,
    #[command(flatten)]
    pins: PinArgs,
}

/// Logging on stderr with `logging`'s filter: `--log` (or
/// `AGENT_SIDECAR_LOG`, or the config file), else `RUST_LOG`, else `info`.
fn init_logging(logging: &LogArgs) {
    let format = logging.log_format;
    let filter = logging.filter(std::env::var("RUST_LOG").ok());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    let _ = tracing_log::LogTracer::init();
}

fn main() -> ExitCode {
    // Flags, AGENT_SIDECAR_* variables and the config file, merged into
    // the command line that is parsed (docs/config.md).
    let argv: Vec<OsString> = std::env::args_os().collect();
    let env = |k: &str| std::env::var_os(k);
    let resolved = config::resolve(&Cli::command(), "run", &argv, &env).and_then(|r| {
        if r.entries.is_empty() {
            config::resolve(&Cli::command(), "serve", &argv, &env)
        } else {
            Ok(r)
        }
    });
    let argv = match resolved {
        Ok(resolved) => resolved.argv,
        Err(e) => {
            eprintln!("agent-sidecar: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    init_logging(&cli.logging);
    let code = match cli.command {
        Command::Run(args) => run_command(*args),
        Command::Serve(args) => serve_command(*args),
        Command::Teardown(args) => teardown_command(args),
        Command::Policy(cmd) => cli::policy::run(cmd),
        Command::Approvals(cmd) => cli::approvals::run(cmd),
        Command::Audit(cmd) => cli::audit::run(cmd),
        Command::Config(cmd) => cli::config::run(cmd, &Cli::command()),
        Command::Baseline(cmd) => cli::baseline::run(cmd),
        Command::InjectWebhook(args) => cli::inject_webhook::run(*args),
        Command::Inventory(args) => cli::inventory::run(args),
        Command::Kill(cmd) => cli::kill::run(cmd),
        Command::Grants(cmd) => cli::grants::run(cmd),
        Command::FleetCa(cmd) => cli::fleet_ca::run(cmd),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn serve_command(args: ServeArgs) -> i32 {
    let opts = args.into_options();
    let Some(runtime) = runtime() else {
        return run::EXIT_SIDECAR_FAILED;
    };
    match runtime.block_on(agent_sidecar::serve::serve(opts)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-sidecar: {e}");
            e.exit_code()
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("agent-sidecar: cannot start the runtime: {e}");
            None
        }
    }
}

fn run_command(args: RunArgs) -> i32 {
    let opts = args.into_options();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent-sidecar: cannot start the runtime: {e}");
            return run::EXIT_SIDECAR_FAILED;
        }
    };
    match runtime.block_on(run::run(opts)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-sidecar: {e}");
            e.exit_code()
        }
    }
}

fn teardown_command(args: TeardownArgs) -> i32 {
    let config = EnforcerConfig {
        agent_id: args.agent_id,
        bpffs: args.pins.bpffs,
        // Pins live in a mounted bpffs: a fresh mount would hold none.
        mount_bpffs: false,
        state_dir: args.pins.state_dir,
        cgroup: None,
        private_listeners: Vec::new(),
        exempt_cgroups: Vec::new(),
    };
    match teardown_agent(&config) {
        Ok(state) => {
            for dir in limits::remove_v1(&config.agent_id) {
                println!("removed {}", dir.display());
            }
            println!(
                "removed pinned enforcement of agent `{}` (generation {})",
                config.agent_id, state.generation
            );
            0
        }
        Err(e) => {
            eprintln!("agent-sidecar: {e}");
            1
        }
    }
}
