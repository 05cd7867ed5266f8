//! Throttling of failed authentications on the admin API: per peer (an IPv4
//! address, or an IPv6 /64), after a few free failures every further one
//! doubles the time the peer must wait before its next request is even
//! looked at (capped). A peer that is waiting gets `429` with `Retry-After`
//! and its token is not checked, so guessing gains nothing by hurrying.
//! Failures and throttled requests are counted and logged at `WARN`,
//! aggregated per peer (at most one line per peer every
//! [`ThrottleConfig::warn_every`]).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::approvals::ApprovalMetrics;

/// How failed authentications are throttled.
#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    /// Failures a peer may make before any wait (a mistyped token).
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones; doubles with
    /// each further failure.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A peer's record is forgotten this long after its last failure.
    pub forget_after: Duration,
    /// Peers tracked at most; when full, peers not yet tracked wait
    /// [`ThrottleConfig::max`] after any failure (fail closed).
    pub max_peers: usize,
    /// At most one aggregated warning per peer this often.
    pub warn_every: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base: Duration::from_millis(250),
            max: Duration::from_secs(60),
            forget_after: Duration::from_secs(15 * 60),
            max_peers: 4096,
            warn_every: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Peer {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
    last_warn: Option<Instant>,
    unreported_failures: u64,
    unreported_throttled: u64,
}

/// The per-peer failure state of one admin listener.
#[derive(Debug)]
pub struct AuthThrottle {
    config: ThrottleConfig,
    peers: Mutex<HashMap<IpAddr, Peer>>,
    metrics: Option<ApprovalMetrics>,
}

/// The key of a peer: IPv4 as is (v4-mapped included), IPv6 by its /64.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

impl AuthThrottle {
    /// A throttle counting into `metrics`.
    pub fn new(config: ThrottleConfig, metrics: Option<ApprovalMetrics>) -> Self {
        Self {
            config,
            peers: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// `Err(wait)` while `peer` must wait before its next request is
    /// looked at; the refusal is counted.
    pub fn admit(&self, peer: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(p) = peers.get_mut(&peer_key(peer)) else {
            return Ok(());
        };
        match p.blocked_until {
            Some(until) if until > now => {
                p.unreported_throttled += 1;
                if let Some(m) = &self.metrics {
                    m.auth_throttled();
                }
                self.maybe_warn(peer, p, now);
                Err(until - now)
            }
            _ => Ok(()),
        }
    }

    /// Records a failed authentication of `peer`.
    pub fn failed(&self, peer: IpAddr) {
        if let Some(m) = &self.metrics {
            m.auth_failed();
        }
        let now = Instant::now();
        let key = peer_key(peer);
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if !peers.contains_key(&key) && peers.len() >= self.config.max_peers {
            let forget = self.config.forget_after;
            peers.retain(|_, p| now.duration_since(p.last_failure) < forget);
        }
        let full = !peers.contains_key(&key) && peers.len() >= self.config.max_peers;
        if full {
            // No room to track this peer: the global fallback is the
            // longest wait for everyone new, logged.
            tracing::warn!(
                target: "agent_sidecar::admin",
                peer = %peer,
                tracked = peers.len(),
                "admin API: failed authentication while the throttle is full; refusing new peers for the longest wait"
            );
            let oldest = peers
                .iter()
                .min_by_key(|(_, p)| p.last_failure)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                peers.remove(&k);
            }
        }
        let p = peers.entry(key).or_insert(Peer {
            failures: 0,
            last_failure: now,
            blocked_until: None,
            last_warn: None,
            unreported_failures: 0,
            unreported_throttled: 0,
        });
        if now.duration_since(p.last_failure) >= self.config.forget_after {
            p.failures = 0;
        }
        p.failures = p.failures.saturating_add(1);
        p.last_failure = now;
        p.unreported_failures += 1;
        let wait = if full {
            Some(self.config.max)
        } else {
            self.wait_after(p.failures)
        };
        p.blocked_until = wait.map(|w| now + w);
        self.maybe_warn(peer, p, now);
    }

    /// Forgets the failures of `peer` after a successful authentication.
    pub fn succeeded(&self, peer: IpAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = peers.remove(&peer_key(peer))
            && (p.unreported_failures > 0 || p.unreported_throttled > 0)
        {
            tracing::warn!(
                target: "agent_sidecar::admin",
                peer = %peer,
                failures = p.unreported_failures,
                throttled = p.unreported_throttled,
                "admin API: authenticated after failed attempts"
            );
        }
    }

    /// The wait after the `failures`-th consecutive failure.
    fn wait_after(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.config.free_failures)?;
        if over == 0 {
            return None;
        }
        let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
        Some(self.config.base.saturating_mul(factor).min(self.config.max))
    }

    fn maybe_warn(&self, peer: IpAddr, p: &mut Peer, now: Instant) {
        if p.last_warn
            .is_some_and(|at| now.duration_since(at) < self.config.warn_every)
        {
            return;
        }
        p.last_warn = Some(now);
        let wait = p
            .blocked_until
            .map(|u| u.saturating_duration_since(now))
            .unwrap_or_default();
        tracing::warn!(
            target: "agent_sidecar::admin",
            peer = %peer,
            failures = p.unreported_failures,
            throttled = p.unreported_throttled,
            consecutive_failures = p.failures,
            wait_ms = wait.as_millis() as u64,
            "admin API: failed authentications (missing or wrong bearer token)"
        );
        p.unreported_failures = 0;
        p.unreported_throttled = 0;
    }
}

#[cfg(test)]
mod tests;
