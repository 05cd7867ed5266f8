//! agent-sidecar kernel programs: per-cgroup egress enforcement.
//!
//! Entry points are thin: each reads its context, asks [`verdict`] and returns
//! an explicit verdict on every path. A context that cannot be read is a
//! refusal (fail closed), never a fall-through to "allow".
#![no_std]
#![no_main]
// Map keys and values go to aya by reference, as aya's own programs do: a
// by-value argument is one more copy on the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

mod event;
mod maps;
mod redirect;
mod verdict;

use agent_sidecar_common::{Counter, DenyReason, Hook, PROTO_TCP, PROTO_UDP};
use aya_ebpf::{
    helpers::generated::{bpf_get_current_cgroup_id, bpf_skb_cgroup_id},
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, lsm_cgroup},
    programs::{LsmContext, SkBuffContext, SockAddrContext, SockContext},
};
use aya_log_ebpf::warn;

use event::{Denied, count, deny};
use verdict::{At, Dest, check, check_socket, check_socket_lsm};

/// Return value that lets the syscall or packet proceed.
const ALLOW: i32 = 1;
/// Return value that fails the syscall with `EPERM` or drops the packet.
const DENY: i32 = 0;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    if current_exempt() {
        return ALLOW;
    }
    sock_addr_v4(&ctx, Hook::Connect4)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    if current_exempt() {
        return ALLOW;
    }
    sock_addr_v4(&ctx, Hook::Sendmsg4)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    if current_exempt() {
        return ALLOW;
    }
    sock_addr_v6(&ctx, Hook::Connect6)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    if current_exempt() {
        return ALLOW;
    }
    sock_addr_v6(&ctx, Hook::Sendmsg6)
}

#[cgroup_sock_addr(recvmsg4)]
pub fn recvmsg4(ctx: SockAddrContext) -> i32 {
    redirect::restore_source(&ctx, false);
    // recvmsg programs must return 1.
    ALLOW
}

#[cgroup_sock_addr(recvmsg6)]
pub fn recvmsg6(ctx: SockAddrContext) -> i32 {
    redirect::restore_source(&ctx, true);
    // recvmsg programs must return 1.
    ALLOW
}

#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    if current_exempt() {
        return ALLOW;
    }
    // SAFETY: the kernel hands a valid bpf_sock context.
    let (family, sock_type, protocol) =
        unsafe { ((*ctx.sock).family, (*ctx.sock).type_, (*ctx.sock).protocol) };
    match check_socket(family, sock_type, protocol) {
        Ok(()) => {
            count(Counter::SocketsCreated);
            ALLOW
        }
        Err(reason) => {
            deny(Denied {
                hook: Hook::SockCreate,
                reason,
                // SAFETY: helper without arguments.
                cgroup_id: unsafe { bpf_get_current_cgroup_id() },
                family: family as u16,
                protocol: protocol as u16,
                sock_type: sock_type as u8,
                dst_addr: [0; 16],
                dst_port_be: 0,
            });
            DENY
        }
    }
}

/// BPF LSM, per cgroup: `security_socket_create(family, type, protocol, kern)`.
/// Returns 1 to allow, 0 to refuse with `EPERM`.
#[lsm_cgroup(hook = "socket_create")]
pub fn lsm_socket_create(ctx: LsmContext) -> i32 {
    let family: i32 = ctx.arg(0);
    let sock_type: i32 = ctx.arg(1);
    let protocol: i32 = ctx.arg(2);
    let kern: i32 = ctx.arg(3);
    if kern != 0 || current_exempt() {
        // Sockets the kernel creates for itself are not the agent's.
        return ALLOW;
    }
    match check_socket_lsm(family, sock_type) {
        Ok(()) => ALLOW,
        Err(reason) => {
            deny(Denied {
                hook: Hook::LsmSocketCreate,
                reason,
                // SAFETY: helper without arguments.
                cgroup_id: unsafe { bpf_get_current_cgroup_id() },
                family: family as u16,
                protocol: protocol as u16,
                sock_type: (sock_type & 0xf) as u8,
                dst_addr: [0; 16],
                dst_port_be: 0,
            });
            DENY
        }
    }
}

