//! The gateway's upstream client: pooled HTTP/1.1 and HTTP/2 connections
//! over verified TLS, dialled only to the addresses the sidecar's own
//! resolver returns for the tool host (never what the agent asked for).

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{
    Client,
    connect::{HttpConnector, dns::Name},
};
use rustls::ClientConfig;

use crate::{
    http_client::{Schemes, pooled, tcp_connector},
    proxy::Resolve,
};

/// The body type of upstream requests.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;

/// A pooled client whose connections go only where the sidecar resolves.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector<SidecarDns>>, UpstreamBody>;

/// Adapts the sidecar's [`Resolve`] to hyper's connector.
#[derive(Clone)]
pub struct SidecarDns(Arc<dyn Resolve>);

impl tower_service::Service<Name> for SidecarDns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let addrs = resolver
                .resolve(&host)
                .await
                .map_err(|e| io::Error::other(e.to_string()))?;
            // The connector sets the port from the URI.
            Ok(addrs
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

/// Builds the client ([`crate::http_client`], `https://` only): TLS
/// verified with `tls` (its ALPN is replaced by `h2, http/1.1`), addresses
/// from `resolver` (never a proxy: the tool host is dialled at the address
/// the sidecar resolved), idle connections kept 90 s.
pub fn upstream_client(
    tls: ClientConfig,
    resolver: Arc<dyn Resolve>,
    connect_timeout: Duration,
) -> UpstreamClient {
    pooled(
        tls,
        tcp_connector(SidecarDns(resolver), connect_timeout),
        Schemes::HttpsOnly,
    )
}
