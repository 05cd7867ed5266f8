//! The agent's open sockets, found and destroyed through the kernel's
//! socket-diagnostics netlink interface (`NETLINK_SOCK_DIAG`): a dump of
//! every TCP and UDP socket, IPv4 and IPv6, keeps those whose cgroup is the
//! agent's (`INET_DIAG_CGROUP_ID`), and `SOCK_DESTROY` aborts each one (a TCP
//! socket sends a reset to its peer and drops its unsent data; a UDP socket
//! is disconnected). Needs `CONFIG_INET_DIAG_DESTROY` and `CAP_NET_ADMIN`.
//!
//! The diagnostics interface sees the sockets of one network namespace: the
//! caller names every namespace the agent's processes were seen in
//! ([`NetnsSet`]).

use std::{
    fs::File,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::Path,
    time::Duration,
};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, setsockopt, socket,
    sockopt::ReceiveTimeout,
};

use super::KernelError;

/// `SOCK_DIAG_BY_FAMILY`: dump request and answers.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `SOCK_DESTROY`: abort one socket.
const SOCK_DESTROY: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_sockid`.
const SOCKID_LEN: usize = 48;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 8 + SOCKID_LEN;
/// `struct inet_diag_msg`.
const MSG_LEN: usize = 4 + SOCKID_LEN + 20;
/// `INET_DIAG_CGROUP_ID`: the socket's cgroup v2 id (u64).
const INET_DIAG_CGROUP_ID: u16 = 21;
/// TCP states not dumped: `TCP_TIME_WAIT` (6) and `TCP_NEW_SYN_RECV` (12)
/// carry no cgroup and can send no data.
const STATES: u32 = !((1 << 6) | (1 << 12));
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
const IPPROTO_TCP: u8 = libc::IPPROTO_TCP as u8;
const IPPROTO_UDP: u8 = libc::IPPROTO_UDP as u8;

/// One socket of the agent's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSocket {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u8,
    /// Kernel socket state (`TCP_ESTABLISHED` = 1, `TCP_FIN_WAIT1` = 4...).
    pub state: u8,
    /// Bytes written but not yet acknowledged by the peer (TCP).
    pub unsent: u32,
    /// The `inet_diag_sockid` that names the socket to the kernel.
    sockid: [u8; SOCKID_LEN],
}

impl AgentSocket {
    /// The socket's peer address and port, as `inet_diag_sockid` names it.
    pub fn peer(&self) -> std::net::SocketAddr {
        let port = u16::from_be_bytes([self.sockid[2], self.sockid[3]]);
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&self.sockid[20..36]);
        let addr = if self.family == AF_INET {
            std::net::IpAddr::from([ip[0], ip[1], ip[2], ip[3]])
        } else {
            std::net::Ipv6Addr::from(ip).to_canonical()
        };
        std::net::SocketAddr::new(addr, port)
    }
}

/// What a destroy pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestroyReport {
    /// Sockets aborted.
    pub destroyed: usize,
    /// Sockets that were already gone when their turn came.
    pub vanished: usize,
}

/// The network namespaces the agent's sockets may live in, held open so a
/// namespace can be entered after the agent's processes are gone.
#[derive(Debug, Default)]
pub struct NetnsSet {
    entries: Vec<(u64, File)>,
}

impl NetnsSet {
    /// The namespace of the calling process.
    pub fn own() -> Result<Self, KernelError> {
        let mut set = Self::default();
        set.add_path(Path::new("/proc/self/ns/net"))?;
        Ok(set)
    }

    /// Adds the namespace of each process in `pids` (a process that is
    /// already gone is skipped).
    pub fn add_pids(&mut self, pids: &[u32]) {
        for pid in pids {
            let _ = self.add_path(&Path::new("/proc").join(pid.to_string()).join("ns/net"));
        }
    }

    fn add_path(&mut self, path: &Path) -> Result<(), KernelError> {
        let file = File::open(path).map_err(|e| KernelError::io("opening", path, e))?;
        let ino = file
            .metadata()
            .map_err(|e| KernelError::io("reading", path, e))?
            .ino();
        if !self.entries.iter().any(|(i, _)| *i == ino) {
            self.entries.push((ino, file));
        }
        Ok(())
    }

    /// Number of namespaces.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn diag_error(action: &'static str, e: impl std::fmt::Display) -> KernelError {
    KernelError::SocketDiag {
        action,
        detail: e.to_string(),
    }
}

/// A `NETLINK_SOCK_DIAG` socket inside the namespace `netns`: created on a
/// short-lived thread that enters it (a socket belongs to the namespace it
/// was created in, whichever thread uses it later).
fn diag_socket(netns: &File) -> Result<OwnedFd, KernelError> {
    let ns = netns
        .try_clone()
        .map_err(|e| diag_error("duplicating a namespace handle", e))?;
    let fd = std::thread::spawn(move || -> Result<OwnedFd, KernelError> {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| diag_error("entering the agent's network namespace", e))?;
        socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )
        .map_err(|e| diag_error("opening a NETLINK_SOCK_DIAG socket", e))
    })
    .join()
    .map_err(|_| diag_error("opening a NETLINK_SOCK_DIAG socket", "thread panicked"))??;
    setsockopt(&fd, ReceiveTimeout, &nix::sys::time::TimeVal::new(2, 0))
        .map_err(|e| diag_error("setting a receive timeout", e))?;
    Ok(fd)
}

/// Every TCP and UDP socket, IPv4 and IPv6, of cgroup `cgroup_id` in the
/// namespaces of `netns`.
pub fn list(cgroup_id: u64, netns: &NetnsSet) -> Result<Vec<AgentSocket>, KernelError> {
    list_of(&[cgroup_id], netns)
}

/// Every TCP and UDP socket of any of the cgroups `cgroups` (a pod's
/// governed containers) in the namespaces of `netns`.
pub fn list_of(cgroups: &[u64], netns: &NetnsSet) -> Result<Vec<AgentSocket>, KernelError> {
    let mut found = Vec::new();
    for (_, ns) in &netns.entries {
        let fd = diag_socket(ns)?;
        for family in [AF_INET, AF_INET6] {
            for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
                dump(&fd, family, protocol, cgroups, &mut found)?;
            }
        }
    }
    Ok(found)
}

/// Aborts every TCP and UDP socket of cgroup `cgroup_id` in the namespaces
/// of `netns`. Repeats the pass until one finds nothing (a socket that was
/// being created during a pass is caught by the next), at most 4 times.
pub fn destroy_all(cgroup_id: u64, netns: &NetnsSet) -> Result<DestroyReport, KernelError> {
    destroy_all_of(&[cgroup_id], netns)
}

/// [`destroy_all`] for the sockets of any of the cgroups `cgroups`.
pub fn destroy_all_of(cgroups: &[u64], netns: &NetnsSet) -> Result<DestroyReport, KernelError> {
    let mut report = DestroyReport::default();
    for _ in 0..4 {
        let mut found_any = false;
        for (_, ns) in &netns.entries {
            let fd = diag_socket(ns)?;
            let mut found = Vec::new();
            for family in [AF_INET, AF_INET6] {
                for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
                    dump(&fd, family, protocol, cgroups, &mut found)?;
                }
            }
            found_any |= !found.is_empty();
            for sock in &found {
                if destroy(&fd, sock)? {
                    report.destroyed += 1;
                } else {
                    report.vanished += 1;
                }
            }
        }
        if !found_any {
            return Ok(report);
        }
    }
    // Still finding sockets after several passes: the cgroup keeps making
    // them. Report it; the caller decides (quarantine keeps denying).
    let left = list_of(cgroups, netns)?.len();
    if left == 0 {
        Ok(report)
    } else {
        Err(diag_error(
            "destroying the agent's sockets",
            format!("{left} sockets reappeared after 4 passes"),
        ))
    }
}

/// Aborts the TCP and UDP sockets of any of `cgroups` whose peer `cut`
/// selects (e.g. the connections to one destination whose grant ended).
pub fn destroy_matching_of(
    cgroups: &[u64],
    netns: &NetnsSet,
    cut: impl Fn(std::net::SocketAddr) -> bool,
) -> Result<DestroyReport, KernelError> {
    let mut report = DestroyReport::default();
    for (_, ns) in &netns.entries {
        let fd = diag_socket(ns)?;
        let mut found = Vec::new();
        for family in [AF_INET, AF_INET6] {
            for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
                dump(&fd, family, protocol, cgroups, &mut found)?;
            }
        }
        for sock in found.iter().filter(|s| cut(s.peer())) {
            if destroy(&fd, sock)? {
                report.destroyed += 1;
            } else {
                report.vanished += 1;
            }
        }
    }
    Ok(report)
}

/// What a drain left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Bytes still unacknowledged when the drain gave up (0: everything was
    /// delivered).
    pub unsent: u64,
    /// Sockets of the cgroup at the last look.
    pub sockets: usize,
}

/// Waits up to `limit` for the unsent data of the cgroup's TCP sockets to
/// be acknowledged.
pub fn drain(
    cgroup_id: u64,
    netns: &NetnsSet,
    limit: Duration,
) -> Result<DrainReport, KernelError> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let found = list(cgroup_id, netns)?;
        let unsent: u64 = found
            .iter()
            .filter(|s| s.protocol == IPPROTO_TCP)
            .map(|s| u64::from(s.unsent))
            .sum();
        if unsent == 0 || std::time::Instant::now() >= deadline {
            return Ok(DrainReport {
                unsent,
                sockets: found.len(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn header(len: usize, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf
}

/// An `inet_diag_req_v2` request of `kind`.
fn request(
    kind: u16,
    flags: u16,
    family: u8,
    protocol: u8,
    states: u32,
    sockid: &[u8; SOCKID_LEN],
) -> Vec<u8> {
    let mut buf = header(NLMSG_HDRLEN + REQ_LEN, kind, flags, 1);
    buf.extend_from_slice(&[family, protocol, 0, 0]);
    buf.extend_from_slice(&states.to_ne_bytes());
    buf.extend_from_slice(sockid);
    buf
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Dumps the `family`/`protocol` sockets and keeps those of `cgroups`.
fn dump(
    fd: &OwnedFd,
    family: u8,
    protocol: u8,
    cgroups: &[u64],
    out: &mut Vec<AgentSocket>,
) -> Result<(), KernelError> {
    let req = request(
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        family,
        protocol,
        STATES,
        &[0; SOCKID_LEN],
    );
    send(fd.as_raw_fd(), &req, MsgFlags::empty())
        .map_err(|e| diag_error("requesting a dump", e))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
            .map_err(|e| diag_error("reading a dump", e))?;
        if n == 0 {
            return Err(diag_error("reading a dump", "the kernel closed the socket"));
        }
        let mut at = 0;
        while at + NLMSG_HDRLEN <= n {
            let msg = &buf[at..n];
            let len = u32_at(msg, 0).unwrap_or(0) as usize;
            let kind = u16_at(msg, 4).unwrap_or(0);
            if len < NLMSG_HDRLEN || len > msg.len() {
                return Err(diag_error("reading a dump", "truncated netlink message"));
            }
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = u32_at(msg, NLMSG_HDRLEN).map(|e| -(e as i32)).unwrap_or(0);
                    return Err(diag_error(
                        "reading a dump",
                        std::io::Error::from_raw_os_error(errno),
                    ));
                }
                SOCK_DIAG_BY_FAMILY => {
                    if let Some(sock) = parse(&msg[NLMSG_HDRLEN..len], protocol, cgroups) {
                        out.push(sock);
                    }
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
}

/// Reads one `inet_diag_msg` and its attributes; `Some` when the socket is
/// in one of `cgroups`.
fn parse(body: &[u8], protocol: u8, cgroups: &[u64]) -> Option<AgentSocket> {
    let fixed = body.get(..MSG_LEN)?;
    let mut at = MSG_LEN;
    let mut cgroup = None;
    while at + 4 <= body.len() {
        let len = usize::from(u16_at(body, at)?);
        let kind = u16_at(body, at + 2)? & 0x3fff;
        if len < 4 || at + len > body.len() {
            break;
        }
        if kind == INET_DIAG_CGROUP_ID && len >= 12 {
            cgroup = u64_at(body, at + 4);
        }
        at += (len + 3) & !3;
    }
    if !cgroup.is_some_and(|c| cgroups.contains(&c)) {
        return None;
    }
    let mut sockid = [0u8; SOCKID_LEN];
    sockid.copy_from_slice(&fixed[4..4 + SOCKID_LEN]);
    Some(AgentSocket {
        family: fixed[0],
        protocol,
        state: fixed[1],
        unsent: u32_at(fixed, 4 + SOCKID_LEN + 8)?,
        sockid,
    })
}

/// Destroys one socket; `Ok(false)` when it was already gone.
fn destroy(fd: &OwnedFd, sock: &AgentSocket) -> Result<bool, KernelError> {
    let req = request(
        SOCK_DESTROY,
        NLM_F_REQUEST | NLM_F_ACK,
        sock.family,
        sock.protocol,
        STATES,
        &sock.sockid,
    );
    send(fd.as_raw_fd(), &req, MsgFlags::empty())
        .map_err(|e| diag_error("requesting SOCK_DESTROY", e))?;
    let mut buf = [0u8; 1024];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| diag_error("reading the SOCK_DESTROY answer", e))?;
    let msg = &buf[..n];
    if u16_at(msg, 4) != Some(NLMSG_ERROR) {
        return Err(diag_error(
            "reading the SOCK_DESTROY answer",
            "unexpected netlink message",
        ));
    }
    let errno = u32_at(msg, NLMSG_HDRLEN).map(|e| -(e as i32)).unwrap_or(0);
    match errno {
        0 => Ok(true),
        libc::ENOENT => Ok(false),
        libc::EOPNOTSUPP => Err(diag_error(
            "destroying a socket",
            "the kernel cannot destroy sockets (build it with CONFIG_INET_DIAG_DESTROY=y)",
        )),
        e => Err(diag_error(
            "destroying a socket",
            std::io::Error::from_raw_os_error(e),
        )),
    }
}

#[cfg(test)]
mod tests;
