//! A tiny agent stand-in for the kernel tests: performs one network action
//! and reports the result as one JSON line on stdout.
//!
//! Exit codes: 0 = the action succeeded, 1 = refused with EPERM/EACCES,
//! 2 = failed otherwise, 3 = bad usage.
//!
//! ```text
//! egress-probe tcp ADDR                 connect() (v4 or v6 socket by ADDR)
//! egress-probe tcp-mapped IPV4:PORT     connect() from an AF_INET6 socket to ::ffff:IPV4
//! egress-probe tcp-hold ADDR FILE MSG  connect(), wait for FILE, send MSG (reports the send)
//! egress-probe udp-hold ADDR FILE MSG  connect() a UDP socket, wait for FILE, send MSG
//! egress-probe tfo ADDR                 sendto(MSG_FASTOPEN) on a TCP socket
//! egress-probe udp-send ADDR PAYLOAD    unconnected sendto()
//! egress-probe udp-connect ADDR PAYLOAD connect() then send()
//! egress-probe socket raw4|raw6|packet|icmp|sctp   socket() only
//! egress-probe chain DEPTH ARGS...      run `egress-probe ARGS...` as a descendant DEPTH levels down
//! egress-probe write FILE TEXT          write TEXT to FILE (cgroup escape attempts)
//! egress-probe open PATH                open PATH read-only
//! egress-probe wait-file PATH ARGS...   wait until PATH exists, then run ARGS
//! ```

use std::{
    io::{self, Write},
    mem::size_of,
    net::{IpAddr, SocketAddr},
    process::{Command, ExitCode},
    time::Duration,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["tcp", addr] => tcp(parse(addr), false),
        ["tcp-mapped", addr] => tcp(parse(addr), true),
        ["tfo", addr] => tfo(parse(addr)),
        ["tcp-hold", addr, file, msg] => tcp_hold(parse(addr), file, msg.as_bytes()),
        ["udp-hold", addr, file, msg] => udp_hold(parse(addr), file, msg.as_bytes()),
        ["udp-send", addr, payload] => udp(parse(addr), payload.as_bytes(), false),
        ["udp-connect", addr, payload] => udp(parse(addr), payload.as_bytes(), true),
        ["socket", kind] => socket_only(kind),
        ["chain", depth, rest @ ..] => return chain(depth.parse().expect("depth"), rest),
        ["write", file, text] => std::fs::write(file, text),
        ["open", path] => std::fs::File::open(path).map(drop),
        ["wait-file", path, rest @ ..] => {
            while !std::path::Path::new(path).exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            return chain(0, rest);
        }
        _ => {
            eprintln!("usage: see the module documentation of egress-probe");
            return ExitCode::from(3);
        }
    };
    report(result)
}

fn report(result: io::Result<()>) -> ExitCode {
    let (line, code) = match &result {
        Ok(()) => ("{\"ok\":true}".to_string(), 0),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            let code = if errno == libc::EPERM || errno == libc::EACCES {
                1
            } else {
                2
            };
            (
                format!(
                    "{{\"ok\":false,\"errno\":{errno},\"error\":{:?}}}",
                    e.to_string()
                ),
                code,
            )
        }
    };
    println!("{line}");
    let _ = io::stdout().flush();
    ExitCode::from(code)
}

fn parse(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("bad address {s}: {e}"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

struct Fd(libc::c_int);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<Fd> {
    // SAFETY: plain socket(2).
    check(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) }).map(Fd)
}

