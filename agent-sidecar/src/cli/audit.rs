//! `agent-sidecar audit ...`: verify a log, prove and check inclusion and
//! consistency, query and follow records, make a checkpoint signing key.
//!
//! Exit codes: `verify` 0 valid, 1 tampered (a bad record or checkpoint
//! is named), 2 unreadable or bad usage; `check-proof` 0 valid, 1 does not
//! verify, 2 unreadable; every other command 0 on success, 2 on error.

use std::{
    fs,
    io::Write,
    ops::ControlFlow,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use agent_sidecar::audit::{
    AuditRecord, NoteSigner, NoteVerifier,
    proof::{self, ProofDoc},
    query::{QueryFilter, query},
    record::{OutcomeStatus, RecordKind},
    schema,
    store::segment::{Line, LineReader, list_segments},
    time::Timestamp,
    verify::{KeySource, VerifyOptions, verify},
};
use clap::{Subcommand, ValueEnum};

/// Output format of records.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub(crate) enum Format {
    /// One JSON record per line, as stored.
    Json,
    /// A table of the main fields.
    Table,
}

/// `agent-sidecar audit` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// Check a log: every record parses, sequence numbers have no gap, each
    /// record holds its predecessor's hash, the tree recomputed from the
    /// records matches every checkpoint, every checkpoint's signature
    /// verifies. Names the first bad record or checkpoint. Exit 0 valid,
    /// 1 tampered, 2 unreadable.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// The checkpoints' verifier key (a file, or the key itself:
        /// NAME+ID+KEY) [default: the log's own log.vkey].
        #[arg(long, value_name = "VKEY")]
        key: Option<String>,
        /// A witness file of checkpoints kept outside the log; repeatable.
        #[arg(long, value_name = "FILE")]
        witness: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a proof as JSON: of a record's inclusion (--seq), or of the
    /// consistency of two tree sizes (--from, --to).
    Prove {
        /// The log directory.
        dir: PathBuf,
        /// The record to prove.
        #[arg(long, value_name = "N", conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        seq: Option<u64>,
        /// Tree size of the inclusion proof [default: the last checkpoint's].
        #[arg(long, value_name = "M", requires = "seq")]
        size: Option<u64>,
        /// Older tree size of a consistency proof.
        #[arg(long, value_name = "SIZE1", requires = "to")]
        from: Option<u64>,
        /// Newer tree size of a consistency proof.
        #[arg(long, value_name = "SIZE2", requires = "from")]
        to: Option<u64>,
    },
    /// Check a proof printed by `prove`, without the log. With --key, also
    /// the signed checkpoint (--checkpoint, or the one the proof carries).
    /// Exit 0 valid, 1 does not verify, 2 unreadable.
    CheckProof {
        /// The proof (JSON).
        proof: PathBuf,
        /// A signed checkpoint of the proof's tree size.
        #[arg(long, value_name = "FILE", requires = "key")]
        checkpoint: Option<PathBuf>,
        /// The checkpoints' verifier key (a file, or NAME+ID+KEY).
        #[arg(long, value_name = "VKEY")]
        key: Option<String>,
    },
    /// Print records matching every filter given, in log order. --since
    /// and --until read only the segments and offsets they need.
    Query(QueryArgs),
    /// Print the last records, and with -f the new ones as they come.
    Tail {
        /// The log directory.
        dir: PathBuf,
        /// Keep printing records as they are written.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many of the last records to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Make a checkpoint signing key: PREFIX.key (private, mode 0600) and
    /// PREFIX.vkey (the verifier key to give auditors and witnesses).
    Keygen {
        /// Key name, normally the log's origin (e.g. example.com/audit/agent-1).
        #[arg(long)]
        name: String,
        /// Path prefix of the two files.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Print the JSON Schema of a record (docs/audit.schema.json).
    Schema,
}

/// `audit query` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct QueryArgs {
    /// The log directory.
    dir: PathBuf,
    /// Agent id.
    #[arg(long)]
    agent: Option<String>,
    /// From this time: RFC 3339, or a duration ago (30m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Up to this time: RFC 3339, or a duration ago.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// W3C trace id (32 hex digits).
    #[arg(long, value_name = "TRACE_ID")]
    trace: Option<String>,
    /// Policy tier (1-4).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    tier: Option<u8>,
    /// success, failure, partial, refused or pending.
    #[arg(long, value_parser = parse_outcome)]
    outcome: Option<OutcomeStatus>,
    /// Action: TOOL.ACTION, a tool, an action or an MCP tool name.
    #[arg(long)]
    action: Option<String>,
    /// Record kind (tool_call, approval_decided, kernel_deny, ...).
    #[arg(long, value_parser = parse_kind)]
    kind: Option<RecordKind>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Stop after this many records.
    #[arg(long)]
    limit: Option<u64>,
}

