//! [`AuditTrail`]: the audit log of one governed agent, opened from the
//! operator's settings ([`AuditOptions`]), with its signing key (generated
//! on first start), its witness files, and its [`AuditSink`]. `run` opens
//! one per agent; any other mode that governs an agent opens it the same
//! way. The first record is `sidecar_started`; [`AuditTrail::close`]
//! writes `sidecar_stopped`, fsyncs and signs a last checkpoint.

use std::{
    io::Write as _,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use super::{
    super::{SidecarEvent, SidecarStep},
    sink::AuditSink,
};
use crate::audit::{
    AuditConfig, AuditError, AuditLog, AuditMetrics, CheckpointSink, FileSink, FsyncPolicy,
    NoteSigner, record::AgentIdentity, store::VKEY_FILE,
};

/// Default fsync window of the audit log.
pub(super) const DEFAULT_FSYNC: FsyncPolicy = FsyncPolicy::Interval(Duration::from_millis(10));
/// Default time between two signed checkpoints (when records were added).
pub(super) const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// The operator's audit settings for one agent.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// The log directory; default `<state dir>/audit/<agent id>`.
    pub dir: Option<PathBuf>,
    /// When records are fsynced (tier >= 2 decisions always are before
    /// their call is forwarded).
    pub fsync: FsyncPolicy,
    /// How often a checkpoint is signed.
    pub checkpoint_interval: Duration,
    /// The signing key (a C2SP note key, as `audit keygen` writes it);
    /// default `<state dir>/audit-keys/<agent id>.key`, generated (mode
    /// 0600) when absent.
    pub key_file: Option<PathBuf>,
    /// Files outside the log directory that receive every checkpoint.
    pub witness_files: Vec<PathBuf>,
    /// Let actions through when their record cannot be written (counted,
    /// logged, recorded when the log comes back). Off by default.
    pub fail_open: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            dir: None,
            fsync: DEFAULT_FSYNC,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            key_file: None,
            witness_files: Vec::new(),
            fail_open: false,
        }
    }
}

/// Why the audit trail cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuditTrailError {
    /// The signing key cannot be read, parsed or created.
    #[error("audit signing key {path}: {reason}; {fix}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// How to fix it.
        fix: &'static str,
    },
    /// The log cannot be opened.
    #[error(transparent)]
    Log(#[from] AuditError),
}

/// The open audit trail of one agent.
pub struct AuditTrail {
    sink: AuditSink,
    agent_id: String,
    key_file: PathBuf,
    generated_key: bool,
}

impl AuditTrail {
    /// Opens the trail of `identity` under `state_dir` and writes its
    /// `sidecar_started` record (with `start`, a JSON object).
    pub fn open(
        opts: &AuditOptions,
        state_dir: &Path,
        identity: AgentIdentity,
        metrics: Option<AuditMetrics>,
        start: Value,
    ) -> Result<AuditTrail, AuditTrailError> {
        let agent_id = identity.id.clone();
        let dir = opts
            .dir
            .clone()
            .unwrap_or_else(|| state_dir.join("audit").join(&agent_id));
        let key_file = opts
            .key_file
            .clone()
            .unwrap_or_else(|| state_dir.join("audit-keys").join(format!("{agent_id}.key")));
        let origin = format!("agent-sidecar/audit/{}", key_safe(&agent_id));
        let (signer, generated_key) = load_or_generate(&key_file, &origin)?;
        private_dir(&dir)?;
        let mut config = AuditConfig::new(&dir, origin, identity.clone());
        config.signer = Some(signer);
        config.fsync = opts.fsync;
        config.checkpoint_interval = opts.checkpoint_interval;
        config.sinks = opts
            .witness_files
            .iter()
            .map(|p| Box::new(FileSink::new(p)) as Box<dyn CheckpointSink>)
            .collect();
        let log = AuditLog::open(config)?;
        let sink = AuditSink::new(log, identity, opts.fail_open, metrics);
        let trail = AuditTrail {
            sink,
            agent_id,
            key_file,
            generated_key,
        };
        trail.lifecycle(SidecarStep::Started, &start);
        tracing::info!(
            dir = %trail.dir().display(),
            key = %trail.key_file.display(),
            generated_key = trail.generated_key,
            verifier_key = %trail.dir().join(VKEY_FILE).display(),
            fail_open = opts.fail_open,
            "audit trail open: verify with `agent-sidecar audit verify {} --key {}`",
            trail.dir().display(),
            trail.dir().join(VKEY_FILE).display(),
        );
        if opts.fail_open {
            tracing::warn!(
                "--audit-fail-open: actions go ahead when their record cannot be written (counted in agent_sidecar_audit_fail_open_total)"
            );
        }
        Ok(trail)
    }

