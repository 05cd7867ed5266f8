//! The sockmap offload of the splice: after the decision and the dial, both
//! TCP sockets go into the kernel's sockhash
//! ([`SpliceOffload`](crate::kernel::splice_offload::SpliceOffload)) and the
//! kernel moves the bytes; this side only watches for the end of each
//! direction, passes it on, and reads the byte counts from `TCP_INFO`.

use std::{
    any::Any,
    fmt::Display,
    io,
    os::fd::{AsFd, AsRawFd},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use nix::sys::socket::{MsgFlags, recv};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::{io::AsyncWriteExt, net::TcpStream};

use super::Spliced;
use crate::kernel::{
    KernelError,
    splice_offload::{SpliceOffload, TcpCounters, tcp_counters},
};

/// How long the end of a direction is awaited by yielding the CPU before
/// falling back to 1 ms sleeps: the kernel usually sends the last
/// redirected bytes within microseconds.
const DRAIN_SPIN: Duration = Duration::from_millis(2);
/// Read buffer for the bytes the kernel passes up instead of redirecting
/// (stale bytes queued before the sockets were paired, or a peer that
/// already left the map).
const PASSED_BUFFER: usize = 16 * 1024;

/// Whether and how allowed connections are spliced in the kernel, shared by
/// the listeners of a [`ProxyContext`](crate::proxy::ProxyContext).
///
/// Counted in `agent_sidecar_proxy_splices_total{path, reason}`:
/// `path="kernel", reason="offloaded"` for each connection spliced in the
/// kernel, and `path="userspace"` with `reason` = `unavailable` (the offload
/// could not be loaded), `insert_failed` (the kernel refused the sockets)
/// or `tunnel` (a CONNECT tunnel, whose client side is not a plain socket)
/// for each connection copied in userspace although the offload was asked
/// for. The first fallback for a failure is logged as a warning.
#[derive(Debug)]
pub struct KernelSplice {
    requested: bool,
    offload: Option<SpliceOffload>,
    unavailable: Option<String>,
    splices: IntCounterVec,
    warned: AtomicBool,
}

impl KernelSplice {
    /// Copy in userspace; nothing is counted.
    pub fn disabled() -> Self {
        Self::new(false, None, None)
    }

    /// Loads the offload ([`SpliceOffload::load`]). When the kernel or the
    /// privileges do not allow it, logs one warning and keeps copying in
    /// userspace (counted as `reason="unavailable"`).
    pub fn load() -> Self {
        match SpliceOffload::load() {
            Ok(offload) => Self::with_offload(offload),
            Err(e) => {
                tracing::warn!(
                    target: "agent_sidecar::proxy",
                    error = %e,
                    "in-kernel splicing unavailable; proxied connections are copied in userspace"
                );
                let me = Self::new(true, None, Some(e.to_string()));
                me.warned.store(true, Ordering::Relaxed);
                me
            }
        }
    }

    /// Splices in the kernel with an already loaded offload.
    pub fn with_offload(offload: SpliceOffload) -> Self {
        Self::new(true, Some(offload), None)
    }

    fn new(requested: bool, offload: Option<SpliceOffload>, unavailable: Option<String>) -> Self {
        let splices = IntCounterVec::new(
            Opts::new(
                "agent_sidecar_proxy_splices_total",
                "Allowed proxy connections by splice path (kernel: sockmap offload; \
                 userspace: copied, with the reason the offload was not used).",
            ),
            &["path", "reason"],
        )
        .expect("valid metric definition");
        Self {
            requested,
            offload,
            unavailable,
            splices,
            warned: AtomicBool::new(false),
        }
    }

    /// Whether in-kernel splicing was asked for (loaded or not).
    pub fn is_requested(&self) -> bool {
        self.requested
    }

    /// Whether connections are spliced in the kernel.
    pub fn is_active(&self) -> bool {
        self.offload.is_some()
    }

    /// Why the offload is not in use, when it was asked for and failed to
    /// load.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The loaded offload, if any.
    pub fn offload(&self) -> Option<&SpliceOffload> {
        self.offload.as_ref()
    }

    /// Registers the splice counter on `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.splices.clone()))
    }

    /// Connections counted with `path` (`kernel`/`userspace`) and `reason`.
    pub fn count(&self, path: &str, reason: &str) -> u64 {
        self.splices.with_label_values(&[path, reason]).get()
    }

    fn fallback(&self, reason: &str, error: Option<&dyn Display>) {
        self.splices.with_label_values(&["userspace", reason]).inc();
        if let Some(error) = error
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                target: "agent_sidecar::proxy",
                reason,
                error = %error,
                "in-kernel splicing failed for a connection; copying it in userspace \
                 (logged once)"
            );
        }
    }
}

impl Default for KernelSplice {
    fn default() -> Self {
        Self::disabled()
    }
}

/// A pair of sockets spliced in the kernel: what was written to each before.
#[derive(Debug)]
pub(crate) struct Paired {
    client_written: u64,
    upstream_written: u64,
}

