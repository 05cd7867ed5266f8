//! [`Detection`]: the detectors as a consumer of the action events. Each
//! event is folded into its agent's state under one short lock (O(1));
//! the alerts it raises are delivered and answered after the lock is
//! released, so a slow sink never holds up another event.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;

use super::{
    alert::{Activity, Alert, Fold, Pattern},
    baseline::Baseline,
    detectors::{AgentState, Raised},
    observation::Observation,
    store::{BaselineStore, StoreError},
};
use crate::{
    approvals::UnixMillis,
    events::{ActionEvent, ActionSink, DetectionResponse, EventBus},
    policy::{
        Tier,
        detection::{DetectionPolicy, DetectorKind, Response},
    },
};

/// Where alerts go (the SOC's webhook, syslog, a test's list). Called
/// outside every lock, on the task of the event that raised the alert:
/// queue slow work.
pub trait AlertSink: Send + Sync {
    /// A new alert ([`Activity::Create`]) or the final count of a
    /// repeated one ([`Activity::Update`]).
    fn deliver(&self, alert: &Alert, activity: Activity);
}

/// What the detectors may do to an agent.
pub trait Responder: Send + Sync {
    /// Raises the agent's minimum tier to `tier` until `until`.
    fn raise_tier(
        &self,
        agent_id: &str,
        tier: Tier,
        until: UnixMillis,
        reason: &str,
    ) -> Result<(), String>;
    /// Quarantines the agent in the kernel.
    fn quarantine(&self, agent_id: &str, reason: &str) -> Result<(), String>;
}

/// Where the detectors' own health goes (the Prometheus metrics).
pub trait DetectionMetrics: Send + Sync {
    /// One alert delivery to `sink` (`syslog`) ended with `outcome`
    /// (`sent`, `failed` for an attempt that is retried, `dropped`).
    fn alert_delivery(&self, agent_id: &str, sink: &str, outcome: &str);
    /// A baseline could not be read or written.
    fn baseline_store_error(&self, agent_id: &str);
    /// Whether the agent's baseline has learned (its detectors may fire).
    fn baseline_learned(&self, agent_id: &str, learned: bool);
}

/// The detection settings of an agent (from the policy in force).
pub type PolicyLookup = Arc<dyn Fn(&str) -> Arc<DetectionPolicy> + Send + Sync>;
/// Unix ms now (for events that carry no time, and tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Most agents one engine keeps; events of further agents are not
/// observed (counted in [`Detection::agents_refused`]).
pub const MAX_AGENTS: usize = 10_000;

/// How a [`Detection`] is built.
pub struct DetectionOptions {
    /// Each agent's settings.
    pub policy: PolicyLookup,
    /// Where baselines persist (none: in memory only).
    pub store: Option<BaselineStore>,
    /// Where alerts go.
    pub sinks: Vec<Arc<dyn AlertSink>>,
    /// What responses act on (none: `raise_tier` and `quarantine` fail,
    /// and say so in their response event).
    pub responder: Option<Arc<dyn Responder>>,
    /// The clock (default: the system's).
    pub clock: Option<Clock>,
}

/// The behavioural detectors of every agent the events name.
#[derive(Clone)]
pub struct Detection {
    inner: Arc<Inner>,
}

struct Inner {
    agents: Mutex<HashMap<String, AgentState>>,
    policy: PolicyLookup,
    store: Option<BaselineStore>,
    sinks: ArcSwap<Vec<Arc<dyn AlertSink>>>,
    responder: OnceLock<Arc<dyn Responder>>,
    clock: Clock,
    bus: OnceLock<EventBus>,
    metrics: OnceLock<Arc<dyn DetectionMetrics>>,
    alerts: [AtomicU64; DetectorKind::ALL.len()],
    /// Each agent's last action (Unix ms) and whether its idle alert is
    /// raised.
    last_active: Mutex<HashMap<String, (u64, bool)>>,
    store_errors: AtomicU64,
    agents_refused: AtomicU64,
}

fn system_clock() -> u64 {
    UnixMillis::now().0
}