    /// The sink to add to the event bus, and the gateway's journal.
    pub fn sink(&self) -> AuditSink {
        self.sink.clone()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        self.sink.log().dir()
    }

    /// The signing key file.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    fn lifecycle(&self, step: SidecarStep, detail: &Value) {
        self.sink.sidecar(SidecarEvent {
            agent_id: &self.agent_id,
            step,
            detail,
        });
    }

    /// Writes `sidecar_stopped` (with `stop`, a JSON object), fsyncs and
    /// signs a last checkpoint, and closes the log.
    pub fn close(self, stop: Value) -> Result<(), AuditError> {
        self.lifecycle(SidecarStep::Stopped, &stop);
        let closed = self.sink.log().close();
        match &closed {
            Ok(()) => {
                tracing::info!(dir = %self.dir().display(), "audit log closed; last checkpoint signed")
            }
            Err(e) => {
                tracing::error!(dir = %self.dir().display(), error = %e, "audit log closed with an error")
            }
        }
        closed
    }
}

/// A key name from an agent id (no spaces, no `+`).
fn key_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_whitespace() || c == '+' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The log directory, created 0700 (records name what the agent did; the
/// agent must not read them, nor anyone but the operator).
fn private_dir(dir: &Path) -> Result<(), AuditTrailError> {
    let open = |e: std::io::Error| {
        AuditTrailError::Log(AuditError::open(
            dir,
            e,
            "give --audit-dir a directory the sidecar can create and write",
        ))
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(open)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(open)
}

/// Reads the signing key, or generates one (mode 0600, its directory 0700)
/// when the file does not exist.
fn load_or_generate(path: &Path, name: &str) -> Result<(NoteSigner, bool), AuditTrailError> {
    let key_err = |reason: String, fix: &'static str| AuditTrailError::Key {
        path: path.to_path_buf(),
        reason,
        fix,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(key_err(
                    format!("mode {mode:o} lets others read the signing key"),
                    "chmod 600 it (and rotate it if others may have read it)",
                ));
            }
            let signer = NoteSigner::parse(text.trim()).map_err(|e| {
                key_err(
                    e.to_string(),
                    "give --audit-key a key written by `agent-sidecar audit keygen`",
                )
            })?;
            Ok((signer, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = NoteSigner::generate(name)
                .map_err(|e| key_err(e.to_string(), "report this as a bug"))?;
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| {
                        key_err(
                            e.to_string(),
                            "give --audit-key a path in a writable directory",
                        )
                    })?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    key_err(
                        e.to_string(),
                        "give --audit-key a path in a writable directory",
                    )
                })?;
            f.write_all(format!("{}\n", &*signer.to_private_text()).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| key_err(e.to_string(), "check the disk"))?;
            tracing::warn!(key = %path.display(), "generated a new audit signing key (mode 0600); its verifier key is written as log.vkey in the audit directory: keep a copy off the host");
            Ok((signer, true))
        }
        Err(e) => Err(key_err(
            e.to_string(),
            "check the file's permissions, or give --audit-key another path",
        )),
    }
}
