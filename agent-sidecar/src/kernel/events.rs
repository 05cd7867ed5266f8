//! Deny events from the kernel ring buffer, decoded for logs and metrics.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
};

use agent_sidecar_common::{DenyEvent, DenyReason, Hook, PROTO_TCP, PROTO_UDP};
use aya::maps::{MapData, RingBuf};
use serde::Serialize;
use tokio::{io::unix::AsyncFd, sync::oneshot};

/// One refused attempt, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenyRecord {
    /// Hook that refused (`connect4`, `sendmsg6`, `sock_create`, `egress`...).
    pub hook: &'static str,
    /// Why (`not_allowlisted`, `quarantined`, `socket_type`...).
    pub reason: &'static str,
    /// Caller pid (0 when the kernel sent the packet outside process context).
    pub pid: u32,
    /// Caller uid.
    pub uid: u32,
    /// Caller gid.
    pub gid: u32,
    /// Caller command name.
    pub comm: String,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Destination (none for `sock_create`); v4-mapped addresses shown as IPv4.
    pub destination: Option<SocketAddr>,
    /// `tcp`, `udp`, or the protocol number.
    pub protocol: String,
    /// Address family number.
    pub family: u16,
    /// Socket type (for `sock_create`).
    pub sock_type: u8,
    /// Kernel boot-time clock at the refusal, nanoseconds.
    pub boot_ns: u64,
}

impl DenyRecord {
    /// Decodes a ring-buffer item; `None` if it is not a [`DenyEvent`].
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<DenyEvent>() {
            return None;
        }
        // SAFETY: length checked; DenyEvent is plain data valid for any bits.
        let e: DenyEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let hook = Hook::from_u8(e.hook)?.name();
        let reason = DenyReason::from_u8(e.reason)?.name();
        let ip = Ipv6Addr::from(e.dst_addr);
        let ip = ip
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(ip));
        let socket_hook = e.hook == Hook::SockCreate as u8 || e.hook == Hook::LsmSocketCreate as u8;
        let destination = (!socket_hook).then(|| SocketAddr::new(ip, e.dst_port));
        let comm_len = e.comm.iter().position(|&b| b == 0).unwrap_or(e.comm.len());
        let protocol = match e.protocol {
            p if p == u16::from(PROTO_TCP) => "tcp".to_string(),
            p if p == u16::from(PROTO_UDP) => "udp".to_string(),
            p => p.to_string(),
        };
        Some(DenyRecord {
            hook,
            reason,
            pid: e.pid,
            uid: e.uid,
            gid: e.gid,
            comm: String::from_utf8_lossy(&e.comm[..comm_len]).into_owned(),
            cgroup_id: e.cgroup_id,
            destination,
            protocol,
            family: e.family,
            sock_type: e.sock_type,
            boot_ns: e.boot_ns,
        })
    }
}

/// Registers an fd-owning object (a ring buffer, the eBPF logger) with the
/// tokio reactor.
pub fn watch<T: AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: the aya objects passed here own their fd for their whole
    // lifetime and always return the same one.
    unsafe { AsyncFd::register(inner) }.map_err(|e| e.into_parts().1)
}

/// Reads the ring buffer asynchronously and hands every record to `sink`
/// until `stop` fires, then drains what is left and returns.
pub async fn consume(
    ring: RingBuf<MapData>,
    sink: &mut impl FnMut(DenyRecord),
    stop: oneshot::Receiver<()>,
) {
    let mut fd = match watch(ring) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the deny-event ring buffer");
            return;
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            ready = fd.readable_mut() => match ready {
                Ok(mut guard) => {
                    drain(guard.get_inner_mut(), sink);
                    guard.clear_ready();
                }
                Err(e) => {
                    tracing::error!(error = %e, "deny-event ring buffer failed");
                    return;
                }
            },
            _ = &mut stop => {
                drain(fd.get_mut(), sink);
                return;
            }
        }
    }
}

/// Hands every queued record to `sink` without waiting.
pub fn drain(ring: &mut RingBuf<MapData>, sink: &mut impl FnMut(DenyRecord)) {
    while let Some(item) = ring.next() {
        match DenyRecord::decode(&item) {
            Some(record) => sink(record),
            None => tracing::error!(len = item.len(), "undecodable deny event from the kernel"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(e: &DenyEvent) -> Vec<u8> {
        // SAFETY: DenyEvent is repr(C) plain data.
        unsafe {
            std::slice::from_raw_parts((e as *const DenyEvent).cast::<u8>(), size_of::<DenyEvent>())
        }
        .to_vec()
    }

    #[test]
    fn decodes_v4_mapped_destinations_as_ipv4() {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        let e = DenyEvent {
            boot_ns: 1,
            cgroup_id: 77,
            pid: 42,
            uid: 65534,
            gid: 65534,
            dst_port: 443,
            family: 10,
            dst_addr: agent_sidecar_common::v4_mapped([192, 0, 2, 7]),
            protocol: 6,
            sock_type: 0,
            hook: Hook::Connect6 as u8,
            reason: DenyReason::NotAllowlisted as u8,
            pad: [0; 3],
            comm,
        };
        let r = DenyRecord::decode(&raw(&e)).unwrap();
        assert_eq!(r.destination, Some("192.0.2.7:443".parse().unwrap()));
        assert_eq!(
            (r.hook, r.reason, r.comm.as_str(), r.protocol.as_str()),
            ("connect6", "not_allowlisted", "curl", "tcp")
        );
        assert!(DenyRecord::decode(&raw(&e)[..10]).is_none());
        let bad = DenyEvent { hook: 99, ..e };
        assert!(DenyRecord::decode(&raw(&bad)).is_none());
    }
}
