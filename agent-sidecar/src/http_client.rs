//! The sidecar's one HTTP client: hyper's pooled client (HTTP/1.1 and
//! HTTP/2 by ALPN, idle connections kept 90 s) over rustls with the trust
//! anchors the caller gives. The gateway's upstreams use it with the
//! sidecar's own resolver; the webhooks and the admin API's CLI client use
//! it with the system resolver and, for webhooks, the operator's
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` ([`Proxied`]).

use std::{
    error::Error as StdError,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::{
        legacy::{
            Client,
            connect::{HttpConnector, proxy::Tunnel},
        },
        proxy::matcher::Matcher,
    },
    rt::{TokioExecutor, TokioTimer},
};
use rustls::ClientConfig;

/// Which URL schemes a client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schemes {
    /// `https://` only (tool upstreams: nothing leaves in the clear).
    HttpsOnly,
    /// `http://` and `https://` (webhooks, the local admin API).
    HttpAndHttps,
}

/// A TCP connector that resolves with `resolver` and gives up connecting
/// after `connect_timeout`.
pub fn tcp_connector<R>(resolver: R, connect_timeout: Duration) -> HttpConnector<R> {
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http
}

/// The pooled client over `connector`: TLS verified with `tls` (its ALPN
/// is replaced by `h2, http/1.1`), idle connections kept 90 s.
pub fn pooled<C, B>(
    mut tls: ClientConfig,
    connector: C,
    schemes: Schemes,
) -> Client<HttpsConnector<C>, B>
where
    C: tower_service::Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read
        + hyper::rt::Write
        + hyper_util::client::legacy::connect::Connection
        + Send
        + Unpin
        + 'static,
    C::Future: Send + 'static,
    C::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    tls.alpn_protocols.clear();
    let builder = HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = match schemes {
        Schemes::HttpsOnly => builder.https_only(),
        Schemes::HttpAndHttps => builder.https_or_http(),
    };
    let https = builder
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

/// A connector that goes through an HTTP proxy (a `CONNECT` tunnel, for
/// `http://` and `https://` destinations alike; TLS runs inside it end to
/// end) when `proxy` says the destination is proxied, and directly
/// otherwise.
#[derive(Clone)]
pub struct Proxied<C> {
    inner: C,
    proxy: Option<Arc<Matcher>>,
}

impl<C> Proxied<C> {
    /// `inner`, proxied as `proxy` says (`None`: never).
    pub fn new(inner: C, proxy: Option<Arc<Matcher>>) -> Self {
        Proxied { inner, proxy }
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl<C> tower_service::Service<Uri> for Proxied<C>
where
    C: tower_service::Service<Uri> + Clone + Send + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.proxy.as_ref().and_then(|m| m.intercept(&dst));
        let Some(intercept) = intercept else {
            let fut = self.inner.call(dst);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        };
        // The tunnel asks for host:port; give it the scheme's port when
        // the URL has none (it would assume 443).
        let target = match (dst.host(), dst.port_u16(), dst.scheme_str()) {
            (Some(host), port, scheme) => {
                let port = port.unwrap_or(if scheme == Some("http") { 80 } else { 443 });
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                format!("http://{host}:{port}/").parse::<Uri>()
            }
            (None, ..) => {
                return Box::pin(async { Err("the URL has no host".into()) });
            }
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => return Box::pin(async move { Err(e.into()) }),
        };
        if intercept.uri().scheme_str() != Some("http") {
            let proxy = intercept.uri().to_string();
            return Box::pin(async move {
                Err(format!("proxy {proxy}: only http:// proxies (CONNECT) are supported").into())
            });
        }
        let mut tunnel = Tunnel::new(intercept.uri().clone(), self.inner.clone());
        if let Some(auth) = intercept.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let fut = tower_service::Service::call(&mut tunnel, target);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// Which destinations go through a proxy: the operator's `HTTPS_PROXY`,
/// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (as curl reads them), or
/// `None` when none is set.
pub fn proxy_from_env() -> Option<Arc<Matcher>> {
    let set = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    set.then(|| Arc::new(Matcher::from_env()))
}

#[cfg(test)]
mod tests;
