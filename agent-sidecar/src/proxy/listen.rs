//! Listening sockets and the accept loop shared by both kinds of listener.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::Semaphore,
};

use super::{context::ProxyContext, error::ProxyError};

/// Pause after a failed `accept` (e.g. out of file descriptors) so that the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Accept queue length: a burst of agent connects must queue rather than be
/// refused (a backlog of 128 overflows in tight connect loops).
const BACKLOG: u32 = 1024;

/// Binds a listening TCP socket.
pub(crate) fn bind_listener(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    bind().map_err(|source| ProxyError::Bind { addr, source })
}

/// Accepts connections until `shutdown`, at most `max_connections` served at
/// once (the rest wait in the accept queue), each on its own task.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    ctx: &ProxyContext,
    shutdown: impl Future<Output = ()>,
    serve: F,
) where
    F: Fn(ProxyContext, TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(ctx.config.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(target: "agent_sidecar::proxy", error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small request/response turns matter more than batching here; a
        // failure only costs latency.
        let _ = stream.set_nodelay(true);
        let task = serve(ctx.clone(), stream, peer);
        tokio::spawn(async move {
            task.await;
            drop(permit);
        });
    }
}
