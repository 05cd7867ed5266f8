//! Web servers for the end-to-end tests: real HTTP/HTTPS servers (Python's
//! `http.server` and `ssl`) started inside a network namespace. Each server
//! answers every GET with its own label and logs the requests it served
//! (`HOST PATH`, plus ` authorization=VALUE` when the request had one), so
//! tests can tell which server a client actually reached and with which
//! credential.

use std::{
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Stdio},
    time::{Duration, Instant},
};

use crate::netns::{NetNs, command_in, unique};

const SERVER: &str = r#"
import http.server, ssl, sys
addr, port, label, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            auth = self.headers.get("Authorization")
            extra = f" authorization={auth}" if auth else ""
            f.write(f"{self.headers.get('Host')} {self.path}{extra}\n")
        body = (label + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
cls = http.server.ThreadingHTTPServer
if ":" in addr:
    class V6(http.server.ThreadingHTTPServer):
        import socket
        address_family = socket.AF_INET6
    cls = V6
srv = cls((addr, port), H)
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;

/// A Python HTTP(S) server in a namespace; killed when dropped.
pub struct WebServer {
    child: Child,
    /// Kept open: a closed pipe would kill the server at its next write.
    _stdout: ChildStdout,
    log: PathBuf,
    /// Label it answers with.
    pub label: String,
}

impl WebServer {
    /// Plain HTTP on `addr` (`IP:PORT`).
    pub fn http(ns: &NetNs, addr: &str, label: &str) -> Self {
        Self::start(ns, addr, label, None)
    }

    /// HTTPS on `addr` with `cert`/`key` (from [`crate::ca::TestCa::issue`]).
    pub fn https(ns: &NetNs, addr: &str, label: &str, cert: &Path, key: &Path) -> Self {
        Self::start(ns, addr, label, Some((cert, key)))
    }

    fn start(ns: &NetNs, addr: &str, label: &str, tls: Option<(&Path, &Path)>) -> Self {
        let sock: std::net::SocketAddr = addr.parse().expect("server addr");
        let log = std::env::temp_dir().join(unique("web-log"));
        std::fs::write(&log, "").expect("log file");
        let (ip, port) = (sock.ip().to_string(), sock.port().to_string());
        let mut args = vec![
            "-c",
            SERVER,
            ip.as_str(),
            port.as_str(),
            label,
            log.to_str().expect("utf-8 path"),
        ];
        if let Some((c, k)) = tls {
            args.push(c.to_str().expect("utf-8 path"));
            args.push(k.to_str().expect("utf-8 path"));
        }
        let mut child = command_in(ns, None, Path::new("python3"), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 web server");
        // Wait for "ready" so clients never race the bind.
        let mut out = child.stdout.take().expect("stdout");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("ready") {
            assert!(Instant::now() < deadline, "web server {addr} did not start");
            match std::io::Read::read(&mut out, &mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => panic!("web server {addr} exited before it was ready"),
            }
        }
        WebServer {
            child,
            _stdout: out,
            log,
            label: label.into(),
        }
    }

    /// The requests served, as `HOST PATH` lines.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
