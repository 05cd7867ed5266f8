//! [`Quotas`]: applies the declared limits to a decided call.

use std::{
    path::Path,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwap;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{
    local::LocalCounters,
    shared::SharedCounters,
    {Measure, QuotaDecl, QuotaScope, Unavailable},
};
use crate::policy::{Action, DecidingRule, Decision, Tier};

/// The largest amount one call may carry, in cents (10^13 = 100 billion in
/// the base currency): larger values are refused, not counted, so that no
/// sum can wrap or lose precision (Redis' Lua numbers are doubles).
const MAX_CENTS: u64 = 10_000_000_000_000;

/// Why the quotas cannot start.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// Two limits share a name.
    #[error("quota `{0}` is declared twice; give each limit a unique name")]
    Duplicate(String),
    /// `on_reach` below 3.
    #[error("quota `{0}`: on_reach must be 3 (approval), 4 (halt) or deny")]
    OnReach(String),
    /// The counter file cannot be read.
    #[error("quota counters: {0}")]
    State(#[from] std::io::Error),
    /// The `--quota-redis` URL is invalid.
    #[error("--quota-redis {0}: {1}; give redis://HOST:PORT/DB")]
    Redis(String, redis::RedisError),
    /// The metrics cannot be registered.
    #[error("quota metrics: {0}")]
    Metrics(prometheus::Error),
}

/// Counts of what the quotas did, for tests and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaStats {
    /// Calls refused or raised because a limit was reached.
    pub reached: u64,
    /// Shared-counter errors.
    pub backend_errors: u64,
    /// Calls let through uncounted because the shared counter was down.
    pub fail_open: u64,
}

#[derive(Clone)]
struct QuotaMetrics {
    usage: IntGaugeVec,
    reached: IntCounterVec,
    backend_errors: IntCounterVec,
    fail_open: IntCounterVec,
}

impl QuotaMetrics {
    fn new() -> Self {
        let l = &["limit"];
        QuotaMetrics {
            usage: IntGaugeVec::new(
                Opts::new(
                    "agent_sidecar_quota_usage",
                    "The last seen value of a limit's counter in its current window (cents for amount limits).",
                ),
                l,
            )
            .expect("valid metric"),
            reached: IntCounterVec::new(
                Opts::new(
                    "agent_sidecar_quota_reached_total",
                    "Calls raised to a limit's on_reach tier because the limit was reached or the amount invalid.",
                ),
                l,
            )
            .expect("valid metric"),
            backend_errors: IntCounterVec::new(
                Opts::new(
                    "agent_sidecar_quota_backend_errors_total",
                    "Shared quota counter (Redis) errors and timeouts.",
                ),
                l,
            )
            .expect("valid metric"),
            fail_open: IntCounterVec::new(
                Opts::new(
                    "agent_sidecar_quota_fail_open_total",
                    "Calls let through uncounted because the shared counter was unreachable (on_unavailable: allow).",
                ),
                l,
            )
            .expect("valid metric"),
        }
    }
}

/// The limits of one sidecar and their counters. Clones share them.
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("org", &self.inner.org)
            .field("limits", &self.inner.limits.load())
            .field("shared", &self.inner.shared.is_some())
            .finish()
    }
}

struct Inner {
    org: String,
    currency: Option<String>,
    /// Swapped whole when the policy in force changes (the counters stay).
    limits: ArcSwap<Vec<QuotaDecl>>,
    local: LocalCounters,
    shared: Option<SharedCounters>,
    metrics: QuotaMetrics,
}

/// Names unique, `on_reach` 3 or above.
fn check(limits: &[QuotaDecl]) -> Result<(), QuotaError> {
    let mut names = std::collections::HashSet::new();
    for l in limits {
        if !names.insert(l.name.as_str()) {
            return Err(QuotaError::Duplicate(l.name.clone()));
        }
        if l.on_reach < Tier::Approval {
            return Err(QuotaError::OnReach(l.name.clone()));
        }
    }
    Ok(())
}

/// What one limit did to a call.
enum Outcome {
    Counted,
    Skipped,
    FailOpen(String),
    Refused(String),
}

impl Quotas {
    /// The limits `limits` of organisation `org`, counted locally (and
    /// persisted in `state_dir/quotas.json` when given) or in `shared`.
    pub fn new(
        org: &str,
        limits: Vec<QuotaDecl>,
        state_dir: Option<&Path>,
        shared: Option<SharedCounters>,
    ) -> Result<Self, QuotaError> {
        check(&limits)?;
        let local = LocalCounters::new(state_dir.map(|d| d.join("quotas.json")))?;
        Ok(Quotas {
            inner: Arc::new(Inner {
                org: org.to_string(),
                currency: None,
                limits: ArcSwap::from_pointee(limits),
                local,
                shared,
                metrics: QuotaMetrics::new(),
            }),
        })
    }

