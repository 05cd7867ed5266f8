//! The explicit proxy (`HTTP_PROXY` / `HTTPS_PROXY`): `CONNECT host:port`
//! tunnels, and absolute-form `http://` requests forwarded in origin form.

use std::{convert::Infallible, future::Future, net::SocketAddr};

use hyper::{Method, Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::{
    context::ProxyContext,
    dial::resolve,
    error::ProxyError,
    events::ListenerKind,
    forward::forward,
    listen::{accept_loop, bind_listener},
    record::Record,
    refusal::Denial,
    reply::{ProxyBody, clear_target, empty, refusal_response},
    route::{Tunnel, route},
};

/// Smallest read buffer hyper accepts.
const MIN_HEAD_BUFFER: usize = 8192;

/// The explicit proxy listener of one agent.
pub struct ExplicitProxy {
    listener: TcpListener,
    ctx: ProxyContext,
}

impl ExplicitProxy {
    /// Listens on `addr`. Must be called inside a Tokio runtime.
    pub fn bind(addr: SocketAddr, ctx: ProxyContext) -> Result<Self, ProxyError> {
        let listener = bind_listener(addr)?;
        Ok(Self { listener, ctx })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ProxyError> {
        self.listener.local_addr().map_err(ProxyError::LocalAddr)
    }

    /// Serves until `shutdown` completes. Stops accepting then; connections
    /// and tunnels already accepted run to their end on their own tasks.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, ctx } = self;
        accept_loop(
            listener,
            &ctx,
            ListenerKind::Explicit,
            shutdown,
            serve_connection,
        )
        .await;
    }
}

async fn serve_connection(ctx: ProxyContext, stream: TcpStream, peer: SocketAddr) {
    let service = {
        let ctx = ctx.clone();
        service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(handle(ctx, peer, req).await) }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.config.sniff_timeout)
        .max_buf_size(ctx.config.sniff_max_bytes.max(MIN_HEAD_BUFFER));
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(target: "agent_sidecar::proxy", client = %peer, error = %e, "explicit proxy connection ended");
    }
}

async fn handle(
    ctx: ProxyContext,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        return connect(ctx, peer, req).await;
    }
    let is_http = req.uri().scheme_str() == Some("http") && req.uri().authority().is_some();
    if is_http {
        return forward(ctx, peer, req).await;
    }
    let record = Record::start(
        ctx.emitter.clone(),
        &ctx.config.agent_id,
        ListenerKind::Explicit,
        peer,
        0,
    );
    let denial = Denial::malformed(
        "not_a_proxy_request",
        "send CONNECT host:port, or an absolute-form http:// request",
    );
    record.denied(&denial);
    refusal_response(&denial, None, 0)
}

/// `CONNECT host:port`: the name is checked and resolved before `200`; the
/// tunnel's first bytes are then checked against it before anything is
/// dialled (see [`route`]).
async fn connect(
    ctx: ProxyContext,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let authority = req.uri().authority().cloned();
    let port = authority.as_ref().and_then(|a| a.port_u16()).unwrap_or(0);
    let record = Record::start(
        ctx.emitter.clone(),
        &ctx.config.agent_id,
        ListenerKind::Explicit,
        peer,
        port,
    );
    let Some(authority) = authority.filter(|_| port != 0) else {
        let denial = Denial::malformed("connect_target_invalid", "CONNECT needs host:port");
        record.denied(&denial);
        return refusal_response(&denial, None, port);
    };
    let (cleared, record) = match clear_target(&ctx, record, authority.host(), port) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let addrs = match resolve(&ctx, &cleared.host).await {
        Ok(addrs) => addrs,
        Err(denial) => {
            record.denied(&denial);
            return refusal_response(&denial, Some(&cleared.host), port);
        }
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let tunnel = Tunnel {
                    host: cleared.host,
                    addrs,
                };
                route(&ctx, record, TokioIo::new(upgraded), port, Some(tunnel)).await;
            }
            Err(e) => record.denied(&Denial::malformed("upgrade_failed", e.to_string())),
        }
    });
    Response::new(empty())
}