#[cgroup_skb(egress)]
pub fn egress(ctx: SkBuffContext) -> i32 {
    // SAFETY: valid skb context.
    if is_exempt(unsafe { bpf_skb_cgroup_id(ctx.skb.skb) }) {
        return ALLOW;
    }
    let parsed = match egress_dest_direct(&ctx) {
        Some(found) => Ok(found),
        None => egress_dest(&ctx),
    };
    match parsed {
        Ok((proto, dest)) => match check(proto, &dest, At::Egress) {
            Ok(()) => ALLOW,
            // A quarantine destroys the agent's sockets: their resets (no
            // payload) must reach the peers, which then drop the connection
            // instead of waiting for data that never comes.
            Err(DenyReason::Quarantined) if proto == PROTO_TCP && is_bare_reset(&ctx) => ALLOW,
            Err(reason) => {
                drop_packet(&ctx, proto, &dest, reason);
                DENY
            }
        },
        Err(()) => {
            warn!(
                &ctx,
                "dropping an unparsable or non-TCP/UDP packet from the agent cgroup"
            );
            drop_packet(&ctx, 0, &Dest::V6([0; 16], 0), DenyReason::Unparsable);
            DENY
        }
    }
}

/// Whether cgroup `id` is exempt ([`maps::EXEMPT`]): the sidecar's own
/// container when the programs are attached at a pod's cgroup.
#[inline(always)]
fn is_exempt(id: u64) -> bool {
    // SAFETY: a lookup in a map the sidecar fills; the value is not kept.
    unsafe { maps::EXEMPT.get(&id) }.is_some()
}

/// Whether the current task's cgroup is exempt.
#[inline(always)]
fn current_exempt() -> bool {
    // SAFETY: helper without arguments.
    is_exempt(unsafe { bpf_get_current_cgroup_id() })
}

#[inline(always)]
fn sock_addr_v4(ctx: &SockAddrContext, hook: Hook) -> i32 {
    // SAFETY: the kernel hands a valid bpf_sock_addr context.
    let (ip, port, protocol) = unsafe {
        (
            (*ctx.sock_addr).user_ip4,
            (*ctx.sock_addr).user_port,
            (*ctx.sock_addr).protocol,
        )
    };
    let dest = Dest::V4(ip.to_ne_bytes(), port as u16);
    let dest = match protocol as u8 {
        p @ (PROTO_TCP | PROTO_UDP) if protocol <= 0xff => {
            redirect::intercept(ctx, p, &dest, false).unwrap_or(dest)
        }
        _ => dest,
    };
    decide_sock_addr(hook, protocol, dest, AF_INET)
}

#[inline(always)]
fn sock_addr_v6(ctx: &SockAddrContext, hook: Hook) -> i32 {
    // SAFETY: the kernel hands a valid bpf_sock_addr context; user_ip6 is read
    // one 32-bit word at a time as the verifier requires.
    let (w, port, protocol) = unsafe {
        let s = &*ctx.sock_addr;
        (
            [s.user_ip6[0], s.user_ip6[1], s.user_ip6[2], s.user_ip6[3]],
            s.user_port,
            s.protocol,
        )
    };
    let mut addr = [0u8; 16];
    addr[0..4].copy_from_slice(&w[0].to_ne_bytes());
    addr[4..8].copy_from_slice(&w[1].to_ne_bytes());
    addr[8..12].copy_from_slice(&w[2].to_ne_bytes());
    addr[12..16].copy_from_slice(&w[3].to_ne_bytes());
    let dest = Dest::from_v6(addr, port as u16);
    let dest = match protocol as u8 {
        p @ (PROTO_TCP | PROTO_UDP) if protocol <= 0xff => {
            redirect::intercept(ctx, p, &dest, true).unwrap_or(dest)
        }
        _ => dest,
    };
    decide_sock_addr(hook, protocol, dest, AF_INET6)
}

#[inline(always)]
fn decide_sock_addr(hook: Hook, protocol: u32, dest: Dest, family: u16) -> i32 {
    let verdict = match protocol as u8 {
        p @ (PROTO_TCP | PROTO_UDP) if protocol <= 0xff => check(p, &dest, At::Socket),
        _ => Err(DenyReason::SocketType),
    };
    match verdict {
        Ok(()) => {
            count(Counter::Allowed);
            ALLOW
        }
        Err(reason) => {
            deny(Denied {
                hook,
                reason,
                // SAFETY: helper without arguments.
                cgroup_id: unsafe { bpf_get_current_cgroup_id() },
                family,
                protocol: protocol as u16,
                sock_type: 0,
                dst_addr: dest.addr16(),
                dst_port_be: dest.port_be(),
            });
            DENY
        }
    }
}

