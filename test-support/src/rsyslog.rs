//! A real syslog collector for the tests: Debian's rsyslogd (packages
//! `rsyslog` and `rsyslog-gnutls`, installed by `cargo xtask setup`), with a
//! configuration of its own on loopback: a TLS input (RFC 5425, GnuTLS,
//! certificate from the test CA), a plain TCP input and a UDP input, each
//! message written to a file as rsyslog parsed it. Killed when dropped.

use std::{
    net::{TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{ca::TestCa, temp::TempDir};

/// Debian's rsyslogd.
pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// One message as rsyslog parsed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// `tls`, `tcp` or `udp`: the input that took it.
    pub input: String,
    /// PRI.
    pub pri: u32,
    /// TIMESTAMP, as rsyslog re-wrote it (RFC 3339).
    pub timestamp: String,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: String,
    /// MSGID.
    pub msgid: String,
    /// STRUCTURED-DATA.
    pub structured_data: String,
    /// MSG.
    pub msg: String,
}

/// A running rsyslogd.
pub struct Rsyslog {
    child: Child,
    dir: TempDir,
    /// Port of the TLS input (127.0.0.1).
    pub tls_port: u16,
    /// Port of the plain TCP input.
    pub tcp_port: u16,
    /// Port of the UDP input.
    pub udp_port: u16,
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

impl Rsyslog {
    /// Starts rsyslogd with a server certificate of `ca` for `localhost`
    /// and 127.0.0.1; the TLS input listens on `tls_port` (0: any free).
    /// Panics (a test failure) when rsyslogd is missing or does not start.
    pub fn start(ca: &TestCa, tls_port: u16) -> Self {
        assert!(
            Path::new(RSYSLOGD).exists(),
            "{RSYSLOGD} is missing: the syslog tests need Debian's rsyslog and rsyslog-gnutls; run `cargo xtask setup` (as root)"
        );
        let dir = TempDir::new();
        let (cert, key) = ca.issue("rsyslog", &["localhost", "127.0.0.1"]);
        let tls_port = if tls_port == 0 {
            free_tcp_port()
        } else {
            tls_port
        };
        let (tcp_port, udp_port) = (free_tcp_port(), free_udp_port());
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let out = dir.path().join("received.log");
        let conf = format!(
            r#"global(workDirectory="{work}"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}"
  maxMessageSize="64k")
module(load="imtcp" MaxSessions="64")
module(load="imudp")
input(type="imtcp" port="{tls_port}" address="127.0.0.1" name="tls" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{tcp_port}" address="127.0.0.1" name="tcp")
input(type="imudp" port="{udp_port}" address="127.0.0.1" name="udp")
template(name="fields" type="string" string="%inputname%|%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
if $inputname == "tls" or $inputname == "tcp" or $inputname == "udp" then {{
  action(type="omfile" file="{out}" template="fields")
}}
"#,
            work = work.display(),
            ca = ca.ca_file().display(),
            cert = cert.display(),
            key = key.display(),
            out = out.display(),
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("write rsyslog.conf");
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("rsyslogd.err")).expect("log"))
            .spawn()
            .expect("start rsyslogd");
        let r = Rsyslog {
            child,
            dir,
            tls_port,
            tcp_port,
            udp_port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while [tls_port, tcp_port]
            .iter()
            .any(|p| TcpStream::connect(("127.0.0.1", *p)).is_err())
        {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen within 10 s: {}",
                std::fs::read_to_string(r.dir.path().join("rsyslogd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// The file of received messages.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("received.log")
    }

    /// The messages received so far, as rsyslog parsed them.
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(9, '|').collect();
                (f.len() == 9).then(|| Received {
                    input: f[0].into(),
                    pri: f[1].parse().unwrap_or(u32::MAX),
                    timestamp: f[2].into(),
                    hostname: f[3].into(),
                    app_name: f[4].into(),
                    procid: f[5].into(),
                    msgid: f[6].into(),
                    structured_data: f[7].into(),
                    msg: f[8].into(),
                })
            })
            .collect()
    }

    /// Waits until `n` messages were received (at most `timeout`).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
