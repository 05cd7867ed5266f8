//! What every listener shares: the policy, the resolver, limits, and where
//! events go.

use std::sync::Arc;

use super::{
    config::ProxyConfig,
    events::ProxyEventSink,
    host_policy::{HostPolicy, Resolve},
    inspect::Inspect,
    metrics::ProxyMetrics,
    record::Emitter,
};

/// Shared state of the proxy listeners of one agent. Cheap to clone.
#[derive(Clone)]
pub struct ProxyContext {
    pub(crate) policy: Arc<dyn HostPolicy>,
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) config: Arc<ProxyConfig>,
    pub(crate) emitter: Emitter,
    pub(crate) inspector: Option<Arc<dyn Inspect>>,
}

impl ProxyContext {
    /// A context deciding with `policy` and dialling what `resolver` returns,
    /// with the default [`ProxyConfig`], no sink and no metrics.
    pub fn new(policy: Arc<dyn HostPolicy>, resolver: Arc<dyn Resolve>) -> Self {
        Self {
            policy,
            resolver,
            config: Arc::new(ProxyConfig::default()),
            emitter: Emitter::default(),
            inspector: None,
        }
    }

    /// Replaces the limits and timeouts.
    pub fn with_config(mut self, config: ProxyConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// Hands allowed TLS streams to hosts `inspector` inspects to it (the
    /// tool gateway) instead of splicing them.
    pub fn with_inspector(mut self, inspector: Arc<dyn Inspect>) -> Self {
        self.inspector = Some(inspector);
        self
    }

    /// Sends every event to `sink` as well as to `tracing`.
    pub fn with_event_sink(mut self, sink: Arc<dyn ProxyEventSink>) -> Self {
        self.emitter.sink = Some(sink);
        self
    }

    /// Counts every event in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<ProxyMetrics>) -> Self {
        self.emitter.metrics = Some(metrics);
        self
    }

    /// The limits in force.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }
}