/// Hands `client` and `upstream` to the kernel when the offload is loaded
/// and the client is a plain TCP socket. Call it after the dial and before
/// anything is written to the upstream, so that every byte the upstream
/// sends goes through the kernel path. `None`: copy in userspace.
pub(crate) fn pair<C: Any>(
    splice: &KernelSplice,
    client: &C,
    upstream: &TcpStream,
) -> Option<Paired> {
    if !splice.requested {
        return None;
    }
    let Some(offload) = &splice.offload else {
        splice.fallback("unavailable", None);
        return None;
    };
    let Some(client) = (client as &dyn Any).downcast_ref::<TcpStream>() else {
        splice.fallback("tunnel", None);
        return None;
    };
    let paired = (|| -> Result<Paired, KernelError> {
        let counters = |s: &TcpStream| {
            tcp_counters(s.as_fd()).map_err(|e| KernelError::bpf("splice", "TCP_INFO", &e))
        };
        let paired = Paired {
            client_written: counters(client)?.written,
            upstream_written: counters(upstream)?.written,
        };
        offload.pair(client.as_fd(), upstream.as_fd())?;
        Ok(paired)
    })();
    match paired {
        Ok(paired) => {
            splice.splices.with_label_values(&["kernel", "offloaded"]).inc();
            Some(paired)
        }
        Err(e) => {
            splice.fallback("insert_failed", Some(&e));
            None
        }
    }
}

/// Which way bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// Agent to upstream.
    Up,
    /// Upstream to agent.
    Down,
}

/// Serves a connection spliced in the kernel to its end: waits for each
/// side to finish sending (FIN) and then, once the kernel has written
/// everything that side sent, shuts down the other side's write half; a
/// reset or error on either side ends it. Bytes the kernel passes up are
/// forwarded here. Returns the bytes received from each side after the
/// `sniffed` bytes the caller already read from the client.
pub(crate) async fn run(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    paired: Paired,
    sniffed: u64,
) -> Spliced {
    let mut buf = vec![0u8; PASSED_BUFFER];
    let mut fin = [false, false];
    let mut failed = false;
    // Bytes that arrived before the sockets were paired wait in a receive
    // queue; a receive call makes the kernel run them through the verdict
    // program (or hand them here).
    for way in [Way::Up, Way::Down] {
        let (src, dst) = ends(client, upstream, way);
        match flush(src, dst, &mut buf).await {
            Ok(true) => fin[way as usize] = true,
            Ok(false) => {}
            Err(_) => failed = true,
        }
    }
    for way in [Way::Up, Way::Down] {
        if fin[way as usize] && !failed {
            let (src, dst) = ends(client, upstream, way);
            failed = finish(src, dst, &paired, way).await.is_err();
        }
    }
    while !failed && !(fin[0] && fin[1]) {
        let way = tokio::select! {
            r = client.readable(), if !fin[0] => r.map(|()| Way::Up),
            r = upstream.readable(), if !fin[1] => r.map(|()| Way::Down),
        };
        let Ok(way) = way else { break };
        let (src, dst) = ends(client, upstream, way);
        match src.try_read(&mut buf) {
            Ok(0) => {
                fin[way as usize] = true;
                failed = finish(src, dst, &paired, way).await.is_err();
            }
            Ok(n) => failed = dst.write_all(&buf[..n]).await.is_err(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!(target: "agent_sidecar::proxy", error = %e, "kernel splice ended with an error");
                failed = true;
            }
        }
    }
    let received = |s: &TcpStream, fin: bool| {
        tcp_counters(s.as_fd()).map_or(0, |c| c.received.saturating_sub(u64::from(fin)))
    };
    Spliced {
        up: received(client, fin[0]).saturating_sub(sniffed),
        down: received(upstream, fin[1]),
    }
}

fn ends<'a>(
    client: &'a mut TcpStream,
    upstream: &'a mut TcpStream,
    way: Way,
) -> (&'a mut TcpStream, &'a mut TcpStream) {
    match way {
        Way::Up => (client, upstream),
        Way::Down => (upstream, client),
    }
}

/// One non-blocking receive on `src`, whatever tokio believes about its
/// readiness; what comes up is forwarded. `Ok(true)`: `src` finished.
async fn flush(src: &TcpStream, dst: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    loop {
        match recv(src.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return Ok(true),
            Ok(n) => dst.write_all(&buf[..n]).await?,
            Err(nix::errno::Errno::EAGAIN) => return Ok(false),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `src` finished sending: waits until the kernel has written to `dst`
/// everything received from `src`, then shuts down `dst`'s write half.
async fn finish(
    src: &TcpStream,
    dst: &mut TcpStream,
    paired: &Paired,
    way: Way,
) -> io::Result<()> {
    let base = match way {
        Way::Up => paired.upstream_written,
        Way::Down => paired.client_written,
    };
    let started = Instant::now();
    loop {
        let TcpCounters { received, .. } = tcp_counters(src.as_fd())?;
        let written = tcp_counters(dst.as_fd())?.written.saturating_sub(base);
        // `received` counts the FIN as one.
        if written + 1 >= received {
            break;
        }
        if let Some(e) = dst.take_error()? {
            return Err(e);
        }
        if started.elapsed() < DRAIN_SPIN {
            std::thread::yield_now();
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    dst.shutdown().await
}
