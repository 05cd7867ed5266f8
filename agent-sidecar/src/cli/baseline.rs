//! `agent-sidecar baseline show|export|import|merge|benign`: the behavioural
//! baselines on disk (see `docs/alerts.md`). Run them while the agent's
//! sidecar is stopped, or with a pool's file: a running sidecar writes its
//! agents' files over.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use agent_sidecar::detect::{
    Alert, Baseline, BaselineStore, DEFAULT_BASELINE_DIR, read_file, write_atomic,
};

/// Which baseline.
#[derive(Args, Debug)]
pub(crate) struct Which {
    /// Directory of baselines (as given to `run --baseline-dir`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BASELINE_DIR)]
    dir: PathBuf,
    /// The agent's baseline.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "pool",
        required_unless_present = "pool"
    )]
    agent: Option<String>,
    /// The pool's (role's) baseline, which seeds new agents of the role.
    #[arg(long, value_name = "ROLE")]
    pool: Option<String>,
}

impl Which {
    fn path(&self) -> PathBuf {
        let store = BaselineStore::new(&self.dir);
        match (&self.agent, &self.pool) {
            (Some(a), _) => store.agent_path(a),
            (None, Some(p)) => store.pool_path(p),
            (None, None) => unreachable!("clap requires --agent or --pool"),
        }
    }
}

/// The baseline subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum BaselineCommand {
    /// Summarise a baseline: learning state, top tools, actions,
    /// destinations and transitions, the hour-of-week profile, memory.
    Show {
        #[command(flatten)]
        which: Which,
        /// Print the whole baseline file (JSON) instead.
        #[arg(long)]
        json: bool,
    },
    /// Write a baseline to a file (or stdout), to pool or move it.
    Export {
        #[command(flatten)]
        which: Which,
        /// Output file [default: stdout].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Install a baseline file as an agent's or a pool's.
    Import {
        #[command(flatten)]
        which: Which,
        /// The file (from `export` or `merge`).
        file: PathBuf,
    },
    /// Merge baseline files (replicas, agents of one role) into one.
    Merge {
        /// The files.
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// The merged baseline's name (a pool, usually the role).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Output file [default: stdout].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Fold an alert (its JSON as delivered: the OCSF finding or the bare
    /// alert) into its agent's baseline: what it found becomes normal.
    Benign {
        /// Directory of baselines.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_BASELINE_DIR)]
        dir: PathBuf,
        /// The alert file.
        alert: PathBuf,
    },
}

/// Runs `cmd`; returns the exit code.
pub(crate) fn run(cmd: BaselineCommand) -> i32 {
    match execute(cmd) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("agent-sidecar: {message}");
            1
        }
    }
}

fn load(path: &Path) -> Result<Baseline, String> {
    read_file(path).map_err(|e| e.to_string())
}

fn emit(b: &Baseline, output: Option<&Path>) -> Result<(), String> {
    match output {
        Some(p) => write_atomic(p, &b.to_file()).map_err(|e| e.to_string()),
        None => {
            let text = serde_json::to_string_pretty(&b.to_file()).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
    }
}

fn execute(cmd: BaselineCommand) -> Result<(), String> {
    match cmd {
        BaselineCommand::Show { which, json } => {
            let b = load(&which.path())?;
            if json {
                return emit(&b, None);
            }
            print!("{}", summary(&b));
            Ok(())
        }
        BaselineCommand::Export { which, output } => emit(&load(&which.path())?, output.as_deref()),
        BaselineCommand::Import { which, file } => {
            let mut b = load(&file)?;
            let (name, path) = (
                which
                    .agent
                    .clone()
                    .or(which.pool.clone())
                    .unwrap_or_default(),
                which.path(),
            );
            b = rename(b, &name);
            write_atomic(&path, &b.to_file()).map_err(|e| e.to_string())?;
            eprintln!("imported {} as {}", file.display(), path.display());
            Ok(())
        }
        BaselineCommand::Merge {
            files,
            name,
            output,
        } => {
            let mut merged = Baseline::new(&name, Some(name.clone()));
            for f in &files {
                merged.merge(&load(f)?);
            }
            emit(&merged, output.as_deref())
        }
        BaselineCommand::Benign { dir, alert } => {
            let text = std::fs::read_to_string(&alert)
                .map_err(|e| format!("alert file {}: {e}", alert.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("alert file {}: not JSON: {e}", alert.display()))?;
            let bare = value.pointer("/unmapped/alert").cloned().unwrap_or(value);
            let a: Alert = serde_json::from_value(bare).map_err(|e| {
                format!(
                    "alert file {}: not an alert of this sidecar ({e}); give the OCSF finding or the bare alert as delivered",
                    alert.display()
                )
            })?;
            let store = BaselineStore::new(&dir);
            let path = store.agent_path(&a.agent_id);
            let mut b = load(&path)?;
            b.fold_benign(&a.fold);
            store.save_agent(&b).map_err(|e| e.to_string())?;
            eprintln!(
                "alert {} ({} {}) folded into {}",
                a.id,
                a.detector,
                a.subject,
                path.display()
            );
            Ok(())
        }
    }
}

fn rename(b: Baseline, name: &str) -> Baseline {
    let mut f = b.to_file();
    f.agent_id = name.to_string();
    Baseline::from_file(f)
}

fn summary(b: &Baseline) -> String {
    use std::fmt::Write;
    let f = b.to_file();
    let mut s = String::new();
    let _ = writeln!(s, "baseline of {}", f.agent_id);
    let _ = writeln!(s, "  pool:         {}", f.pool.as_deref().unwrap_or("-"));
    let _ = writeln!(
        s,
        "  state:        {} ({} events)",
        if f.learned { "learned" } else { "learning" },
        f.events
    );
    let _ = writeln!(s, "  memory:       {} bytes", b.heap_bytes());
    let top = |m: &std::collections::BTreeMap<String, u64>| {
        let mut v: Vec<(&String, &u64)> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        v.iter()
            .take(10)
            .map(|(k, n)| format!("{k} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(s, "  tools:        {}: {}", f.tools.len(), top(&f.tools));
    let _ = writeln!(
        s,
        "  actions:      {}: {}",
        f.actions.len(),
        top(&f.actions)
    );
    let _ = writeln!(
        s,
        "  destinations: {}: {}",
        f.destinations.len(),
        top(&f.destinations)
    );
    let _ = writeln!(s, "  transitions:  {}", f.transitions.len());
    let _ = writeln!(
        s,
        "  tiers 1-4, deny: {:?}; refused egress {} (most per minute while learning {})",
        f.tiers, f.denied, f.denied_max_per_minute
    );
    let _ = writeln!(s, "  activity by hour (Sun..Sat, 00..23):");
    for (d, name) in ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        .iter()
        .enumerate()
    {
        let row: Vec<String> = f.week_profile[d * 24..d * 24 + 24]
            .iter()
            .map(|n| format!("{n:>4}"))
            .collect();
        let _ = writeln!(s, "    {name} {}", row.join(""));
    }
    s
}
