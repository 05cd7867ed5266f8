//! `run`'s operator listeners (`--metrics-listen`, `--admin-listen`):
//! bound before anything is attached, so that a busy address fails
//! cleanly, and checked to be out of the agent's reach.

use std::sync::{Arc, Mutex};

use tokio::{net::TcpListener, task::JoinHandle};
use tracing::info;

use super::{
    RunError, RunOptions,
    egress_plan::EgressPlan,
    private_listeners::{self, PrivateListener},
};
use crate::{admin, kernel::Enforcer, metrics::Metrics};

/// The bound operator listeners.
pub(crate) struct OperatorListeners {
    /// `--metrics-listen`: `/metrics`, `/healthz` and `/readyz`.
    pub(crate) metrics: Option<TcpListener>,
    /// `--admin-listen`: the bearer-token admin API (with a gateway).
    pub(crate) admin: Option<TcpListener>,
    /// Both, as the kernel and the proxies must keep the agent off them.
    pub(crate) private: Vec<PrivateListener>,
}

impl OperatorListeners {
    /// Binds the listeners `opts` asks for and refuses an egress rule of
    /// `plan` that would let the agent reach one.
    pub(crate) async fn bind(opts: &RunOptions, plan: &EgressPlan) -> Result<Self, RunError> {
        let metrics = match opts.metrics_listen {
            Some(addr) => Some(
                admin::bind(addr)
                    .await
                    .map_err(|e| RunError::Io("binding --metrics-listen", e))?,
            ),
            None => None,
        };
        let admin = match opts.gateway.as_ref().and_then(|g| g.admin_listen) {
            Some(addr) => Some(
                admin::bind(addr)
                    .await
                    .map_err(|e| RunError::Io("binding --admin-listen", e))?,
            ),
            None => None,
        };
        let mut private = Vec::new();
        for (listener, what, flag) in [
            (metrics.as_ref(), "metrics", "--metrics-listen"),
            (admin.as_ref(), "admin API", "--admin-listen"),
        ] {
            if let Some(l) = listener {
                let addr = l
                    .local_addr()
                    .map_err(|e| RunError::Io("reading a listener address", e))?;
                private.push(PrivateListener { what, addr, flag });
            }
        }
        private_listeners::check(
            &private,
            &plan.allowlist,
            &plan.names,
            &opts.names.static_hosts,
        )?;
        Ok(OperatorListeners {
            metrics,
            admin,
            private,
        })
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener`, reading the
/// kernel's counters of `agent_id`, its quarantine flag and its maps'
/// occupancy before each scrape.
pub(crate) fn serve_metrics(
    listener: TcpListener,
    enforcer: &Arc<Mutex<Enforcer>>,
    metrics: &Arc<Metrics>,
    agent_id: &str,
) -> JoinHandle<()> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    // Weakly: a scraper's keep-alive connection must not keep the
    // enforcement alive past the run (the teardown waits for the last
    // strong reference).
    let (enf, m, id) = (
        Arc::downgrade(enforcer),
        metrics.clone(),
        agent_id.to_string(),
    );
    let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        let Some(enf) = enf.upgrade() else {
            return;
        };
        let (counters, quarantined, maps) = {
            let e = enf.lock().expect("enforcer lock");
            (e.counters(), e.quarantined(), e.map_occupancy())
        };
        drop(enf);
        m.observe_kernel(&id, counters);
        m.set_quarantined(quarantined);
        m.set_map_occupancy(&maps);
    });
    tokio::spawn(admin::serve(
        listener,
        admin::Admin::ops(metrics.clone(), refresh),
    ))
}