fn new_id() -> String {
    format!("alr_{:032x}", rand::random::<u128>())
}

impl Detection {
    /// An engine with `opts`.
    pub fn new(opts: DetectionOptions) -> Self {
        Detection {
            inner: Arc::new(Inner {
                agents: Mutex::new(HashMap::new()),
                policy: opts.policy,
                store: opts.store,
                sinks: ArcSwap::from_pointee(opts.sinks),
                responder: opts.responder.map(OnceLock::from).unwrap_or_default(),
                clock: opts.clock.unwrap_or_else(|| Arc::new(system_clock)),
                bus: OnceLock::new(),
                metrics: OnceLock::new(),
                alerts: Default::default(),
                last_active: Mutex::new(HashMap::new()),
                store_errors: AtomicU64::new(0),
                agents_refused: AtomicU64::new(0),
            }),
        }
    }

    /// Response events go to `bus` (set once; later calls are ignored).
    pub fn set_bus(&self, bus: EventBus) {
        let _ = self.inner.bus.set(bus);
    }

    /// Store errors and learning states go to `metrics` from now on (set
    /// once).
    pub fn set_metrics(&self, metrics: Arc<dyn DetectionMetrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    fn store_error(&self, agent_id: &str) {
        self.inner.store_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.inner.metrics.get() {
            m.baseline_store_error(agent_id);
        }
    }

    /// Responses act on `responder` from now on (set once, when the
    /// gateway has started; later calls are ignored).
    pub fn set_responder(&self, responder: Arc<dyn Responder>) {
        let _ = self.inner.responder.set(responder);
    }

    /// Alerts also go to `sink` from now on.
    pub fn add_sink(&self, sink: Arc<dyn AlertSink>) {
        self.inner.sinks.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(sink.clone());
            list
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AgentState>> {
        self.inner
            .agents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The agent's state from its file, else seeded from its pool's, else
    /// new. A file that cannot be read is moved aside and the agent
    /// learns anew: that is a fail-open (no alerts until learned),
    /// counted in [`store_errors`](Self::store_errors) and logged.
    fn load(&self, agent_id: &str, policy: &DetectionPolicy) -> AgentState {
        let Some(store) = &self.inner.store else {
            return AgentState::new(Baseline::new(agent_id, policy.pool.clone()));
        };
        let fresh = |pool: Option<Baseline>| {
            let mut b = Baseline::new(agent_id, policy.pool.clone());
            if let Some(p) = pool {
                b.merge(&p);
                tracing::info!(target: "agent_sidecar::detect", agent = agent_id, pool = policy.pool.as_deref().unwrap_or(""), learned = b.learned(), "baseline seeded from its pool");
            }
            AgentState::new(b)
        };
        match store.load_agent(agent_id) {
            Ok(Some(b)) => return AgentState::new(b),
            Ok(None) => {}
            Err(e) => {
                self.store_error(agent_id);
                let path = store.agent_path(agent_id);
                let aside = path.with_extension("json.unreadable");
                let _ = std::fs::rename(&path, &aside);
                tracing::error!(target: "agent_sidecar::detect", agent = agent_id, error = %e, moved_to = %aside.display(), "baseline unreadable: the agent learns anew and no detector fires until it has");
            }
        }
        let pool = match policy.pool.as_deref().map(|p| store.load_pool(p)) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                self.store_error(agent_id);
                tracing::error!(target: "agent_sidecar::detect", agent = agent_id, error = %e, "pool baseline unreadable; not seeding from it");
                None
            }
            None => None,
        };
        fresh(pool)
    }

    /// Loads agent `agent_id`'s baseline now (at start-up, off the event
    /// path).
    pub fn preload(&self, agent_id: &str) {
        let policy = (self.inner.policy)(agent_id);
        if self.lock().contains_key(agent_id) {
            return;
        }
        let state = self.load(agent_id, &policy);
        self.lock().entry(agent_id.to_string()).or_insert(state);
        let now = (self.inner.clock)();
        self.idle_lock()
            .entry(agent_id.to_string())
            .or_insert((now, false));
    }

    fn idle_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, bool)>> {
        self.inner
            .last_active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Raises an `idle` alert for every agent with no action for longer
    /// than its policy's `idle_after` (once per idle spell: the next
    /// action ends it); returns how many were raised.
    pub fn check_idle(&self) -> usize {
        let now = (self.inner.clock)();
        let mut due = Vec::new();
        for (agent_id, (last, alerted)) in self.idle_lock().iter_mut() {
            let policy = (self.inner.policy)(agent_id);
            let Some(after) = policy.idle_after else {
                continue;
            };
            let idle_ms = now.saturating_sub(*last);
            if *alerted
                || !policy.enabled
                || !policy.detector(DetectorKind::Idle).enabled
                || u128::from(idle_ms) < after.as_millis()
            {
                continue;
            }
            *alerted = true;
            due.push((agent_id.clone(), *last, idle_ms, after, policy));
        }
        for (agent_id, last, idle_ms, after, policy) in &due {
            let d = policy.detector(DetectorKind::Idle);
            let alert = Alert {
                id: new_id(),
                agent_id: agent_id.clone(),
                pool: policy.pool.clone(),
                detector: DetectorKind::Idle,
                pattern: Pattern::Idle,
                subject: "no action".to_string(),
                severity: d.severity,
                first_ms: *last,
                last_ms: now,
                count: 1,
                observed: (*idle_ms / 1000) as f64,
                baseline: 0.0,
                threshold: after.as_secs_f64(),
                unit: "seconds".to_string(),
                events: Vec::new(),
                response: d.response,
                fold: Fold::Nothing,
            };
            if let Some(s) = self.lock().get_mut(agent_id) {
                s.keep(alert.clone());
            }
            self.raise_new(&alert, policy);
        }
        due.len()
    }

    /// Checks for idle agents every `every` until the returned task is
    /// aborted.
    pub fn spawn_idle_watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                this.check_idle();
            }
        })
    }

    /// Folds one observation of `agent_id` in; delivers and answers what
    /// it raised.
    pub fn observe(&self, agent_id: &str, o: &Observation<'_>) {
        let policy = (self.inner.policy)(agent_id);
        if let Some(e) = self.idle_lock().get_mut(agent_id) {
            *e = (e.0.max(o.at_ms), false);
        }
        let mut new = Vec::new();
        let updates;
        {
            let mut agents = self.lock();
            if !agents.contains_key(agent_id) {
                if agents.len() >= MAX_AGENTS {
                    self.inner.agents_refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                drop(agents);
                self.preload(agent_id);
                agents = self.lock();
            }
            let Some(state) = agents.get_mut(agent_id) else {
                return;
            };
            for f in state.observe(o, &policy) {
                if let Raised::New(a) = state.raise(f, o, &policy, new_id) {
                    new.push(a);
                }
            }
            updates = state.take_updates();
        }
        for a in &new {
            self.raise_new(a, &policy);
        }
        for a in &updates {
            for s in self.inner.sinks.load().iter() {
                s.deliver(a, Activity::Update);
            }
        }
    }

    /// A new alert: counted, delivered to every sink, answered as its
    /// detector's response says.
    fn raise_new(&self, a: &Alert, policy: &DetectionPolicy) {
        self.inner.alerts[a.detector as usize].fetch_add(1, Ordering::Relaxed);
        for s in self.inner.sinks.load().iter() {
            s.deliver(a, Activity::Create);
        }
        self.respond(a, policy);
    }

    fn respond(&self, a: &Alert, policy: &DetectionPolicy) {
        let d = policy.detector(a.detector);
        let reason = format!("{} alert {}: {}", a.detector, a.id, a.subject);
        let now = UnixMillis((self.inner.clock)());
        let mut r = DetectionResponse {
            at: now,
            agent_id: a.agent_id.clone(),
            alert_id: a.id.clone(),
            detector: a.detector,
            response: a.response,
            min_tier: None,
            until: None,
            applied: true,
            error: None,
        };
        let until = now.plus(d.raise_for);
        if a.response == Response::RaiseTier {
            r.min_tier = Some(d.raise_to);
            r.until = Some(until);
        }
        let result = match (a.response, self.inner.responder.get()) {
            (Response::Notify, _) => Ok(()),
            (_, None) => Err("no gateway or kernel to act on in this process".to_string()),
            (Response::RaiseTier, Some(x)) => x.raise_tier(&a.agent_id, d.raise_to, until, &reason),
            (Response::Quarantine, Some(x)) => x.quarantine(&a.agent_id, &reason),
        };
        if let Err(e) = result {
            r.applied = false;
            r.error = Some(e);
        }
        if let Some(bus) = self.inner.bus.get() {
            bus.emit(ActionEvent::Response(&r));
        }
    }

    /// Marks alert `alert_id` of `agent_id` benign: what it found is
    /// folded into the baseline. `false` if the alert is not kept.
    pub fn mark_benign(&self, agent_id: &str, alert_id: &str) -> bool {
        self.lock()
            .get_mut(agent_id)
            .is_some_and(|s| s.mark_benign(alert_id))
    }

    /// Calls `f` with agent `agent_id`'s state, if it has one.
    pub fn with_state<R>(&self, agent_id: &str, f: impl FnOnce(&AgentState) -> R) -> Option<R> {
        self.lock().get(agent_id).map(f)
    }

    /// Writes the baselines that changed; returns how many were written.
    /// Failures are counted and logged; the others are still written.
    pub fn save(&self) -> usize {
        if let Some(m) = self.inner.metrics.get() {
            for (id, s) in self.lock().iter() {
                m.baseline_learned(id, s.baseline.learned());
            }
        }
        let Some(store) = &self.inner.store else {
            return 0;
        };
        let dirty: Vec<Baseline> = self
            .lock()
            .values_mut()
            .filter(|s| s.dirty)
            .map(|s| {
                s.dirty = false;
                s.baseline.clone()
            })
            .collect();
        let mut written = 0;
        for b in &dirty {
            match store.save_agent(b) {
                Ok(()) => written += 1,
                Err(e) => self.store_failed(b.agent_id(), &e),
            }
        }
        written
    }

    fn store_failed(&self, agent_id: &str, e: &StoreError) {
        self.store_error(agent_id);
        tracing::error!(target: "agent_sidecar::detect", agent = agent_id, error = %e, "cannot write the baseline; it is kept in memory and written again at the next save");
        if let Some(s) = self.lock().get_mut(agent_id) {
            s.dirty = true;
        }
    }

    /// Closes every open alert (delivering the final counts of repeated
    /// ones) and writes the baselines: at shutdown.
    pub fn close(&self) -> usize {
        let updates: Vec<Alert> = self
            .lock()
            .values_mut()
            .flat_map(|s| s.close_all())
            .collect();
        for a in &updates {
            for s in self.inner.sinks.load().iter() {
                s.deliver(a, Activity::Update);
            }
        }
        self.save()
    }

    /// Saves every `every` until the returned task is aborted.
    pub fn spawn_saver(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = this.clone();
                let _ = tokio::task::spawn_blocking(move || t.save()).await;
            }
        })
    }

    /// Alerts raised by `detector` since start.
    pub fn alerts_raised(&self, detector: DetectorKind) -> u64 {
        self.inner.alerts[detector as usize].load(Ordering::Relaxed)
    }

    /// Baselines that could not be read or written.
    pub fn store_errors(&self) -> u64 {
        self.inner.store_errors.load(Ordering::Relaxed)
    }

    /// Events not observed because [`MAX_AGENTS`] agents were kept.
    pub fn agents_refused(&self) -> u64 {
        self.inner.agents_refused.load(Ordering::Relaxed)
    }

    /// `(agents, heap bytes)` of the kept states.
    pub fn footprint(&self) -> (usize, usize) {
        let agents = self.lock();
        (
            agents.len(),
            agents.values().map(AgentState::heap_bytes).sum(),
        )
    }
}

impl ActionSink for Detection {
    fn consume(&self, event: ActionEvent<'_>) {
        if let Some(o) = Observation::from_event(&event, (self.inner.clock)()) {
            self.observe(event.agent_id(), &o);
        }
    }
}