/// Reads the destination of an option-less IPv4 TCP/UDP packet straight
/// from the linear packet data (`skb->data` starts at the IP header), the
/// common case. `None` for anything else: the caller then takes the
/// complete path, [`egress_dest`].
#[inline(always)]
fn egress_dest_direct(ctx: &SkBuffContext) -> Option<(u8, Dest)> {
    // SAFETY: valid skb context; data and data_end are packet pointers the
    // verifier bounds-checks below.
    let (data, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    // The header and the ports: 24 bytes.
    if data + 24 > end {
        return None;
    }
    let p = data as *const u8;
    // SAFETY: every read is within the 24 bytes checked above.
    unsafe {
        if *p != 0x45 {
            return None;
        }
        let proto = *p.add(9);
        let frag = u16::from_be_bytes([*p.add(6), *p.add(7)]) & 0x1fff;
        if frag != 0 || (proto != PROTO_TCP && proto != PROTO_UDP) {
            return None;
        }
        let addr = [*p.add(16), *p.add(17), *p.add(18), *p.add(19)];
        let port_be = u16::from_ne_bytes([*p.add(22), *p.add(23)]);
        Some((proto, Dest::V4(addr, port_be)))
    }
}

/// Reads the L3/L4 destination of an egress packet with
/// `bpf_skb_load_bytes` (`skb->data` starts at the IP header). Anything but TCP or UDP directly after a plain IPv4 or IPv6
/// header is an error, which the caller drops.
#[inline(always)]
fn egress_dest(ctx: &SkBuffContext) -> Result<(u8, Dest), ()> {
    let first: u8 = ctx.load(0).map_err(|_| ())?;
    match first >> 4 {
        4 => {
            let hdr: [u8; 20] = ctx.load(0).map_err(|_| ())?;
            let ihl = ((hdr[0] & 0x0f) as usize) * 4;
            let proto = hdr[9];
            // A non-first fragment carries no ports; the egress hook sees
            // datagrams before fragmentation, so this never happens legitimately.
            let frag_offset = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
            if ihl < 20 || frag_offset != 0 || (proto != PROTO_TCP && proto != PROTO_UDP) {
                return Err(());
            }
            let ports: [u8; 4] = ctx.load(ihl).map_err(|_| ())?;
            let port_be = u16::from_ne_bytes([ports[2], ports[3]]);
            Ok((
                proto,
                Dest::V4([hdr[16], hdr[17], hdr[18], hdr[19]], port_be),
            ))
        }
        6 => {
            let hdr: [u8; 40] = ctx.load(0).map_err(|_| ())?;
            let proto = hdr[6];
            if proto != PROTO_TCP && proto != PROTO_UDP {
                return Err(());
            }
            let ports: [u8; 4] = ctx.load(40).map_err(|_| ())?;
            let port_be = u16::from_ne_bytes([ports[2], ports[3]]);
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&hdr[24..40]);
            Ok((proto, Dest::V6(addr, port_be)))
        }
        _ => Err(()),
    }
}

/// Whether the packet is a TCP segment with RST set and no payload, read
/// from the IP header's own lengths (a reset is never segmented).
#[inline(always)]
fn is_bare_reset(ctx: &SkBuffContext) -> bool {
    const RST: u8 = 0x04;
    let Ok(first) = ctx.load::<u8>(0) else {
        return false;
    };
    let (l4, payload_and_tcp) = match first >> 4 {
        4 => {
            let Ok(hdr) = ctx.load::<[u8; 20]>(0) else {
                return false;
            };
            let ihl = ((hdr[0] & 0x0f) as usize) * 4;
            let total = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
            if hdr[9] != PROTO_TCP || ihl < 20 || total < ihl {
                return false;
            }
            (ihl, total - ihl)
        }
        6 => {
            let Ok(hdr) = ctx.load::<[u8; 8]>(0) else {
                return false;
            };
            if hdr[6] != PROTO_TCP {
                return false;
            }
            (40, u16::from_be_bytes([hdr[4], hdr[5]]) as usize)
        }
        _ => return false,
    };
    if l4 > 60 {
        return false;
    }
    let Ok(tcp) = ctx.load::<[u8; 14]>(l4) else {
        return false;
    };
    let data_offset = ((tcp[12] >> 4) as usize) * 4;
    tcp[13] & RST != 0 && data_offset >= 20 && payload_and_tcp == data_offset
}

#[inline(always)]
fn drop_packet(ctx: &SkBuffContext, proto: u8, dest: &Dest, reason: DenyReason) {
    count(Counter::SkbDropped);
    let family = match dest {
        Dest::V4(..) => AF_INET,
        Dest::V6(..) => AF_INET6,
    };
    deny(Denied {
        hook: Hook::Egress,
        reason,
        // SAFETY: valid skb context.
        cgroup_id: unsafe { bpf_skb_cgroup_id(ctx.skb.skb) },
        family,
        protocol: proto as u16,
        sock_type: 0,
        dst_addr: dest.addr16(),
        dst_port_be: dest.port_be(),
    });
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
