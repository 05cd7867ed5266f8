//! Audit shipping of `run`: the agent's audit records sent to the
//! collectors the `--audit-otlp-*` and `--audit-webhook*` flags name, one
//! disk-backed queue per destination over the log (`DIR/ship/`). Started
//! once the log is open, before the agent; stopped after the log is
//! closed, so that the last records (`sidecar_stopped`) are sent too.

use std::{path::PathBuf, sync::Arc, time::Duration};

use super::RunError;
use crate::{
    audit::ship::{AuditShipArgs, ShipConfig, ShipSource, Shipper, ShipperHandle},
    events::AuditTrail,
    metrics::Metrics,
    tls::upstream::{SystemRoots, TrustAnchors, upstream_client_config},
};

/// How long `run` waits at shutdown for the last batches.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where `run` ships the agent's audit records.
#[derive(Clone, Debug)]
pub struct AuditShipOptions {
    /// The `--audit-otlp-*` and `--audit-webhook*` flags.
    pub flags: AuditShipArgs,
    /// CA files trusted for `https://` collectors besides the system roots
    /// (`--upstream-ca`).
    pub cas: Vec<PathBuf>,
}

/// Starts shipping the log of `trail`, when a destination is given.
pub(super) fn start(
    opts: &AuditShipOptions,
    trail: &AuditTrail,
    instance: String,
    metrics: &Metrics,
) -> Result<Option<ShipperHandle>, RunError> {
    let err = |e: &dyn std::fmt::Display| RunError::Audit(format!("shipping: {e}"));
    let destinations = opts.flags.destinations().map_err(|e| err(&e))?;
    if destinations.is_empty() {
        return Ok(None);
    }
    let mut config = ShipConfig::new(trail.dir());
    if destinations
        .iter()
        .any(|d| d.endpoint.starts_with("https://"))
    {
        let anchors = TrustAnchors::load(&SystemRoots::Probe, &opts.cas).map_err(|e| err(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = upstream_client_config(&anchors, provider).map_err(|e| err(&e))?;
        config.tls = Some(Arc::new(tls));
    }
    config.destinations = destinations;
    config.instance = Some(instance);
    let shipper = Shipper::new(
        config,
        ShipSource::Log(trail.sink().log().clone()),
        metrics.audit_ship(),
    )
    .map_err(|e| err(&e))?;
    Ok(Some(shipper.spawn()))
}

/// Sends what the log holds by now (the log is closed) and stops.
pub(super) async fn stop(handle: ShipperHandle) {
    let cut = handle.shutdown(SHUTDOWN_GRACE).await;
    if cut > 0 {
        tracing::warn!(
            destinations = cut,
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "audit shipping stopped before every record was acknowledged; the rest is sent at the next start over the same --audit-dir"
        );
    } else {
        tracing::info!("audit shipping stopped");
    }
}
