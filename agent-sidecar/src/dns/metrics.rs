//! Prometheus metrics of the DNS resolvers, registered on a registry the
//! caller passes (the sidecar's `/metrics` registry).
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `agent_sidecar_dns_queries_total` | `agent_id`, `decision` | queries by decision |
//! | `agent_sidecar_dns_upstream_duration_seconds` | `agent_id` | upstream exchange time (histogram) |
//! | `agent_sidecar_dns_rebinding_dropped_total` | `agent_id` | addresses removed by the rebinding guard |
//! | `agent_sidecar_dns_cache_hits_total` | `agent_id` | answers served from the cache |
//! | `agent_sidecar_dns_learned_total` | `agent_id` | addresses handed to the learned sink |

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

use super::{budget::Spent, events::DnsDecision};

/// The resolver metric families, registered once per registry.
#[derive(Clone, Debug)]
pub struct DnsMetrics {
    queries: IntCounterVec,
    upstream_seconds: HistogramVec,
    rebinding_dropped: IntCounterVec,
    cache_hits: IntCounterVec,
    learned: IntCounterVec,
    budget_refused: IntCounterVec,
}

/// One agent's series, resolved once so the hot path does no label lookup.
#[derive(Clone, Debug)]
pub struct AgentDnsMetrics {
    queries: [IntCounter; 5],
    pub(crate) upstream_seconds: Histogram,
    pub(crate) rebinding_dropped: IntCounter,
    pub(crate) cache_hits: IntCounter,
    pub(crate) learned: IntCounter,
    budget_refused: [IntCounter; 2],
}

impl DnsMetrics {
    /// Creates the metric families and registers them on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok::<_, prometheus::Error>(vec)
        };
        let queries = counter(
            "agent_sidecar_dns_queries_total",
            "DNS queries answered by the sidecar resolver, by decision.",
            &["agent_id", "decision"],
        )?;
        let rebinding_dropped = counter(
            "agent_sidecar_dns_rebinding_dropped_total",
            "Answer addresses removed by the DNS rebinding guard.",
            &["agent_id"],
        )?;
        let cache_hits = counter(
            "agent_sidecar_dns_cache_hits_total",
            "DNS answers served from the resolver cache.",
            &["agent_id"],
        )?;
        let learned = counter(
            "agent_sidecar_dns_learned_total",
            "Addresses learned for non-HTTP name rules.",
            &["agent_id"],
        )?;
        let budget_refused = counter(
            "agent_sidecar_dns_budget_refused_total",
            "DNS queries refused because the agent's budget of forwarded queries or distinct names per minute was spent.",
            &["agent_id", "limit"],
        )?;
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "agent_sidecar_dns_upstream_duration_seconds",
                "Time of one upstream DNS resolution, retries included.",
            )
            .buckets(vec![
                0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0,
            ]),
            &["agent_id"],
        )?;
        registry.register(Box::new(upstream_seconds.clone()))?;
        Ok(DnsMetrics {
            queries,
            upstream_seconds,
            rebinding_dropped,
            cache_hits,
            learned,
            budget_refused,
        })
    }

    /// The series of one agent.
    pub fn for_agent(&self, agent_id: &str) -> AgentDnsMetrics {
        AgentDnsMetrics {
            queries: DnsDecision::ALL
                .map(|d| self.queries.with_label_values(&[agent_id, d.as_str()])),
            upstream_seconds: self.upstream_seconds.with_label_values(&[agent_id]),
            rebinding_dropped: self.rebinding_dropped.with_label_values(&[agent_id]),
            cache_hits: self.cache_hits.with_label_values(&[agent_id]),
            learned: self.learned.with_label_values(&[agent_id]),
            budget_refused: [Spent::Queries, Spent::Names].map(|s| {
                self.budget_refused
                    .with_label_values(&[agent_id, s.as_str()])
            }),
        }
    }
}

impl AgentDnsMetrics {
    /// Counts one query.
    pub(crate) fn query(&self, decision: DnsDecision) {
        let index = DnsDecision::ALL
            .iter()
            .position(|d| *d == decision)
            .unwrap_or_default();
        self.queries[index].inc();
    }

    /// Counts a query refused by the budget.
    pub(crate) fn budget_refused(&self, spent: Spent) {
        self.budget_refused[spent as usize].inc();
    }
}

#[cfg(test)]
mod tests;
