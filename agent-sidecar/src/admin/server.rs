//! [`Admin`]: what one listener serves, and the loop that serves it. Every
//! request goes through one router: the operations routes answer without a
//! token; everything else passes the per-peer throttle and the bearer
//! token first, then goes to its owner.
//!
//! A flood cannot take a listener from the operator: one listener serves at
//! most [`MAX_CONNECTIONS`] connections at once and one peer address at most
//! [`MAX_PER_PEER`] of them; a connection past either is closed at once,
//! logged (at most once a second) and counted
//! (`agent_sidecar_admin_connections_refused_total{reason="peer_limit"|
//! "at_capacity"}`). A client that has not sent its request head within
//! [`HEADER_READ_TIMEOUT`] is closed, and a failed `accept` (out of file
//! descriptors) pauses the loop instead of spinning.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    body::{Body, Incoming},
    header,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::{
    alerts as alert_routes, approvals, gateway as gateway_routes, inventory as inventory_routes,
    kill as kill_routes,
    ops::Ops,
    reply::{ApiError, error_response, json, not_found, read_limited},
    throttle::{AuthThrottle, ThrottleConfig},
};
use crate::{
    approvals::{ApprovalMetrics, ApprovalStore, BearerToken},
    detect::Detection,
    fleet::KillSwitches,
    gateway::Gateway,
    inventory::Inventory,
    metrics::Metrics,
};

/// The bearer-token API: approvals, and the gateway's compensations and
/// quarantine when a gateway runs.
#[derive(Clone)]
struct Api {
    store: ApprovalStore,
    token: Arc<BearerToken>,
    throttle: Arc<AuthThrottle>,
    gateway: Option<Gateway>,
    detection: Option<Detection>,
    inventory: Option<Inventory>,
    kill: Option<KillSwitches>,
    approvers: Option<Arc<crate::approvals::Approvers>>,
    grants: Option<crate::grants::GrantStore>,
}

/// What one admin listener serves (see the [module](super) for the
/// routes). Cheap to clone.
#[derive(Clone, Default)]
pub struct Admin {
    ops: Option<Ops>,
    api: Option<Api>,
    /// Where refused connections are counted.
    counts: Option<ApprovalMetrics>,
}

/// Most connections one admin listener serves at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Most connections one peer address holds on one admin listener.
pub const MAX_PER_PEER: usize = 64;
/// Longest wait for a client's request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The connections a listener serves now, in all and per peer.
#[derive(Default)]
struct Occupancy {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// A served connection's place in the [`Occupancy`], given back on drop.
struct Slot {
    occupancy: Arc<Mutex<Occupancy>>,
    peer: IpAddr,
}

impl Slot {
    /// Takes a place for `peer`, or says which limit is reached.
    fn take(occupancy: &Arc<Mutex<Occupancy>>, peer: IpAddr) -> Result<Slot, &'static str> {
        let mut o = occupancy.lock().unwrap_or_else(PoisonError::into_inner);
        if o.total >= MAX_CONNECTIONS {
            return Err("at_capacity");
        }
        let mine = o.per_peer.entry(peer).or_default();
        if *mine >= MAX_PER_PEER {
            return Err("peer_limit");
        }
        *mine += 1;
        o.total += 1;
        Ok(Slot {
            occupancy: Arc::clone(occupancy),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self
            .occupancy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                o.per_peer.remove(&self.peer);
            }
        }
    }
}

impl Admin {
    /// The operations routes: `GET /metrics` (`refresh` runs before each
    /// scrape, e.g. to read the kernel counters), `GET /healthz` and `GET /readyz`.
    pub fn ops(metrics: Arc<Metrics>, refresh: Arc<dyn Fn() + Send + Sync>) -> Self {
        Admin {
            counts: Some(metrics.approvals()),
            ops: Some(Ops { metrics, refresh }),
            api: None,
        }
    }

    /// The approvals API behind `token`, with the throttle of failed
    /// authentications counting into the store's metrics.
    pub fn api(store: ApprovalStore, token: BearerToken) -> Self {
        let throttle = AuthThrottle::new(ThrottleConfig::default(), store.metrics());
        Admin {
            ops: None,
            counts: store.metrics(),
            api: Some(Api {
                store,
                token: Arc::new(token),
                throttle: Arc::new(throttle),
                gateway: None,
                detection: None,
                inventory: None,
                kill: None,
                approvers: None,
                grants: None,
            }),
        }
    }

    /// Adds the gateway's compensation and quarantine routes to the API
    /// (nothing without [`Admin::api`]).
    pub fn with_gateway(mut self, gateway: Gateway) -> Self {
        if let Some(api) = &mut self.api {
            api.gateway = Some(gateway);
        }
        self
    }

    /// Adds the detectors' alert routes for the gateway's agent (nothing
    /// without [`Admin::api`] and [`Admin::with_gateway`]).
    pub fn with_detection(mut self, detection: Detection) -> Self {
        if let Some(api) = &mut self.api {
            api.detection = Some(detection);
        }
        self
    }

    /// Adds the kill switch routes (nothing without [`Admin::api`]).
    pub fn with_kill_switches(mut self, kill: KillSwitches) -> Self {
        if let Some(api) = &mut self.api {
            api.kill = Some(kill);
        }
        self
    }

    /// Adds `GET /v1/inventory` (nothing without [`Admin::api`]).
    pub fn with_inventory(mut self, inventory: Inventory) -> Self {
        if let Some(api) = &mut self.api {
            api.inventory = Some(inventory);
        }
        self
    }

    /// Requires an approver's own token (from `approvers`) to approve or
    /// deny; the admin token may then only list (nothing without
    /// [`Admin::api`]).
    pub fn with_approvers(mut self, approvers: crate::approvals::Approvers) -> Self {
        if let Some(api) = &mut self.api {
            api.approvers = Some(Arc::new(approvers));
        }
        self
    }
}

