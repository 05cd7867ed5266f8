//! Listening sockets and the accept loop shared by both kinds of listener.

use std::{
    collections::VecDeque,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{Semaphore, oneshot},
};

use super::{context::ProxyContext, error::ProxyError, events::ListenerKind};

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
/// once, each on its own task.
///
/// Every connection is accepted at once (the accept queue never fills with
/// an agent's idle connects) and first waits for its client's first byte.
/// When the limit is reached, the oldest connection whose client has sent
/// nothing yet is closed to make room, so an agent holding thousands of idle
/// connections cannot starve its own real calls; only when every slot holds
/// a connection that is talking is the new one closed. Both are counted
/// (`agent_sidecar_proxy_refusals_total{reason="evicted_idle"|"at_capacity"}`).
/// Waits until every connection of `limit` (`max` permits) has ended, or
/// `within` has passed; how many were cut is logged.
async fn drain(limit: &Arc<Semaphore>, max: usize, within: std::time::Duration) {
    if within.is_zero() || limit.available_permits() >= max {
        return;
    }
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(within, limit.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            target: "agent_sidecar::proxy",
            cut = max - limit.available_permits(),
            grace_s = within.as_secs_f64(),
            "connections still open at the end of the drain are cut"
        );
    }
}

pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    ctx: &ProxyContext,
    kind: ListenerKind,
    shutdown: impl Future<Output = ()>,
    serve: F,
) where
    F: Fn(ProxyContext, TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(ctx.config.max_connections.max(1)));
    let quiet = Arc::new(Quiet::default());
    let serve = Arc::new(serve);
    // Every shed connection is counted; a WARN line says so at most once a
    // second, with how many were shed since the last one.
    let mut warned: Option<std::time::Instant> = None;
    let mut unlogged = 0u64;
    let mut shed = |reason: &str| {
        if let Some(m) = &ctx.emitter.metrics {
            m.shed(&ctx.config.agent_id, kind, reason);
        }
        unlogged += 1;
        if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            warned = Some(std::time::Instant::now());
            tracing::warn!(
                target: "agent_sidecar::proxy",
                agent_id = %ctx.config.agent_id,
                listener = kind.as_str(),
                reason,
                shed = std::mem::take(&mut unlogged),
                max_connections = ctx.config.max_connections,
                "proxy listener at its connection limit: connections closed (evicted_idle: the \
                 oldest that had sent nothing; at_capacity: the new one); counted in \
                 agent_sidecar_proxy_refusals_total"
            );
        }
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => {
                // Stop accepting (the listener goes), then let the calls in
                // flight finish, each holding a permit, within the drain.
                drop(listener);
                drain(&limit, ctx.config.max_connections.max(1), ctx.config.drain).await;
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(target: "agent_sidecar::proxy", error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !quiet.evict_oldest() {
                    shed("at_capacity");
                    drop(stream);
                    continue;
                }
                shed("evicted_idle");
                match tokio::time::timeout(EVICTION_WAIT, limit.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        shed("at_capacity");
                        continue;
                    }
                }
            }
        };
        // Small request/response turns matter more than batching here; a
        // failure only costs latency.
        let _ = stream.set_nodelay(true);
        let (id, evicted) = quiet.enter();
        let quiet = Arc::clone(&quiet);
        let serve = Arc::clone(&serve);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // A client that sends nothing within the sniff timeout is
            // closed, as the sniffing itself would.
            let quiet_for = ctx.config.sniff_timeout;
            let mut first = [0u8; 1];
            tokio::select! {
                // `peek` waits for a byte without taking it (readiness alone
                // can be a false positive); 0 is the client's end.
                spoke = stream.peek(&mut first) => {
                    quiet.leave(id);
                    if matches!(spoke, Ok(n) if n > 0) {
                        serve(ctx, stream, peer).await;
                    }
                }
                _ = evicted => {}
                () = tokio::time::sleep(quiet_for) => quiet.leave(id),
            }
        });
    }
}

/// How long a new connection waits for the slot an evicted one frees.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Connections whose client has sent nothing yet, oldest first.
#[derive(Default)]
struct Quiet {
    inner: Mutex<QuietInner>,
}

#[derive(Default)]
struct QuietInner {
    next: u64,
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Quiet {
    /// Registers a new quiet connection; the receiver fires when it is
    /// evicted.
    fn enter(&self) -> (u64, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let id = inner.next;
        inner.next += 1;
        inner.waiting.push_back((id, tx));
        (id, rx)
    }

    /// The connection spoke (or ended).
    fn leave(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = inner.waiting.iter().position(|(w, _)| *w == id) {
            inner.waiting.remove(i);
        }
    }

    /// Closes the oldest quiet connection; false if there is none.
    fn evict_oldest(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((_, tx)) = inner.waiting.pop_front() {
            if tx.send(()).is_ok() {
                return true;
            }
        }
        false
    }
}