    /// Amounts in `code` (the policy set's base currency) count as
    /// amounts without a currency; any other currency is refused by amount
    /// limits. Call before cloning.
    pub fn with_currency(mut self, code: &str) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.currency = Some(code.to_string());
        }
        self
    }

    /// Registers the `agent_sidecar_quota_*` metrics.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let m = &self.inner.metrics;
        registry.register(Box::new(m.usage.clone()))?;
        registry.register(Box::new(m.reached.clone()))?;
        registry.register(Box::new(m.backend_errors.clone()))?;
        registry.register(Box::new(m.fail_open.clone()))?;
        Ok(())
    }

    /// What the quotas did so far, summed over the limits.
    pub fn stats(&self) -> QuotaStats {
        let m = &self.inner.metrics;
        let sum = |c: &IntCounterVec| {
            self.inner
                .limits
                .load()
                .iter()
                .map(|l| c.with_label_values(&[l.name.as_str()]).get())
                .sum()
        };
        QuotaStats {
            reached: sum(&m.reached),
            backend_errors: sum(&m.backend_errors),
            fail_open: sum(&m.fail_open),
        }
    }

    /// Whether any limit is declared (the call path skips the quotas
    /// entirely when none is).
    pub fn is_empty(&self) -> bool {
        self.inner.limits.load().is_empty()
    }

    /// Puts `limits` in force (a policy reload), keeping every counter:
    /// a limit kept under its name goes on counting in its window, a new
    /// one starts from what its key already holds, a removed one is no
    /// longer checked. Refused (the limits in force stay) when they are
    /// invalid. Returns whether they changed.
    pub fn set_limits(&self, limits: Vec<QuotaDecl>) -> Result<bool, QuotaError> {
        check(&limits)?;
        if **self.inner.limits.load() == limits {
            return Ok(false);
        }
        self.inner.limits.store(Arc::new(limits));
        Ok(true)
    }

    /// The limits in force.
    pub fn limits(&self) -> Arc<Vec<QuotaDecl>> {
        self.inner.limits.load_full()
    }

    /// Counts the call against every limit it falls under and returns the
    /// decision, raised to a limit's `on_reach` tier (with the limit among
    /// the deciding rules) when the call would pass the limit, carries no
    /// valid amount for an amount limit, or meets an unreachable shared
    /// counter whose limit says `deny`. A call refused by one limit is
    /// taken back from the limits that had counted it. Calls decided deny
    /// or halt are not counted. `bytes_out` is the request's size.
    pub async fn apply(&self, action: &Action, mut decision: Decision, bytes_out: u64) -> Decision {
        let limits = self.inner.limits.load();
        if limits.is_empty() || decision.tier >= Tier::Halt {
            return decision;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut counted: Vec<(&QuotaDecl, String, u64, u64)> = Vec::new();
        let mut raised: Vec<(&QuotaDecl, String)> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for l in limits.iter() {
            if !l.applies(action, decision.tier) {
                continue;
            }
            let n = match measure(l, action, bytes_out, self.inner.currency.as_deref()) {
                Ok(n) => n,
                Err(why) => {
                    raised.push((l, why));
                    continue;
                }
            };
            let window = now / l.window.0;
            let key = self.key(l, action, window);
            match self.count(l, &key, window, n).await {
                Outcome::Counted => counted.push((l, key, window, n)),
                Outcome::Skipped => {}
                Outcome::FailOpen(note) => notes.push(note),
                Outcome::Refused(why) => raised.push((l, why)),
            }
            if !raised.is_empty() {
                break;
            }
        }
        if !raised.is_empty() {
            for (l, key, window, n) in counted {
                self.take_back(l, &key, window, n).await;
            }
            for (l, why) in raised {
                self.inner
                    .metrics
                    .reached
                    .with_label_values(&[l.name.as_str()])
                    .inc();
                tracing::warn!(limit = %l.name, agent = %action.agent.id, reason = %why, "quota reached");
                let rule = DecidingRule {
                    id: format!("quotas.{}", l.name).into(),
                    level: format!("quota {}", l.scope.as_str()).into(),
                    source: "quotas".into(),
                };
                if l.on_reach > decision.tier {
                    decision.tier = l.on_reach;
                    decision.rules = vec![rule];
                } else if l.on_reach == decision.tier {
                    decision.rules.push(rule);
                }
                decision.reason = format!("{} ({why})", decision.reason);
            }
        }
        for note in notes {
            decision.reason = format!("{} ({note})", decision.reason);
        }
        decision
    }

    async fn count(&self, l: &QuotaDecl, key: &str, window: u64, n: u64) -> Outcome {
        let name = l.name.as_str();
        if n == 0 {
            return Outcome::Skipped;
        }
        let persist = l.measure == Measure::Amount;
        let result = match &self.inner.shared {
            None => Ok(self.inner.local.try_add(key, window, n, l.limit, persist)),
            Some(s) => s.try_add(key, n, l.limit, l.window.0).await,
        };
        match result {
            Ok(Ok(sum)) => {
                self.inner
                    .metrics
                    .usage
                    .with_label_values(&[name])
                    .set(i64::try_from(sum).unwrap_or(i64::MAX));
                Outcome::Counted
            }
            Ok(Err(cur)) => Outcome::Refused(format!(
                "quota `{name}` reached: {cur} of {} used in this {} window, this call adds {n}; the window resets at its end, or an approver may allow it",
                l.limit, l.window
            )),
            Err(e) => {
                self.inner
                    .metrics
                    .backend_errors
                    .with_label_values(&[name])
                    .inc();
                match l.unavailable() {
                    Unavailable::Deny => Outcome::Refused(format!(
                        "quota `{name}` cannot be checked ({e}) and its on_unavailable is deny; check that the quota redis is up"
                    )),
                    Unavailable::Allow => {
                        self.inner
                            .metrics
                            .fail_open
                            .with_label_values(&[name])
                            .inc();
                        tracing::warn!(limit = %name, error = %e, "quota not counted: the shared counter is unreachable and on_unavailable is allow (fail-open)");
                        Outcome::FailOpen(format!(
                            "fail-open: quota `{name}` not counted, the shared counter is unreachable ({e}) and on_unavailable is allow"
                        ))
                    }
                }
            }
        }
    }

    async fn take_back(&self, l: &QuotaDecl, key: &str, window: u64, n: u64) {
        match &self.inner.shared {
            None => self
                .inner
                .local
                .sub(key, window, n, l.measure == Measure::Amount),
            Some(s) => {
                if let Err(e) = s.sub(key, n).await {
                    self.inner
                        .metrics
                        .backend_errors
                        .with_label_values(&[l.name.as_str()])
                        .inc();
                    tracing::error!(limit = %l.name, error = %e, "cannot take back a quota count; the counter overstates usage until its window ends");
                }
            }
        }
    }

    fn key(&self, l: &QuotaDecl, action: &Action, window: u64) -> String {
        let whose = match l.scope {
            QuotaScope::Org => String::new(),
            QuotaScope::Team => action.agent.team.clone().unwrap_or_default(),
            QuotaScope::Agent => action.agent.id.clone(),
        };
        format!(
            "agent-sidecar:quota:{}:{}:{}:{}:{}:{window}",
            self.inner.org,
            l.scope.as_str(),
            whose,
            l.name,
            l.window.0
        )
    }
}

/// How much the call adds to `l`; `Err` (refuse) when an amount limit
/// meets a call without a valid amount.
fn measure(
    l: &QuotaDecl,
    action: &Action,
    bytes_out: u64,
    base: Option<&str>,
) -> Result<u64, String> {
    match l.measure {
        Measure::Calls | Measure::Tier2Actions => Ok(1),
        Measure::BytesOut => Ok(bytes_out),
        Measure::Amount => {
            let name = &l.name;
            let Some(m) = &action.attributes.amount else {
                return Err(format!(
                    "quota `{name}` counts amounts and the call declares none; send the amount in the field the policy declares"
                ));
            };
            if let Some(c) = &m.currency
                && Some(c.as_str()) != base
            {
                return Err(format!(
                    "quota `{name}` counts amounts in the base currency and the call's amount is in {c}"
                ));
            }
            let cents = (m.value * 100.0).round();
            if !cents.is_finite() || cents < 0.0 || cents > MAX_CENTS as f64 {
                return Err(format!(
                    "quota `{name}`: the amount {} is not a non-negative number below {}",
                    m.value,
                    MAX_CENTS / 100
                ));
            }
            Ok(cents as u64)
        }
    }
}