impl Admin {
    /// Adds the grant routes (`/v1/grants...`) to the API (nothing
    /// without [`Admin::api`]).
    pub fn with_grants(mut self, grants: crate::grants::GrantStore) -> Self {
        if let Some(api) = &mut self.api {
            api.grants = Some(grants);
        }
        self
    }
}

/// Binds an admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `admin` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, admin: Admin) {
    let admin = Arc::new(admin);
    let occupancy = Arc::new(Mutex::new(Occupancy::default()));
    let mut last_warned: Option<Instant> = None;
    let mut unlogged = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok((stream, peer)) => (stream, peer.ip()),
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed; pausing 50 ms");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match Slot::take(&occupancy, peer) {
            Ok(slot) => slot,
            Err(reason) => {
                drop(stream);
                if let Some(m) = &admin.counts {
                    m.admin_connection_refused(reason);
                }
                unlogged += 1;
                if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_warned = Some(Instant::now());
                    tracing::warn!(
                        %peer,
                        reason,
                        refused = std::mem::take(&mut unlogged),
                        max_connections = MAX_CONNECTIONS,
                        max_per_peer = MAX_PER_PEER,
                        "admin listener: connections closed unserved (a flood, or a client that \
                         leaks connections); counted in agent_sidecar_admin_connections_refused_total"
                    );
                }
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: Request<Incoming>| {
                let admin = admin.clone();
                async move {
                    let gate = admin.api.as_ref().map(|api| (&*api.throttle, peer));
                    Ok::<_, Infallible>(handle(req, &admin, gate).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Routes one request. `gate` throttles the peer's failed
/// authentications.
pub(super) async fn handle<B>(
    req: Request<B>,
    admin: &Admin,
    gate: Option<(&AuthThrottle, IpAddr)>,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_string();
    if let Some(ops) = admin.ops.as_ref().filter(|_| Ops::owns(&path)) {
        return ops.route(req.method(), &path);
    }
    let Some(api) = &admin.api else {
        return match &admin.ops {
            Some(ops) => ops.route(req.method(), &path),
            None => error_response(&not_found(&path)),
        };
    };
    let approver = approvals::approver(&req, &path, api.approvers.as_deref());
    if approver.is_none()
        && let Some(refused) = authorize(&req, &api.token, gate)
    {
        return refused;
    }
    if let Some(grants) = api
        .grants
        .as_ref()
        .filter(|_| crate::grants::api::owns(&path))
    {
        let (method, query) = (req.method().clone(), req.uri().query().map(str::to_string));
        let body = match read_limited(req).await {
            Ok(body) => body,
            Err(e) => return error_response(&e),
        };
        // With an approver directory, a grant is approved or denied with
        // the approver's own token, under their name (as approvals are).
        let p = path.trim_end_matches('/');
        let body = if api.approvers.is_some() && (p.ends_with("/approve") || p.ends_with("/deny")) {
            let mut v: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let claimed = v["approver"].as_str().unwrap_or_default().to_string();
            match approvals::decider(api.approvers.as_deref(), approver.as_ref(), claimed) {
                Ok(by) => {
                    if v.is_object() {
                        v["approver"] = serde_json::Value::String(by);
                    }
                    Bytes::from(v.to_string())
                }
                Err(e) => return error_response(&e),
            }
        } else {
            body
        };
        let (status, value) =
            crate::grants::api::route(grants, &method, &path, query.as_deref(), &body);
        return json(status, &value);
    }
    if approvals::owns(&path) {
        return match approvals::route(req, &api.store, api.approvers.as_deref(), approver).await {
            Ok(resp) => resp,
            Err(e) => error_response(&e),
        };
    }
    if let Some(inv) = &api.inventory
        && let Some((status, value)) = inventory_routes::route(inv, req.method(), &path)
    {
        return json(status, &value);
    }
    let method = req.method().clone();
    let body = match read_limited(req).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    if let Some(k) = &api.kill
        && let Some((status, value)) = kill_routes::route(
            k,
            &method,
            &path,
            &body,
            api.approvers.as_deref(),
            approver.as_ref(),
        )
    {
        return json(status, &value);
    }
    let Some(gateway) = &api.gateway else {
        return error_response(&not_found(&path));
    };
    if let Some(d) = &api.detection
        && let Some((status, value)) =
            alert_routes::route(d, gateway.agent_id(), &method, &path, &body)
    {
        return json(status, &value);
    }
    match gateway_routes::route(gateway, &method, &path, body).await {
        Some((status, value)) => json(status, &value),
        None => error_response(&not_found(&path)),
    }
}

/// The throttle first (a waiting peer's token is not even checked), then
/// the bearer token; `Some` is the refusal.
fn authorize<B>(
    req: &Request<B>,
    token: &BearerToken,
    gate: Option<(&AuthThrottle, IpAddr)>,
) -> Option<Response<Full<Bytes>>> {
    if let Some((throttle, peer)) = gate
        && let Err(wait) = throttle.admit(peer)
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = error_response(&ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!(
                "too many failed authentications from this address; retry in {secs} s with the right bearer token"
            ),
        ));
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        return Some(resp);
    }
    let authorized = token.authorizes(req.headers().get(header::AUTHORIZATION));
    if let Some((throttle, peer)) = gate {
        if authorized {
            throttle.succeeded(peer);
        } else {
            throttle.failed(peer);
        }
    }
    if authorized {
        return None;
    }
    let mut resp = error_response(&ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or invalid bearer token".into(),
    ));
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"agent-sidecar approvals\""),
    );
    Some(resp)
}
