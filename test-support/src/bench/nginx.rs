//! An nginx (Debian package `nginx`) started by a benchmark as a reference
//! point, from a configuration the benchmark generates: foreground master,
//! one worker, everything under the benchmark's temp dir.

use std::{
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// Where Debian's `libnginx-mod-stream` puts the stream module
/// (`ssl_preread` included).
pub const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// The nginx binary, or an error telling how to install it.
pub fn binary() -> Result<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context(
            "nginx is not installed; this benchmark compares against it: run \
             `cargo xtask setup` (it installs the Debian packages nginx and \
             libnginx-mod-stream)",
        )
}

/// The stream module, or an error telling how to install it.
pub fn stream_module() -> Result<&'static Path> {
    let module = Path::new(STREAM_MODULE);
    if module.exists() {
        Ok(module)
    } else {
        bail!(
            "{STREAM_MODULE} is missing: run `cargo xtask setup` (it installs the Debian \
             package libnginx-mod-stream)"
        )
    }
}

/// A running nginx; stopped (master and worker) on drop.
pub struct NginxProcess {
    /// `nginx -v`, without its prefix.
    pub version: String,
    /// The single worker's pid (its CPU clock can be measured).
    pub worker: u32,
    child: Child,
}

impl NginxProcess {
    /// Writes `config` to `dir/nginx.conf`, starts nginx on it with `dir` as
    /// its prefix and error log `dir/error.log`, and waits until its worker
    /// exists and `probe` accepts TCP connections. The configuration must
    /// set `worker_processes 1`.
    pub fn start(dir: &Path, config: &str, probe: SocketAddr) -> Result<Self> {
        let binary = binary()?;
        let version = Command::new(&binary)
            .arg("-v")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stderr).ok())
            .map(|s| s.trim().trim_start_matches("nginx version: ").to_owned())
            .unwrap_or_default();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let log = dir.join("error.log");
        let mut command = Command::new(&binary);
        command
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // If the benchmark dies without dropping this, nginx still goes.
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command.spawn().context("start nginx")?;
        let mut nginx = Self {
            version,
            worker: 0,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(worker) = child_of(nginx.child.id())
                && std::net::TcpStream::connect(probe).is_ok()
            {
                nginx.worker = worker;
                return Ok(nginx);
            }
            if Instant::now() > deadline || nginx.child.try_wait()?.is_some() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("nginx did not start listening on {probe}: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NginxProcess {
    fn drop(&mut self) {
        // SIGKILL to the master only would orphan the worker: ask for a
        // fast shutdown (SIGTERM), then make sure.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.worker != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.worker as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process of `parent` (nginx's single worker).
fn child_of(parent: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may contain spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}