/// A sockaddr for `addr`; `mapped` turns an IPv4 address into `::ffff:a.b.c.d`.
fn sockaddr(
    addr: SocketAddr,
    mapped: bool,
) -> (libc::sockaddr_storage, libc::socklen_t, libc::c_int) {
    // SAFETY: zeroed sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let ip6 = match (addr.ip(), mapped) {
        (IpAddr::V4(v4), true) => Some(v4.to_ipv6_mapped()),
        (IpAddr::V6(v6), _) => Some(v6),
        (IpAddr::V4(_), false) => None,
    };
    match (ip6, addr.ip()) {
        (Some(v6), _) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: addr.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is large enough for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            (ss, size_of::<libc::sockaddr_in6>() as u32, libc::AF_INET6)
        }
        (None, IpAddr::V4(v4)) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: addr.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            (ss, size_of::<libc::sockaddr_in>() as u32, libc::AF_INET)
        }
        (None, IpAddr::V6(_)) => unreachable!(),
    }
}

fn tcp(addr: SocketAddr, mapped: bool) -> io::Result<()> {
    let (ss, len, family) = sockaddr(addr, mapped);
    let fd = socket(family, libc::SOCK_STREAM, 0)?;
    // SAFETY: valid fd and sockaddr.
    check(unsafe { libc::connect(fd.0, (&ss as *const libc::sockaddr_storage).cast(), len) })?;
    Ok(())
}

/// Connects, waits until `file` exists, then sends `msg` and closes.
fn tcp_hold(addr: SocketAddr, file: &str, msg: &[u8]) -> io::Result<()> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    while !std::path::Path::new(file).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let written = stream.write_all(msg);
    std::thread::sleep(Duration::from_millis(100));
    written
}

fn udp_hold(addr: SocketAddr, file: &str, msg: &[u8]) -> io::Result<()> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect(addr)?;
    while !std::path::Path::new(file).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    socket.send(msg).map(drop)
}

fn tfo(addr: SocketAddr) -> io::Result<()> {
    let (ss, len, family) = sockaddr(addr, false);
    let fd = socket(family, libc::SOCK_STREAM, 0)?;
    let data = b"tfo-payload";
    // SAFETY: valid fd, buffer and sockaddr.
    let rc = unsafe {
        libc::sendto(
            fd.0,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_FASTOPEN,
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    check(rc as libc::c_int)?;
    Ok(())
}

fn udp(addr: SocketAddr, payload: &[u8], connected: bool) -> io::Result<()> {
    let (ss, len, family) = sockaddr(addr, false);
    let fd = socket(family, libc::SOCK_DGRAM, 0)?;
    let ptr = (&ss as *const libc::sockaddr_storage).cast();
    // SAFETY: valid fd, buffer and sockaddr.
    unsafe {
        if connected {
            check(libc::connect(fd.0, ptr, len))?;
            check(libc::send(fd.0, payload.as_ptr().cast(), payload.len(), 0) as libc::c_int)?;
        } else {
            check(
                libc::sendto(fd.0, payload.as_ptr().cast(), payload.len(), 0, ptr, len)
                    as libc::c_int,
            )?;
        }
    }
    Ok(())
}

fn socket_only(kind: &str) -> io::Result<()> {
    let (d, t, p) = match kind {
        "raw4" => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        "raw6" => (libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
        "packet" => (
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        ),
        "icmp" => (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
        "sctp" => (libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP),
        "unix" => (libc::AF_UNIX, libc::SOCK_STREAM, 0),
        "netlink" => (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
        "vsock" => (libc::AF_VSOCK, libc::SOCK_STREAM, 0),
        other => panic!("unknown socket kind {other}"),
    };
    socket(d, t, p).map(drop)
}

fn chain(depth: u32, rest: &[&str]) -> ExitCode {
    if depth == 0 {
        let exe = std::env::current_exe().expect("current exe");
        let status = Command::new(exe).args(rest).status().expect("spawn probe");
        return ExitCode::from(status.code().unwrap_or(2) as u8);
    }
    let exe = std::env::current_exe().expect("current exe");
    let status = Command::new(exe)
        .arg("chain")
        .arg((depth - 1).to_string())
        .args(rest)
        .status()
        .expect("spawn child");
    ExitCode::from(status.code().unwrap_or(2) as u8)
}
