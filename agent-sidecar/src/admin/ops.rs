//! The operations routes: `GET /metrics` (Prometheus text), `GET /healthz`
//! (200 while the sidecar answers: liveness) and `GET /readyz` (200 only
//! while the kernel programs are attached, the resolver listens and the
//! policies are loaded, else 503; the body lists each check). No token: a
//! scraper or a probe carries none.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};

use crate::metrics::Metrics;

/// What the operations routes read.
#[derive(Clone)]
pub(super) struct Ops {
    pub(super) metrics: Arc<Metrics>,
    /// Runs before each scrape (e.g. to read the kernel counters).
    pub(super) refresh: Arc<dyn Fn() + Send + Sync>,
}

impl Ops {
    /// Whether `path` is one of these routes.
    pub(super) fn owns(path: &str) -> bool {
        matches!(path, "/metrics" | "/healthz" | "/readyz")
    }

    /// Answers `method path`; anything else is a plain-text 404 that names
    /// the routes.
    pub(super) fn route(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let (status, ctype, body) = match (method, path) {
            (&Method::GET, "/metrics") => {
                (self.refresh)();
                (
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            (&Method::GET, "/readyz") => {
                let (ready, checks) = self.metrics.readiness().report();
                if ready {
                    (StatusCode::OK, "text/plain", format!("ready\n{checks}"))
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        format!("not ready\n{checks}"),
                    )
                }
            }
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /metrics, /healthz or /readyz\n".into(),
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("valid response")
    }
}
