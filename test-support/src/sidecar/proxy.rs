//! agent-sidecar's proxy listeners on loopback, deciding with a fixed
//! allowlist of names and resolving from a fixed map: what the proxy's and
//! the gateway's tests and benchmarks put in front of their upstreams.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use agent_sidecar::proxy::{
    Allowed, ExplicitProxy, HostPolicy, HostRefusal, ProxyContext, Resolve, ResolveError,
    ResolveFuture, TransparentListener,
};
use tokio::sync::oneshot;

/// Allows exactly the listed names, on any port.
pub struct AllowList(pub Vec<String>);

impl HostPolicy for AllowList {
    fn decide(&self, host: &str, _port: u16) -> Result<Allowed, HostRefusal> {
        if self.0.iter().any(|n| n == host) {
            Ok(Allowed::new(format!("allow-{host}")))
        } else {
            Err(HostRefusal::new(
                "not_allowlisted",
                format!("no egress rule allows {host}"),
            ))
        }
    }
}

/// Resolves from a fixed map; names not in it do not exist.
pub struct MapResolve(pub HashMap<String, Vec<IpAddr>>);

impl Resolve for MapResolve {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            self.0
                .get(host)
                .cloned()
                .ok_or_else(|| ResolveError::NoAddress {
                    host: host.to_owned(),
                })
        })
    }
}

/// Running proxy listeners; they stop when this is dropped.
pub struct Proxies {
    /// The explicit proxy.
    pub explicit: SocketAddr,
    /// Transparent listeners, by original port.
    pub transparent: HashMap<u16, SocketAddr>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Proxies {
    /// Starts an explicit proxy and one transparent listener per original
    /// port, all on 127.0.0.1.
    pub fn start(ctx: &ProxyContext, original_ports: &[u16]) -> Self {
        let mut stop = Vec::new();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let explicit = ExplicitProxy::bind(any, ctx.clone()).expect("bind explicit");
        let explicit_addr = explicit.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        stop.push(tx);
        tokio::spawn(explicit.serve(async move {
            let _ = rx.await;
        }));
        let mut transparent = HashMap::new();
        for &port in original_ports {
            let listener =
                TransparentListener::bind(any, port, ctx.clone()).expect("bind transparent");
            transparent.insert(port, listener.local_addr().expect("addr"));
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            tokio::spawn(listener.serve(async move {
                let _ = rx.await;
            }));
        }
        Self {
            explicit: explicit_addr,
            transparent,
            _stop: stop,
        }
    }
}
