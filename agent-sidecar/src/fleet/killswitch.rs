//! [`KillSwitches`]: the switches one sidecar follows (the watched file's
//! and its own), and what it does when one covers its agent.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    controls::{Controls, ControlsError, KillSwitch, valid_id},
    identity::FleetIdentity,
};

/// What a kill switch acts on: the gateway and the kernel.
pub trait Stopper: Send + Sync {
    /// Whether the agent is stopped (quarantined) now, for any reason.
    fn stopped(&self) -> bool;
    /// Stops the agent: every call refused, every packet dropped, its open
    /// sockets destroyed, its held approvals cancelled with `reason`.
    fn stop(&self, reason: &str);
    /// Lets the agent go again, recorded as done by `by` for `reason`.
    fn resume(&self, by: &str, reason: &str) -> Result<(), String>;
}

/// Where kill switch steps go (the action event bus implements it).
pub trait KillSwitchSink: Send + Sync {
    /// One step.
    fn kill_switch(&self, event: &KillSwitchEvent<'_>);
}

/// Where a switch comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchSource {
    /// The watched fleet-controls file.
    File,
    /// Tripped on this sidecar (admin API), kept in its state directory.
    Local,
}

/// A step of a kill switch, as an action event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KillSwitchStep {
    /// Tripped on this sidecar through its admin API.
    Tripped,
    /// A switch covering the agent is in force: the agent is stopped.
    Engaged,
    /// No switch covers the agent any more: it runs again.
    Released,
    /// The fleet-controls file changed but could not be taken; the last
    /// good switches stay in force.
    ControlsRefused,
}

/// A kill switch step (an action event: audit record, log, metric, SOC).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct KillSwitchEvent<'a> {
    /// The agent.
    pub agent_id: &'a str,
    /// What happened.
    pub step: KillSwitchStep,
    /// The switch, when the step is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<&'a KillSwitch>,
    /// Where it comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SwitchSource>,
    /// Who tripped or released it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'a str>,
    /// Why (the release's reason, or the file's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

/// A switch as the admin API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwitchView {
    /// The switch.
    #[serde(flatten)]
    pub switch: KillSwitch,
    /// Where it comes from.
    pub source: SwitchSource,
    /// Whether it covers this sidecar's agent.
    pub covers: bool,
}

/// Why a local trip or release was refused.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The request is not usable.
    #[error("{0}")]
    Invalid(String),
    /// No such switch.
    #[error("no kill switch `{0}` is in force on this sidecar")]
    Unknown(String),
    /// The switch comes from the fleet-controls file.
    #[error(
        "kill switch `{0}` comes from the fleet-controls file: remove it there; a sidecar cannot release a switch its control plane set"
    )]
    FromFile(String),
    /// The same id is in force already.
    #[error("a kill switch `{0}` is in force already; choose another id")]
    Duplicate(String),
    /// The local switches could not be written.
    #[error("cannot keep the local kill switches in {}: {source}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What `stat` says of the fleet-controls file: a rename over it (an
