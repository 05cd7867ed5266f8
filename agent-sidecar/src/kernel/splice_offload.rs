//! In-kernel splicing for the proxy: a `BPF_MAP_TYPE_SOCKHASH` and the
//! `sk_skb` stream verdict program `splice_verdict` (`ebpf/src/splice.rs`)
//! attached to it.
//!
//! Both TCP sockets of an allowed, already-dialled connection are inserted,
//! each under its *peer's* socket cookie; the verdict program looks up the
//! receiving socket's own cookie and redirects every received skb to the
//! egress of the socket it finds — the peer — so bulk data never crosses into
//! userspace. The kernel does not pass FIN or RST across a redirect, and it
//! counts nothing per connection: the proxy still watches both sockets for
//! end of stream and reads the byte counts from `TCP_INFO`
//! ([`tcp_counters`]). A socket leaves the map when it is closed.
//!
//! The map is private to this process (never pinned), and the program is
//! attached to that map only, never to a cgroup: nothing here enforces or
//! relaxes egress.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
    path::PathBuf,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use agent_sidecar_common::map_names;
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, SockHash},
    programs::SkSkb,
};

use super::{KernelError, object};

/// Name of the sockhash in the object.
pub const SPLICE_MAP: &str = "SPLICE_PEERS";
/// Name of the stream verdict program in the object.
pub const SPLICE_PROGRAM: &str = "splice_verdict";
/// Where bpffs is expected; the object's pinned enforcement maps are
/// created in a private directory there and unpinned right after loading.
const BPFFS: &str = "/sys/fs/bpf";
/// aya-log's ring buffer in the object.
const LOG_MAP: &str = "AYA_LOGS";

/// The loaded sockhash and its verdict program. Dropping it detaches the
/// program and frees the map (sockets still in it go back to the normal
/// receive path).
pub struct SpliceOffload {
    peers: Mutex<SockHash<MapData, u64>>,
    /// Owns the verdict program and its attachment to the map.
    _ebpf: Ebpf,
}

impl std::fmt::Debug for SpliceOffload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpliceOffload").finish_non_exhaustive()
    }
}

impl SpliceOffload {
    /// Loads the verdict program from the embedded object and attaches it to
    /// a new sockhash. Needs `CAP_BPF` + `CAP_NET_ADMIN` (root) and bpffs at
    /// `/sys/fs/bpf`; any failure is an error and the caller keeps copying in
    /// userspace.
    pub fn load() -> Result<Self, KernelError> {
        // The object also declares the (pinned) enforcement maps; the loader
        // creates every map of an object. Make them as small as the kernel
        // allows and pin them in a private directory removed right away:
        // only the sockhash is used.
        let dir = private_pin_dir();
        std::fs::create_dir(&dir).map_err(|e| KernelError::io("creating", &dir, e))?;
        let loaded = {
            let mut loader = EbpfLoader::new();
            loader.btf(None).default_map_pin_directory(&dir);
            for name in map_names::ALL {
                let size = if name == map_names::EVENTS { 4096 } else { 1 };
                loader.set_max_entries(name, size);
            }
            loader.set_max_entries(LOG_MAP, 4096);
            loader.load(object::bytes())
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
        let mut ebpf =
            loaded.map_err(|e| KernelError::bpf(SPLICE_PROGRAM, "loading the object", &e))?;
        let map = ebpf.take_map(SPLICE_MAP).ok_or_else(|| KernelError::Bpf {
            program: SPLICE_MAP.into(),
            action: "finding map",
            detail: "missing from the object".into(),
        })?;
        let peers: SockHash<MapData, u64> = SockHash::try_from(map)
            .map_err(|e| KernelError::bpf(SPLICE_MAP, "opening map", &e))?;
        let program: &mut SkSkb = ebpf
            .program_mut(SPLICE_PROGRAM)
            .ok_or_else(|| KernelError::Bpf {
                program: SPLICE_PROGRAM.into(),
                action: "finding program",
                detail: "missing from the object".into(),
            })?
            .try_into()
            .map_err(|e| KernelError::bpf(SPLICE_PROGRAM, "finding program", &e))?;
        program
            .load()
            .map_err(|e| KernelError::bpf(SPLICE_PROGRAM, "loading (verifier)", &e))?;
        program
            .attach(peers.fd())
            .map_err(|e| KernelError::bpf(SPLICE_PROGRAM, "attaching to the sockhash", &e))?;
        Ok(Self {
            peers: Mutex::new(peers),
            _ebpf: ebpf,
        })
    }

    /// Splices `a` and `b` in the kernel from now on: each is inserted
    /// under the other's socket cookie. Both must be established TCP
    /// sockets. On error neither is left in the map.
    pub fn pair(&self, a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<(), KernelError> {
        let cookie_a = socket_cookie(a).map_err(|e| KernelError::bpf(SPLICE_MAP, "SO_COOKIE", &e))?;
        let cookie_b = socket_cookie(b).map_err(|e| KernelError::bpf(SPLICE_MAP, "SO_COOKIE", &e))?;
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .insert(cookie_b, a.as_raw_fd(), 0)
            .map_err(|e| KernelError::bpf(SPLICE_MAP, "inserting a socket", &e))?;
        if let Err(e) = peers.insert(cookie_a, b.as_raw_fd(), 0) {
            let _ = peers.remove(&cookie_b);
            return Err(KernelError::bpf(SPLICE_MAP, "inserting a socket", &e));
        }
        Ok(())
    }

    /// Sockets in the map (two per spliced connection).
    pub fn len(&self) -> usize {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.keys().count()
    }

    /// Whether no socket is in the map.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn private_pin_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    PathBuf::from(BPFFS).join(format!(
        "agent-sidecar-splice-{}-{nanos}",
        std::process::id()
    ))
}

/// The kernel's cookie of a socket (`SO_COOKIE`), what
/// `bpf_get_socket_cookie` returns for it.
pub fn socket_cookie(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: a valid fd, and a buffer of `len` bytes that outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// Byte counters of one TCP socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Sequence space received (`tcpi_bytes_received`): data bytes, plus one
    /// once a FIN arrived.
    pub received: u64,
    /// Bytes written to the socket so far: acknowledged by the peer
    /// (`tcpi_bytes_acked`) plus still queued (`SIOCOUTQ`).
    pub written: u64,
}

/// Reads [`TcpCounters`] of a TCP socket (`TCP_INFO` and `SIOCOUTQ`).
pub fn tcp_counters(fd: BorrowedFd<'_>) -> io::Result<TcpCounters> {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd, and a buffer of `len` bytes that outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut outq: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &raw mut outq) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Acked bytes include our own FIN once it is acknowledged; callers
    // compare before shutting down.
    Ok(TcpCounters {
        received: info.tcpi_bytes_received,
        written: info.tcpi_bytes_acked + outq.max(0) as u64,
    })
}