fn parse_outcome(s: &str) -> Result<OutcomeStatus, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!("`{s}` is not an outcome: success, failure, partial, refused or pending")
    })
}

fn parse_kind(s: &str) -> Result<RecordKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("`{s}` is not a record kind (see docs/audit.md: tool_call, approval_decided, kernel_deny, ...)"))
}

/// A time argument: RFC 3339, `now`, or a duration ago.
fn parse_time(s: &str, flag: &str) -> Result<Timestamp, String> {
    if s == "now" {
        return Ok(Timestamp::now());
    }
    if let Some(t) = Timestamp::parse(s) {
        return Ok(t);
    }
    agent_sidecar::policy::gateway::parse_duration(s)
        .map(|d| Timestamp::now().minus(d))
        .ok_or_else(|| {
            format!("{flag} `{s}` is neither an RFC 3339 time (2026-05-04T10:00:00Z) nor a duration ago (30m, 2h, 7d)")
        })
}

/// Runs one subcommand; returns the exit code.
pub(crate) fn run(cmd: AuditCommand) -> i32 {
    match execute(cmd) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("agent-sidecar: {message}");
            2
        }
    }
}

fn execute(cmd: AuditCommand) -> Result<i32, String> {
    match cmd {
        AuditCommand::Verify {
            dir,
            key,
            witness,
            json,
        } => verify_command(&dir, key.as_deref(), witness, json),
        AuditCommand::Prove {
            dir,
            seq,
            size,
            from,
            to,
        } => {
            let doc = match (seq, from, to) {
                (Some(seq), _, _) => ProofDoc::Inclusion(
                    proof::prove_inclusion(&dir, seq, size)
                        .map_err(|e| format!("{}: {e}", dir.display()))?,
                ),
                (None, Some(from), Some(to)) => ProofDoc::Consistency(
                    proof::prove_consistency(&dir, from, to)
                        .map_err(|e| format!("{}: {e}", dir.display()))?,
                ),
                _ => return Err("give --seq N, or --from SIZE1 --to SIZE2".into()),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
            );
            Ok(0)
        }
        AuditCommand::CheckProof {
            proof: path,
            checkpoint,
            key,
        } => {
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let doc: ProofDoc = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}: not a proof printed by `agent-sidecar audit prove`: {e}",
                    path.display()
                )
            })?;
            let key = key.as_deref().map(load_key).transpose()?;
            let note = checkpoint
                .as_ref()
                .map(|p| fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display())))
                .transpose()?;
            match proof::check(&doc, note.as_deref(), key.as_ref()) {
                Ok(checked) => {
                    println!("valid: {}", checked.summary);
                    if checked.signed {
                        println!(
                            "the root is signed by {}",
                            key.as_ref().map(|k| k.name()).unwrap_or("")
                        );
                    } else if key.is_some() {
                        println!(
                            "note: no signed checkpoint of this size to tie the root to the key"
                        );
                    }
                    Ok(0)
                }
                Err(e) => {
                    println!("INVALID: {e}");
                    Ok(1)
                }
            }
        }
        AuditCommand::Query(q) => query_command(q),
        AuditCommand::Tail {
            dir,
            follow,
            lines,
            format,
        } => tail_command(&dir, follow, lines, format),
        AuditCommand::Keygen { name, out } => keygen(&name, &out),
        AuditCommand::Schema => {
            print!("{}", schema::audit_schema_text());
            Ok(0)
        }
    }
}

