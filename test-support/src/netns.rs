//! Network namespaces for the tests that run servers and clients on
//! addresses of their own (`ip netns`), and the ways into one: a thread
//! ([`in_ns`]) whose sockets live there, or a command ([`command_in`]) that
//! joins it, and optionally a cgroup, before it runs.

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique short name for this test's resources: `prefix-PID-N`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with `lo` up and the test addresses on it:
/// 127.0.0.1, 10.77.0.1, 10.77.0.2, ::1, fd77::1, fd77::2. Deleted when
/// dropped. Making one needs root.
pub struct NetNs {
    /// Its name (`ip netns` list).
    pub name: String,
    file: File,
}

impl NetNs {
    /// Creates the namespace.
    pub fn new() -> Self {
        let name = unique("ast");
        sh("ip", &["netns", "add", &name]);
        sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        for a in ["10.77.0.1/32", "10.77.0.2/32"] {
            sh("ip", &["-n", &name, "addr", "add", a, "dev", "lo"]);
        }
        for a in ["fd77::1/128", "fd77::2/128"] {
            sh(
                "ip",
                &["-n", &name, "-6", "addr", "add", a, "dev", "lo", "nodad"],
            );
        }
        let file = File::open(format!("/run/netns/{name}")).expect("open netns");
        NetNs { name, file }
    }

    /// The namespace's file descriptor (for `setns`).
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Adds `cidr` (e.g. `198.51.100.1/32`) to the namespace's loopback.
    pub fn add_address(&self, cidr: &str) {
        sh("ip", &["-n", &self.name, "addr", "add", cidr, "dev", "lo"]);
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &self.name,
                "sysctl",
                "-qw",
                &format!("{key}={value}"),
            ],
        );
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a fresh thread inside `ns` (sockets it creates live there).
pub fn in_ns<T: Send + 'static>(ns: &NetNs, f: impl FnOnce() -> T + Send + 'static) -> T {
    let fd = nix::unistd::dup(&ns.file).expect("dup netns fd");
    std::thread::spawn(move || {
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// A command prepared to run inside `ns`, and inside a cgroup when
/// `cgroup_procs` (its open `cgroup.procs`) is given; both are joined
/// before exec.
pub fn command_in(
    ns: &NetNs,
    cgroup_procs: Option<&File>,
    program: &Path,
    args: &[&str],
) -> Command {
    let netns = ns.raw_fd();
    let procs = cgroup_procs.map(|f| f.as_raw_fd());
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: only async-signal-safe syscalls on copied values.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = procs
                && libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}
