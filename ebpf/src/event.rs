//! Counters and deny events.

use agent_sidecar_common::{Counter, DenyEvent, DenyReason, Hook};
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::bpf_ktime_get_boot_ns,
};

use crate::maps::{COUNTERS, EVENTS};

/// Adds one to a per-CPU counter.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

/// What a hook knows about a refused attempt.
pub struct Denied {
    /// Which hook refused.
    pub hook: Hook,
    /// Why.
    pub reason: DenyReason,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Address family.
    pub family: u16,
    /// IANA protocol or socket protocol.
    pub protocol: u16,
    /// Socket type (`sock_create` only).
    pub sock_type: u8,
    /// Destination (v4 as mapped), network order.
    pub dst_addr: [u8; 16],
    /// Destination port, network order.
    pub dst_port_be: u16,
}

/// Counts the refusal and pushes a [`DenyEvent`]; a full ring buffer is
/// counted as [`Counter::EventsLost`], never turned into an allow.
#[inline(always)]
pub fn deny(d: Denied) {
    count(Counter::Denied);
    let Some(mut entry) = EVENTS.reserve::<DenyEvent>(0) else {
        count(Counter::EventsLost);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let event = DenyEvent {
        // SAFETY: helper without arguments.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id: d.cgroup_id,
        pid: (pid_tgid >> 32) as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        dst_port: u16::from_be(d.dst_port_be),
        family: d.family,
        dst_addr: d.dst_addr,
        protocol: d.protocol,
        sock_type: d.sock_type,
        hook: d.hook as u8,
        reason: d.reason as u8,
        pad: [0; 3],
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    entry.write(event);
    entry.submit(0);
}