/// atomic write, a ConfigMap's symlink swap) changes the inode, a write in
/// place the size or the times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStat {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStat {
    fn of(path: &Path) -> Option<FileStat> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(FileStat {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Every this many watch ticks the file is read even when its stat did
/// not change: a file system with coarse timestamps could hide a quick
/// same-size rewrite from the stat.
const FULL_READ_EVERY: u32 = 10;

#[derive(Default)]
struct State {
    file: Vec<KillSwitch>,
    file_bytes: Option<Vec<u8>>,
    /// The file's identity and times at the last read: an unchanged stat
    /// skips the read (see [`KillSwitches::reload_if_changed`]).
    file_stat: Option<FileStat>,
    file_error: Option<String>,
    local: Vec<KillSwitch>,
    /// Ids of the switches covering the agent, as last reconciled.
    engaged: Vec<String>,
    /// Whether the engagement stopped the agent (it was running).
    stopped_by_us: bool,
}

struct Inner {
    identity: FleetIdentity,
    file: Option<PathBuf>,
    local_path: Option<PathBuf>,
    stopper: Arc<dyn Stopper>,
    sink: Arc<dyn KillSwitchSink>,
    state: Mutex<State>,
}

/// The kill switches one sidecar follows. Cheap to clone.
#[derive(Clone)]
pub struct KillSwitches {
    inner: Arc<Inner>,
}

/// Events to emit once the state lock is released.
type Pending = Vec<(
    KillSwitchStep,
    Option<(KillSwitch, SwitchSource)>,
    Option<String>,
    Option<String>,
)>;

impl KillSwitches {
    /// Follows the fleet-controls `file` (if any) and the local switches
    /// kept under `state_dir`, and stops the agent at once if a switch
    /// covers it (call this before the agent starts). A configured file
    /// that cannot be read or parsed, or an unreadable local store, is an
    /// error: the sidecar must not start without knowing its switches.
    pub fn open(
        identity: FleetIdentity,
        file: Option<PathBuf>,
        state_dir: Option<&Path>,
        stopper: Arc<dyn Stopper>,
        sink: Arc<dyn KillSwitchSink>,
    ) -> Result<Self, ControlsError> {
        let mut state = State::default();
        if let Some(path) = &file {
            let (controls, bytes) = Controls::load(path)?;
            state.file = controls.kill_switches;
            state.file_bytes = Some(bytes);
        }
        let local_path = state_dir.map(|d| d.join("kill-switches.json"));
        if let Some(path) = &local_path {
            match std::fs::read(path) {
                Ok(bytes) => {
                    state.local = serde_json::from_slice(&bytes).map_err(|e| {
                        ControlsError::Invalid {
                            path: path.clone(),
                            message: format!(
                                "the local kill switches are unreadable ({e}); fix or remove the file (removing it releases them)"
                            ),
                        }
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ControlsError::Io {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        let ks = KillSwitches {
            inner: Arc::new(Inner {
                identity,
                file,
                local_path,
                stopper,
                sink,
                state: Mutex::new(state),
            }),
        };
        ks.reconcile(None, None);
        Ok(ks)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The agent this sidecar governs, as switches see it.
    pub fn identity(&self) -> &FleetIdentity {
        &self.inner.identity
    }

    /// Whether a switch covers the agent now.
    pub fn engaged(&self) -> bool {
        !self.lock().engaged.is_empty()
    }

    /// Every switch this sidecar knows, file's first.
    pub fn list(&self) -> Vec<SwitchView> {
        let s = self.lock();
        let who = &self.inner.identity;
        s.file
            .iter()
            .map(|k| (k, SwitchSource::File))
            .chain(s.local.iter().map(|k| (k, SwitchSource::Local)))
            .map(|(k, source)| SwitchView {
                switch: k.clone(),
                source,
                covers: k.scope.covers(who),
            })
            .collect()
    }

    /// The fleet-controls file's last error, while its last good switches
    /// stay in force.
    pub fn file_error(&self) -> Option<String> {
        self.lock().file_error.clone()
    }

    /// Re-reads the fleet-controls file; takes it if it changed and is
    /// valid, else keeps the last good switches (an error is logged and
    /// is an action event once per distinct error). Returns whether the
    /// switches changed.
    pub fn reload(&self) -> bool {
        let Some(path) = &self.inner.file else {
            return false;
        };
        let stat = FileStat::of(path);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.file_failed(format!(
                    "cannot read {}: {e}; the last good kill switches stay in force",
                    path.display()
                ));
                return false;
            }
        };
        {
            let mut s = self.lock();
            s.file_stat = stat;
            if s.file_bytes.as_deref() == Some(bytes.as_slice()) {
                return false;
            }
        }
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| format!("{}: not UTF-8 ({e})", path.display()))
            .and_then(|t| Controls::parse(path, t).map_err(|e| e.to_string()));
        match parsed {
            Ok(controls) => {
                {
                    let mut s = self.lock();
                    s.file = controls.kill_switches;
                    s.file_bytes = Some(bytes);
                    s.file_error = None;
                }
                self.reconcile(None, None);
                true
            }
            Err(e) => {
                self.lock().file_bytes = Some(bytes);
                self.file_failed(format!("{e}; the last good kill switches stay in force"));
                false
            }
        }
    }

    /// [`reload`](Self::reload), unless the file's stat is the one of the
    /// last read (and `force` is false): the watch's every tick then costs
    /// one `stat`, not a read and a compare.
    pub fn reload_if_changed(&self, force: bool) -> bool {
        let Some(path) = &self.inner.file else {
            return false;
        };
        if !force {
            let last = self.lock().file_stat;
            if last.is_some() && last == FileStat::of(path) {
                return false;
            }
        }
        self.reload()
    }

    fn file_failed(&self, message: String) {
        {
            let mut s = self.lock();
            if s.file_error.as_deref() == Some(message.as_str()) {
                return;
            }
            s.file_error = Some(message.clone());
        }
        tracing::error!(target: "agent_sidecar::fleet", agent = %self.inner.identity.agent_id, error = %message, "fleet-controls file refused");
        self.inner.sink.kill_switch(&KillSwitchEvent {
            agent_id: &self.inner.identity.agent_id,
            step: KillSwitchStep::ControlsRefused,
            switch: None,
            source: Some(SwitchSource::File),
            by: None,
            reason: Some(&message),
        });
    }

    /// Re-reads the file every `every` (and re-applies the switches, so
    /// that a quarantine released by other means while a switch is in
    /// force is stopped again) until the task is aborted.
    pub fn spawn_watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u32 = 0;
            loop {
                tick.tick().await;
                n = n.wrapping_add(1);
                let t = this.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if !t.reload_if_changed(n.is_multiple_of(FULL_READ_EVERY)) {
                        t.reconcile(None, None);
                    }
                })
                .await;
            }
        })
    }

    /// Trips `switch` on this sidecar (kept across restarts). Its scope
    /// must cover this sidecar's agent: a switch for others is tripped in
    /// the fleet-controls file.
    pub fn trip_local(&self, switch: KillSwitch) -> Result<SwitchView, LocalError> {
        if !valid_id(&switch.id) {
            return Err(LocalError::Invalid(format!(
                "id `{}`: use 1-128 letters, digits, `-`, `_` or `.`",
                switch.id
            )));
        }
        if switch.reason.trim().is_empty() {
            return Err(LocalError::Invalid(
                "a reason is required (the agent and the SOC are told)".into(),
            ));
        }
        if !switch.scope.covers(&self.inner.identity) {
            return Err(LocalError::Invalid(format!(
                "scope {} does not cover this sidecar's agent `{}`; trip switches for other agents in the fleet-controls file every sidecar follows",
                switch.scope.label(),
                self.inner.identity.agent_id
            )));
        }
        {
            let mut s = self.lock();
            if s.file.iter().chain(&s.local).any(|k| k.id == switch.id) {
                return Err(LocalError::Duplicate(switch.id));
            }
            let mut local = s.local.clone();
            local.push(switch.clone());
            self.store(&local)?;
            s.local = local;
        }
        self.emit(
            KillSwitchStep::Tripped,
            Some((switch.clone(), SwitchSource::Local)),
            switch.by.clone(),
            None,
        );
        self.reconcile(None, None);
        Ok(SwitchView {
            switch,
            source: SwitchSource::Local,
            covers: true,
        })
    }

    /// Releases the local switch `id`, as `approver` for `reason`.
    pub fn release_local(&self, id: &str, approver: &str, reason: &str) -> Result<(), LocalError> {
        if approver.trim().is_empty() || reason.trim().is_empty() {
            return Err(LocalError::Invalid(
                "an approver and a reason are required to release a kill switch".into(),
            ));
        }
        {
            let mut s = self.lock();
            if s.file.iter().any(|k| k.id == id) {
                return Err(LocalError::FromFile(id.to_string()));
            }
            let Some(i) = s.local.iter().position(|k| k.id == id) else {
                return Err(LocalError::Unknown(id.to_string()));
            };
            let mut local = s.local.clone();
            local.remove(i);
            self.store(&local)?;
            s.local = local;
        }
        self.reconcile(Some(approver), Some(reason));
        Ok(())
    }

    fn store(&self, local: &[KillSwitch]) -> Result<(), LocalError> {
        let Some(path) = &self.inner.local_path else {
            return Ok(());
        };
        let err = |source| LocalError::Store {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(local).map_err(|e| err(e.into()))?;
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Applies the switches in force: stops the agent when one covers it,
    /// lets it go when none does any more (only if the switches stopped
    /// it), and stops it again if something else let it go meanwhile.
    pub fn reconcile(&self, by: Option<&str>, why: Option<&str>) {
        let mut pending: Pending = Vec::new();
        {
            let mut s = self.lock();
            let who = &self.inner.identity;
            let covering: Vec<(KillSwitch, SwitchSource)> = s
                .file
                .iter()
                .map(|k| (k, SwitchSource::File))
                .chain(s.local.iter().map(|k| (k, SwitchSource::Local)))
                .filter(|(k, _)| k.scope.covers(who))
                .map(|(k, src)| (k.clone(), src))
                .collect();
            let ids: Vec<String> = covering.iter().map(|(k, _)| k.id.clone()).collect();
            if !covering.is_empty() {
                let first = &covering[0].0;
                let reason = format!(
                    "kill switch `{}` ({}): {}",
                    first.id,
                    first.scope.label(),
                    first.reason
                );
                if s.engaged.is_empty() {
                    s.stopped_by_us = !self.inner.stopper.stopped();
                    self.inner.stopper.stop(&reason);
                } else if !self.inner.stopper.stopped() {
                    tracing::warn!(target: "agent_sidecar::fleet", agent = %who.agent_id, switch = %first.id, "the agent was let go while a kill switch is in force; stopped again");
                    s.stopped_by_us = true;
                    self.inner.stopper.stop(&reason);
                }
                for (k, src) in &covering {
                    if !s.engaged.contains(&k.id) {
                        pending.push((
                            KillSwitchStep::Engaged,
                            Some((k.clone(), *src)),
                            k.by.clone(),
                            None,
                        ));
                    }
                }
            } else if !s.engaged.is_empty() {
                let by = by.unwrap_or("fleet-controls file");
                let why = why.unwrap_or("no kill switch covers the agent any more");
                if s.stopped_by_us
                    && let Err(e) = self.inner.stopper.resume(by, why)
                {
                    tracing::error!(target: "agent_sidecar::fleet", agent = %who.agent_id, error = %e, "cannot release the agent; it stays stopped");
                }
                s.stopped_by_us = false;
                pending.push((
                    KillSwitchStep::Released,
                    None,
                    Some(by.to_string()),
                    Some(why.to_string()),
                ));
            }
            s.engaged = ids;
        }
        for (step, sw, by, why) in pending {
            self.emit(step, sw, by, why);
        }
    }

    fn emit(
        &self,
        step: KillSwitchStep,
        switch: Option<(KillSwitch, SwitchSource)>,
        by: Option<String>,
        reason: Option<String>,
    ) {
        let agent = &self.inner.identity.agent_id;
        match (&switch, step) {
            (Some((k, src)), _) => {
                tracing::warn!(target: "agent_sidecar::fleet", agent = %agent, step = ?step, switch = %k.id, scope = %k.scope.label(), source = ?src, reason = %k.reason, "kill switch")
            }
            (None, _) => {
                tracing::warn!(target: "agent_sidecar::fleet", agent = %agent, step = ?step, by = by.as_deref().unwrap_or(""), reason = reason.as_deref().unwrap_or(""), "kill switch")
            }
        }
        self.inner.sink.kill_switch(&KillSwitchEvent {
            agent_id: agent,
            step,
            switch: switch.as_ref().map(|(k, _)| k),
            source: switch.as_ref().map(|(_, s)| *s),
            by: by.as_deref(),
            reason: reason.as_deref(),
        });
    }
}
