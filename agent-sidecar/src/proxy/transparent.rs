//! Transparent listeners: the kernel rewrites the agent's connects to an
//! intercepted port (80, 443...) of any address to the listener for that
//! port. The original address is deliberately ignored: the destination is
//! the name in the ClientHello (SNI) or request head (`Host`), and the
//! connection goes to the address the sidecar resolves for that name.

use std::{future::Future, net::SocketAddr};

use tokio::net::TcpListener;

use super::{
    context::ProxyContext,
    error::ProxyError,
    events::ListenerKind,
    listen::{accept_loop, bind_listener},
    record::Record,
    route::route,
};

/// The transparent listener of one intercepted original port.
pub struct TransparentListener {
    listener: TcpListener,
    original_port: u16,
    ctx: ProxyContext,
}

impl TransparentListener {
    /// Listens on `addr` for connections the kernel redirected from
    /// `original_port`.
    pub fn bind(
        addr: SocketAddr,
        original_port: u16,
        ctx: ProxyContext,
    ) -> Result<Self, ProxyError> {
        let listener = bind_listener(addr)?;
        Ok(Self {
            listener,
            original_port,
            ctx,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ProxyError> {
        self.listener.local_addr().map_err(ProxyError::LocalAddr)
    }

    /// Serves until `shutdown` completes. Stops accepting then; connections
    /// already accepted run to their end on their own tasks.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Self {
            listener,
            original_port,
            ctx,
        } = self;
        accept_loop(
            listener,
            &ctx,
            ListenerKind::Transparent,
            shutdown,
            move |ctx, stream, peer| {
                let record = Record::start(
                    ctx.emitter.clone(),
                    &ctx.config.agent_id,
                    ListenerKind::Transparent,
                    peer,
                    original_port,
                );
                async move { route(&ctx, record, stream, original_port, None).await }
            },
        )
        .await;
    }
}
