//! The operations routes: `GET /metrics` (Prometheus text) and
//! `GET /healthz`. No token: a scraper or a probe carries none.

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
        matches!(path, "/metrics" | "/healthz")
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
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /metrics or /healthz\n".into(),
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("valid response")
    }
}
