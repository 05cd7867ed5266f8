//! [`GrantStore`]: the grants of one sidecar, persisted in one JSON file of
//! the state directory (written to a temporary file, synced, then renamed
//! over the old one), and the expiry of the grants in force.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{
    model::{Grant, GrantBounds, GrantError, GrantRequest, GrantState},
    sink::{GrantSink, GrantStep},
};

/// The grants of one sidecar. Cheap to clone.
#[derive(Clone)]
pub struct GrantStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    bounds: GrantBounds,
    grants: Mutex<Vec<Grant>>,
    /// Told of every step once it is on disk (the kernel overlay, the
    /// action event bus).
    sinks: Mutex<Vec<Arc<dyn GrantSink>>>,
}

/// Unix seconds now.
pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl GrantStore {
    /// Opens (or starts) the grants file `dir/grants.json` with `bounds`.
    /// Grants whose time ran out while the sidecar was down are expired
    /// at once.
    pub fn open(dir: &Path, bounds: GrantBounds) -> Result<(Self, Vec<Grant>), GrantError> {
        let path = dir.join("grants.json");
        let io = |source| GrantError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let grants: Vec<Grant> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| GrantError::Corrupt {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let store = GrantStore {
            inner: Arc::new(Inner {
                path,
                bounds,
                grants: Mutex::new(grants),
                sinks: Mutex::new(Vec::new()),
            }),
        };
        let expired = store.expire_due(now_secs())?;
        Ok((store, expired))
    }

    /// Tells `sink` of every later step (requested, approved, denied,
    /// revoked, expired, refused).
    pub fn add_sink(&self, sink: Arc<dyn GrantSink>) {
        self.inner
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sink);
    }

    fn tell(
        &self,
        step: GrantStep,
        grant: Option<&Grant>,
        request: Option<&GrantRequest>,
        detail: Option<&str>,
    ) {
        let sinks = self
            .inner
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if sinks.is_empty() {
            return;
        }
        let in_force = self.in_force();
        for s in sinks {
            s.grant(&in_force, step, grant, request, detail);
        }
    }

    fn told(
        &self,
        step: GrantStep,
        result: Result<Grant, GrantError>,
        request: Option<&GrantRequest>,
    ) -> Result<Grant, GrantError> {
        match &result {
            Ok(g) => self.tell(step, Some(g), None, None),
            Err(e) => self.tell(
                GrantStep::Refused,
                None,
                request,
                Some(&format!("{}: {e}", step.as_str())),
            ),
        }
        result
    }

    /// The bounds requests are checked against.
    pub fn bounds(&self) -> &GrantBounds {
        &self.inner.bounds
    }

    /// Records a request within the bounds as pending.
    pub fn request(&self, req: GrantRequest) -> Result<Grant, GrantError> {
        let asked = req.clone();
        let result = self.record_request(req);
        self.told(GrantStep::Requested, result, Some(&asked))
    }

    fn record_request(&self, req: GrantRequest) -> Result<Grant, GrantError> {
        self.inner.bounds.check(&req)?;
        let grant = Grant {
            id: format!("g-{:016x}", rand::random::<u64>()),
            request: req,
            state: GrantState::Pending,
            decided_by: None,
            reason: None,
            created_at: now_secs(),
            expires_at: None,
        };
        self.update(|grants| {
            grants.push(grant.clone());
            Ok(grant.clone())
        })
    }

    /// Approves a pending grant: in force for its TTL from now. The
    /// bounds are checked again (they may have changed since the request).
    pub fn approve(&self, id: &str, approver: &str, reason: &str) -> Result<Grant, GrantError> {
        let bounds = self.inner.bounds.clone();
        let result = self.decide(id, GrantState::Pending, "approved", |g| {
            bounds.check_approver(g, approver)?;
            bounds.check(&g.request)?;
            g.state = GrantState::Approved;
            g.expires_at = Some(now_secs() + g.request.ttl_secs);
            g.decided_by = Some(approver.trim().to_string());
            g.reason = Some(reason.to_string());
            Ok(())
        });
        self.told(GrantStep::Approved, result, None)
    }

    /// Denies a pending grant.
    pub fn deny(&self, id: &str, approver: &str, reason: &str) -> Result<Grant, GrantError> {
        let bounds = self.inner.bounds.clone();
        let result = self.decide(id, GrantState::Pending, "denied", |g| {
            bounds.check_approver(g, approver)?;
            g.state = GrantState::Denied;
            g.decided_by = Some(approver.trim().to_string());
            g.reason = Some(reason.to_string());
            Ok(())
        });
        self.told(GrantStep::Denied, result, None)
    }

    /// Revokes an approved grant before its expiry.
    pub fn revoke(&self, id: &str, by: &str, reason: &str) -> Result<Grant, GrantError> {
        if by.trim().is_empty() {
            return Err(GrantError::Empty("revoked_by"));
        }
        let result = self.decide(id, GrantState::Approved, "revoked", |g| {
            g.state = GrantState::Revoked;
            g.decided_by = Some(by.trim().to_string());
            g.reason = Some(reason.to_string());
            Ok(())
        });
        self.told(GrantStep::Revoked, result, None)
    }

    fn decide(
        &self,
        id: &str,
        wanted: GrantState,
        verb: &'static str,
        change: impl FnOnce(&mut Grant) -> Result<(), GrantError>,
    ) -> Result<Grant, GrantError> {
        self.update(|grants| {
            let g = grants
                .iter_mut()
                .find(|g| g.id == id)
                .ok_or_else(|| GrantError::NotFound(id.to_string()))?;
            if g.state == GrantState::Approved && !g.in_force(now_secs()) {
                g.state = GrantState::Expired;
            }
            if g.state != wanted {
                return Err(GrantError::WrongState {
                    id: id.to_string(),
                    state: g.state.as_str(),
                    wanted: wanted.as_str(),
                    verb,
                });
            }
            change(g)?;
            Ok(g.clone())
        })
    }

    /// Expires the approved grants whose time is up at `now`; returns them.
    pub fn expire_due(&self, now: u64) -> Result<Vec<Grant>, GrantError> {
        let expired = self.update(|grants| {
            let mut expired = Vec::new();
            for g in grants.iter_mut() {
                if g.state == GrantState::Approved && !g.in_force(now) {
                    g.state = GrantState::Expired;
                    expired.push(g.clone());
                }
            }
            Ok(expired)
        })?;
        for g in &expired {
            self.tell(GrantStep::Expired, Some(g), None, None);
        }
        Ok(expired)
    }

    /// How long until the next approved grant expires (`None`: none is in
    /// force).
    pub fn next_expiry(&self) -> Option<Duration> {
        let now = now_secs();
        self.lock()
            .iter()
            .filter(|g| g.state == GrantState::Approved)
            .filter_map(|g| g.expires_at)
            .min()
            .map(|e| Duration::from_secs(e.saturating_sub(now)))
    }

    /// Every grant, optionally only those in `state`.
    pub fn list(&self, state: Option<GrantState>) -> Vec<Grant> {
        self.lock()
            .iter()
            .filter(|g| state.is_none_or(|s| g.state == s))
            .cloned()
            .collect()
    }

    /// The grants in force now.
    pub fn in_force(&self) -> Vec<Grant> {
        let now = now_secs();
        self.lock()
            .iter()
            .filter(|g| g.in_force(now))
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Grant>> {
        self.inner
            .grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `f` to a copy of the grants; the copy is written and kept
    /// only when `f` succeeds and the file is written.
    fn update<T>(
        &self,
        f: impl FnOnce(&mut Vec<Grant>) -> Result<T, GrantError>,
    ) -> Result<T, GrantError> {
        let mut guard = self.lock();
        let mut next = guard.clone();
        let out = f(&mut next)?;
        if next != *guard {
            self.write(&next)?;
            *guard = next;
        }
        Ok(out)
    }

    fn write(&self, grants: &[Grant]) -> Result<(), GrantError> {
        use std::io::Write;
        let path = &self.inner.path;
        let io = |source| GrantError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(grants).expect("grants serialize");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Expires grants when their time is up (timer-driven, not at their next
/// use): sleeps until the next expiry (or `idle` when none is in force)
/// and hands every expired grant to `on_expired`.
pub async fn run_expiry(store: GrantStore, idle: Duration, on_expired: impl Fn(&Grant)) {
    loop {
        let wait = store.next_expiry().unwrap_or(idle).min(idle);
        tokio::time::sleep(wait).await;
        match store.expire_due(now_secs()) {
            Ok(expired) => expired.iter().for_each(&on_expired),
            Err(e) => tracing::error!(error = %e, "grants: cannot record expired grants"),
        }
    }
}

#[cfg(test)]
mod tests;