/// A verifier key from a file, or given as NAME+ID+KEY.
fn load_key(arg: &str) -> Result<NoteVerifier, String> {
    let text = match fs::read_to_string(arg) {
        Ok(t) => t,
        Err(_) if arg.contains('+') && !Path::new(arg).exists() => arg.to_string(),
        Err(e) => return Err(format!("reading the verifier key {arg}: {e}")),
    };
    NoteVerifier::parse(&text).map_err(|e| {
        format!("--key {arg}: {e} (a verifier key is NAME+ID+KEY, as `audit keygen` writes to PREFIX.vkey)")
    })
}

fn verify_command(
    dir: &Path,
    key: Option<&str>,
    witnesses: Vec<PathBuf>,
    json: bool,
) -> Result<i32, String> {
    let opts = VerifyOptions {
        key: key.map(load_key).transpose()?,
        witnesses,
    };
    let report = verify(dir, &opts).map_err(|e| e.to_string())?;
    let code = if report.valid() { 0 } else { 1 };
    if json {
        let problems: Vec<_> = report
            .problems()
            .map(|p| {
                serde_json::json!({
                    "kind": p.kind.as_str(),
                    "seq": p.seq,
                    "location": p.location,
                    "message": p.message,
                })
            })
            .collect();
        let out = serde_json::json!({
            "valid": report.valid(),
            "records": report.records,
            "deleted_by_retention": report.deleted,
            "tree_size": report.size,
            "root": report.root,
            "checkpoints_matched": report.checkpoints,
            "checkpointed_size": report.checkpointed,
            "key": match report.key { KeySource::Given => "given", KeySource::Log => "log", KeySource::None => "none" },
            "problems": problems,
            "warnings": report.warnings,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
        return Ok(code);
    }
    println!(
        "{}: {}",
        dir.display(),
        if report.valid() { "VALID" } else { "TAMPERED" }
    );
    println!(
        "records: {} read, {} deleted by retention; tree size {}, root {}",
        report.records, report.deleted, report.size, report.root
    );
    println!(
        "checkpoints: {} matched, covering {} records",
        report.checkpoints, report.checkpointed
    );
    for p in report.problems() {
        println!("FIRST BAD {p}");
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(code)
}

fn query_command(q: QueryArgs) -> Result<i32, String> {
    let filter = QueryFilter {
        agent: q.agent,
        since: q
            .since
            .as_deref()
            .map(|s| parse_time(s, "--since"))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|s| parse_time(s, "--until"))
            .transpose()?,
        trace: q.trace,
        tier: q.tier,
        outcome: q.outcome,
        action: q.action,
        kind: q.kind,
    };
    let mut out = std::io::stdout().lock();
    if matches!(q.format, Format::Table) {
        let _ = writeln!(out, "{}", TABLE_HEADER);
    }
    let mut n = 0u64;
    let limit = q.limit.unwrap_or(u64::MAX);
    let stats = query(&q.dir, &filter, |record, line| {
        print_record(&mut out, record, line, q.format);
        n += 1;
        if n >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .map_err(|e| e.to_string())?;
    eprintln!(
        "{} records; read {} of {} segments, {} lines",
        stats.matched, stats.segments_opened, stats.segments_total, stats.lines
    );
    Ok(0)
}

const TABLE_HEADER: &str = "SEQ\tTIME\tKIND\tPHASE\tAGENT\tACTION\tTIER\tOUTCOME\tTRACE";

fn print_record(out: &mut impl Write, r: &AuditRecord, line: &[u8], format: Format) {
    let _ = match format {
        Format::Json => out.write_all(line).and_then(|()| out.write_all(b"\n")),
        Format::Table => {
            let action = r
                .action
                .as_ref()
                .map(|a| {
                    let target = a.target.as_ref().map(|t| {
                        t.mcp_tool.clone().unwrap_or_else(|| {
                            format!(
                                "{} {}{}",
                                t.method.as_deref().unwrap_or(""),
                                t.host.as_deref().unwrap_or(""),
                                t.path.as_deref().unwrap_or("")
                            )
                        })
                    });
                    format!(
                        "{}.{} {}",
                        a.tool.as_deref().unwrap_or("-"),
                        a.name.as_deref().unwrap_or("-"),
                        target.unwrap_or_default().trim()
                    )
                })
                .unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                r.seq,
                r.time,
                r.kind.as_str(),
                serde_json::to_value(r.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                r.agent.id,
                action,
                r.policy.as_ref().map_or("-".into(), |p| if p.deny {
                    "deny".into()
                } else {
                    p.tier.to_string()
                }),
                r.outcome.as_ref().map_or("-", |o| o.status.as_str()),
                r.trace.as_ref().map_or("-", |t| t.trace_id.as_str()),
            )
        }
    };
}

fn tail_command(dir: &Path, follow: bool, lines: usize, format: Format) -> Result<i32, String> {
    let segments = list_segments(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let present: Vec<_> = segments.into_iter().filter(|s| s.present).collect();
    if present.is_empty() && !dir.join("segments").is_dir() {
        return Err(format!(
            "{} is not an audit log directory (no segments/ in it)",
            dir.display()
        ));
    }
    let mut out = std::io::stdout().lock();
    if matches!(format, Format::Table) {
        let _ = writeln!(out, "{TABLE_HEADER}");
    }
    // The last `lines` records: from the newest segments back.
    let mut last: Vec<Vec<u8>> = Vec::new();
    for seg in present.iter().rev() {
        let mut seg_lines = Vec::new();
        let mut r = LineReader::open(&seg.records, 0)
            .map_err(|e| format!("{}: {e}", seg.records.display()))?;
        while let Some(Line::Whole(_, l)) = r.next_line().map_err(|e| e.to_string())? {
            seg_lines.push(l.to_vec());
        }
        seg_lines.extend(last);
        last = seg_lines;
        if last.len() >= lines {
            break;
        }
    }
    for line in last.iter().skip(last.len().saturating_sub(lines)) {
        if let Ok(r) = AuditRecord::parse(line) {
            print_record(&mut out, &r, line, format);
        }
    }
    let _ = out.flush();
    if !follow {
        return Ok(0);
    }
    // Follow: the newest segment from its end, then each newer one.
    let mut current = present.last().cloned();
    let mut offset = current
        .as_ref()
        .and_then(|s| fs::metadata(&s.records).ok())
        .map_or(0, |m| m.len());
    loop {
        if let Some(seg) = &current {
            let mut r = LineReader::open(&seg.records, offset)
                .map_err(|e| format!("{}: {e}", seg.records.display()))?;
            while let Some(Line::Whole(_, l)) = r.next_line().map_err(|e| e.to_string())? {
                if let Ok(rec) = AuditRecord::parse(l) {
                    print_record(&mut out, &rec, l, format);
                }
                offset = r.offset();
            }
            let _ = out.flush();
        }
        let newer = list_segments(dir)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|s| s.present)
            .find(|s| current.as_ref().is_none_or(|c| s.first_seq > c.first_seq));
        if let Some(next) = newer {
            // Finish the current segment first (a last batch after the seal).
            if let Some(seg) = &current
                && fs::metadata(&seg.records).map_or(0, |m| m.len()) > offset
            {
                continue;
            }
            current = Some(next);
            offset = 0;
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn keygen(name: &str, out: &Path) -> Result<i32, String> {
    let signer = NoteSigner::generate(name).map_err(|e| e.to_string())?;
    let key_path = PathBuf::from(format!("{}.key", out.display()));
    let vkey_path = PathBuf::from(format!("{}.vkey", out.display()));
    for p in [&key_path, &vkey_path] {
        if p.exists() {
            return Err(format!(
                "{} exists; choose another --out or remove it first (a signing key is never overwritten)",
                p.display()
            ));
        }
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| format!("creating {}: {e}", key_path.display()))?;
    f.write_all(format!("{}\n", &*signer.to_private_text()).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing {}: {e}", key_path.display()))?;
    fs::write(&vkey_path, format!("{}\n", signer.verifier().to_text()))
        .map_err(|e| format!("writing {}: {e}", vkey_path.display()))?;
    println!(
        "signing key:  {} (mode 0600; keep it secret)",
        key_path.display()
    );
    println!("verifier key: {}", vkey_path.display());
    println!("{}", signer.verifier().to_text());
    Ok(0)
}
