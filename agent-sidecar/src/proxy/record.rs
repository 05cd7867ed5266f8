//! The record of one connection: collects its facts as they become known
//! and, when it ends, emits one [`ProxyEvent`] through `tracing`, the
//! optional [`ProxyEventSink`] and the [`ProxyMetrics`].

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    events::{ConnectionOutcome, ListenerKind, ProxyEvent, ProxyEventSink},
    metrics::ProxyMetrics,
    refusal::Denial,
};

/// Where events go: `tracing`, the sink, the metrics.
#[derive(Clone, Default)]
pub(crate) struct Emitter {
    pub(crate) sink: Option<Arc<dyn ProxyEventSink>>,
    pub(crate) metrics: Option<Arc<ProxyMetrics>>,
}

/// Collects the facts of one connection as they become known.
pub(crate) struct Record {
    emitter: Emitter,
    started: Instant,
    event: ProxyEvent,
    emitted: bool,
}

impl Record {
    /// Starts the record of a connection accepted now.
    pub(crate) fn start(
        emitter: Emitter,
        agent_id: &str,
        listener: ListenerKind,
        client: SocketAddr,
        port: u16,
    ) -> Self {
        let time_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        if let Some(m) = &emitter.metrics {
            m.active(agent_id, listener).inc();
        }
        Self {
            emitter,
            started: Instant::now(),
            event: ProxyEvent {
                time_unix_ms,
                agent_id: agent_id.to_owned(),
                listener,
                client,
                host: None,
                port,
                sni: None,
                ech: false,
                decision: ConnectionOutcome::Failed,
                reason: None,
                rule: None,
                upstream: None,
                bytes_up: 0,
                bytes_down: 0,
                duration_us: 0,
            },
            emitted: false,
        }
    }

    /// Destination name and port.
    pub(crate) fn target(&mut self, host: &str, port: u16) {
        self.event.host = Some(host.to_owned());
        self.event.port = port;
    }

    /// What the ClientHello said.
    pub(crate) fn tls(&mut self, sni: Option<&str>, ech: bool) {
        self.event.sni = sni.map(str::to_owned);
        self.event.ech = ech;
    }

    /// The address dialled.
    pub(crate) fn upstream(&mut self, addr: SocketAddr) {
        self.event.upstream = Some(addr);
    }

    /// Ends an allowed connection after `up`/`down` bytes.
    pub(crate) fn allowed(mut self, rule: &str, up: u64, down: u64) {
        self.event.decision = ConnectionOutcome::Allowed;
        self.event.rule = Some(rule.to_owned());
        self.event.bytes_up = up;
        self.event.bytes_down = down;
        self.emit();
    }

    /// Ends a refused or failed connection.
    pub(crate) fn denied(mut self, denial: &Denial) {
        self.event.decision = if denial.status == hyper::StatusCode::BAD_GATEWAY {
            ConnectionOutcome::Failed
        } else {
            ConnectionOutcome::Refused
        };
        self.event.reason = Some(denial.reason.clone());
        self.event.rule = Some(denial.rule.clone());
        self.emit();
    }

    fn emit(&mut self) {
        self.emitted = true;
        self.event.duration_us =
            u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let e = &self.event;
        tracing::info!(
            target: "agent_sidecar::proxy",
            agent_id = %e.agent_id,
            listener = e.listener.as_str(),
            client = %e.client,
            host = e.host.as_deref().unwrap_or(""),
            port = e.port,
            sni = e.sni.as_deref().unwrap_or(""),
            ech = e.ech,
            decision = e.decision.as_str(),
            reason = e.reason.as_deref().unwrap_or(""),
            rule = e.rule.as_deref().unwrap_or(""),
            upstream = %e.upstream.map(|a| a.to_string()).unwrap_or_default(),
            bytes_up = e.bytes_up,
            bytes_down = e.bytes_down,
            duration_us = e.duration_us,
            "proxy connection"
        );
        if let Some(m) = &self.emitter.metrics {
            m.observe(e);
            m.active(&e.agent_id, e.listener).dec();
        }
        if let Some(sink) = &self.emitter.sink {
            sink.emit(e);
        }
    }
}

impl Drop for Record {
    /// A connection whose task ended without a verdict (cancelled, or the
    /// client went away mid-upgrade) is still recorded, as `failed/aborted`.
    fn drop(&mut self) {
        if !self.emitted {
            self.event.reason = Some("aborted".to_owned());
            self.emit();
        }
    }
}
