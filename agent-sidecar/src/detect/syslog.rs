//! [`SyslogAlerts`]: alerts as RFC 5424 syslog messages (the OCSF finding
//! as the message, the alert's id, agent, detector and severity as
//! structured data) over UDP (RFC 5426), TCP (RFC 6587) or TLS (RFC 5425),
//! both with octet-counting framing. Each message is first written to a
//! queue directory on disk, then sent, then removed: a collector that is
//! down gets the messages when it is back (also after a restart of the
//! sidecar), with an exponential backoff between attempts. Sent, failed
//! and dropped messages are counted ([`SyslogCounters`]).

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rustls::pki_types::ServerName;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, UdpSocket},
    sync::mpsc,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{
    alert::{Activity, Alert},
    engine::{AlertSink, DetectionMetrics},
    ocsf::{detection_finding, severity_name},
};

/// The private enterprise number RFC 5612 reserves for documentation,
/// naming the structured data element (`alert@32473`).
const SD_ID: &str = "alert@32473";
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Messages held in memory between an alert and the queue's writer.
const CHANNEL: usize = 1024;

/// How messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogTransport {
    /// One datagram per message (RFC 5426).
    Udp,
    /// A TCP stream with octet-counting framing (RFC 6587).
    Tcp,
    /// TLS with octet-counting framing (RFC 5425).
    Tls,
}

/// A collector: `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogTarget {
    /// How.
    pub transport: SyslogTransport,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl FromStr for SyslogTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a syslog collector: write udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT (e.g. tls://siem.example:6514)"
            )
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let transport = match scheme {
            "udp" => SyslogTransport::Udp,
            "tcp" => SyslogTransport::Tcp,
            "tls" => SyslogTransport::Tls,
            _ => return Err(bad()),
        };
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(SyslogTarget {
            transport,
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls => "tls",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// How a [`SyslogAlerts`] delivers.
#[derive(Clone)]
pub struct SyslogConfig {
    /// The collector.
    pub target: SyslogTarget,
    /// How a `tls://` collector is verified (its name is the target's host).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The queue directory (created, mode 0700).
    pub queue_dir: PathBuf,
    /// Most messages the queue holds; past it, new ones are dropped
    /// (counted).
    pub max_queued: usize,
    /// Syslog facility (default 13, log audit).
    pub facility: u8,
    /// The HOSTNAME field (default: the kernel's host name).
    pub hostname: String,
    /// Wait after the first failed attempt; doubles up to 30 s.
    pub initial_backoff: Duration,
    /// Timeout of a connect and of a write.
    pub timeout: Duration,
    /// Where sent, failed and dropped messages are also counted, with the
    /// agent they belong to.
    pub metrics: Option<(Arc<dyn DetectionMetrics>, String)>,
}

impl SyslogConfig {
    /// Defaults for `target`, queued under `queue_dir`.
    pub fn new(target: SyslogTarget, queue_dir: impl Into<PathBuf>) -> Self {
        SyslogConfig {
            target,
            tls: None,
            queue_dir: queue_dir.into(),
            max_queued: 10_000,
            facility: 13,
            hostname: local_hostname(),
            initial_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            metrics: None,
        }
    }
}

fn local_hostname() -> String {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = h
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() { "-".into() } else { h }
}

/// What a [`SyslogAlerts`] did.
#[derive(Debug, Default)]
pub struct SyslogCounters {
    /// Messages the collector took.
    pub sent: AtomicU64,
    /// Attempts that failed (each is retried).
    pub failed_attempts: AtomicU64,
    /// Messages dropped (queue full, or not writable to disk).
    pub dropped: AtomicU64,
}

impl SyslogCounters {
    fn count(&self, outcome: &str, metrics: &Option<(Arc<dyn DetectionMetrics>, String)>) {
        let c = match outcome {
            "sent" => &self.sent,
            "failed" => &self.failed_attempts,
            _ => &self.dropped,
        };
        c.fetch_add(1, Ordering::Relaxed);
        if let Some((m, agent)) = metrics {
            m.alert_delivery(agent, "syslog", outcome);
        }
    }
}

/// Why syslog delivery cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// The queue directory cannot be made.
    #[error("syslog queue directory {path}: {source}; give a writable directory")]
    Queue {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A `tls://` collector without a TLS configuration.
    #[error("{0} needs a TLS client configuration (trust anchors) to verify the collector")]
    NoTls(SyslogTarget),
}

/// Delivers alerts to one syslog collector. Cheap to clone.
#[derive(Clone)]
pub struct SyslogAlerts {
    tx: mpsc::Sender<Vec<u8>>,
    counters: Arc<SyslogCounters>,
    metrics: Option<(Arc<dyn DetectionMetrics>, String)>,
    facility: u8,
    hostname: Arc<str>,
}

impl SyslogAlerts {
    /// Creates the queue and starts the delivery task (needs a tokio
    /// runtime); messages left in the queue by an earlier run go first.
    pub fn spawn(config: SyslogConfig) -> Result<Self, SyslogError> {
        if config.target.transport == SyslogTransport::Tls && config.tls.is_none() {
            return Err(SyslogError::NoTls(config.target));
        }
        make_dir(&config.queue_dir).map_err(|source| SyslogError::Queue {
            path: config.queue_dir.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let counters = Arc::new(SyslogCounters::default());
        let this = SyslogAlerts {
            tx,
            counters: counters.clone(),
            metrics: config.metrics.clone(),
            facility: config.facility,
            hostname: config.hostname.clone().into(),
        };
        tokio::spawn(deliver(config, rx, counters));
        Ok(this)
    }

    /// What it did so far.
    pub fn counters(&self) -> &SyslogCounters {
        &self.counters
    }
}

impl AlertSink for SyslogAlerts {
    fn deliver(&self, alert: &Alert, activity: Activity) {
        let msg = rfc5424(alert, activity, self.facility, &self.hostname);
        if self.tx.try_send(msg).is_err() {
            self.counters.count("dropped", &self.metrics);
            tracing::error!(target: "agent_sidecar::detect", alert = %alert.id, "syslog queue full or closed: alert dropped for this collector");
        }
    }
}

/// OCSF severity_id to syslog severity: critical 2, high 3 (error),
/// medium 4 (warning), low 5 (notice), informational 6.
pub fn syslog_severity(ocsf: u8) -> u8 {
    match ocsf {
        5.. => 2,
        4 => 3,
        3 => 4,
        2 => 5,
        _ => 6,
    }
}

fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One RFC 5424 message: header, structured data, and the OCSF finding
/// (one line of JSON) as the message.
pub fn rfc5424(alert: &Alert, activity: Activity, facility: u8, hostname: &str) -> Vec<u8> {
    let pri = u32::from(facility.min(23)) * 8 + u32::from(syslog_severity(alert.severity));
    let ts = OffsetDateTime::from_unix_timestamp_nanos(i128::from(alert.last_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into());
    let activity_name = match activity {
        Activity::Create => "create",
        Activity::Update => "update",
    };
    let finding = detection_finding(alert, activity);
    format!(
        "<{pri}>1 {ts} {hostname} agent-sidecar {pid} detection [{SD_ID} id=\"{id}\" agent=\"{agent}\" detector=\"{det}\" activity=\"{activity_name}\" count=\"{count}\" severity=\"{sev}\"] {finding}",
        pid = std::process::id(),
        id = sd_escape(&alert.id),
        agent = sd_escape(&alert.agent_id),
        det = alert.detector,
        count = alert.count,
        sev = severity_name(alert.severity),
    )
    .into_bytes()
}

fn make_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The queued messages, oldest first (names are zero-padded sequence
/// numbers).
fn queued(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "msg"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn enqueue(dir: &Path, seq: u64, msg: &[u8]) -> io::Result<()> {
    let path = dir.join(format!("{seq:020}.msg"));
    let tmp = dir.join(format!(".{seq:020}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    io::Write::write_all(&mut f, msg)?;
    f.sync_all()?;
    fs::rename(&tmp, &path)
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

async fn connect(config: &SyslogConfig) -> io::Result<Conn> {
    let t = &config.target;
    let addr = (t.host.as_str(), t.port);
    let timeout = |e| io::Error::new(io::ErrorKind::TimedOut, e);
    Ok(match t.transport {
        SyslogTransport::Udp => {
            let peer = tokio::net::lookup_host(addr)
                .await?
                .next()
                .ok_or_else(|| io::Error::other("the collector's name has no address"))?;
            let local: std::net::SocketAddr = if peer.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(local).await?;
            s.connect(peer).await?;
            Conn::Udp(s)
        }
        SyslogTransport::Tcp => Conn::Tcp(
            tokio::time::timeout(config.timeout, TcpStream::connect(addr))
                .await
                .map_err(timeout)??,
        ),
        SyslogTransport::Tls => {
            let tls = config
                .tls
                .clone()
                .ok_or_else(|| io::Error::other("no TLS configuration"))?;
            let name = ServerName::try_from(t.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tcp = tokio::time::timeout(config.timeout, TcpStream::connect(addr))
                .await
                .map_err(timeout)??;
            let tls =
                tokio::time::timeout(config.timeout, TlsConnector::from(tls).connect(name, tcp))
                    .await
                    .map_err(timeout)??;
            Conn::Tls(Box::new(tls))
        }
    })
}

async fn send(conn: &mut Conn, msg: &[u8], timeout: Duration) -> io::Result<()> {
    let framed = |msg: &[u8]| {
        let mut v = format!("{} ", msg.len()).into_bytes();
        v.extend_from_slice(msg);
        v
    };
    let write = async {
        match conn {
            Conn::Udp(s) => s.send(msg).await.map(|_| ()),
            Conn::Tcp(s) => {
                s.write_all(&framed(msg)).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(&framed(msg)).await?;
                s.flush().await
            }
        }
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, e))?
}

/// The delivery task: writes each new message to the queue, sends the
/// queue oldest first, removes what was sent; on a failure, backs off and
/// reconnects. Ends when every sender is dropped and the queue is empty
/// or the collector is unreachable.
async fn deliver(
    config: SyslogConfig,
    mut rx: mpsc::Receiver<Vec<u8>>,
    counters: Arc<SyslogCounters>,
) {
    let dir = config.queue_dir.clone();
    let mut pending = queued(&dir);
    let mut seq = pending
        .last()
        .and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
        .map_or(0, |n| n + 1);
    let mut conn: Option<Conn> = None;
    let mut backoff = config.initial_backoff;
    let mut open = true;
    loop {
        // Take in what arrived.
        while let Ok(msg) = rx.try_recv() {
            store(&dir, &mut seq, &msg, &mut pending, &config, &counters);
        }
        let Some(next) = pending.first().cloned() else {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(msg) => store(&dir, &mut seq, &msg, &mut pending, &config, &counters),
                None => open = false,
            }
            continue;
        };
        let msg = match fs::read(&next) {
            Ok(m) => m,
            Err(e) => {
                counters.count("dropped", &config.metrics);
                tracing::error!(target: "agent_sidecar::detect", file = %next.display(), error = %e, "queued syslog message unreadable; dropped");
                let _ = fs::remove_file(&next);
                pending.remove(0);
                continue;
            }
        };
        let result = match conn.as_mut() {
            Some(c) => send(c, &msg, config.timeout).await,
            None => match connect(&config).await {
                Ok(mut c) => {
                    let r = send(&mut c, &msg, config.timeout).await;
                    conn = Some(c);
                    r
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => {
                counters.count("sent", &config.metrics);
                let _ = fs::remove_file(&next);
                pending.remove(0);
                backoff = config.initial_backoff;
            }
            Err(e) => {
                conn = None;
                counters.count("failed", &config.metrics);
                tracing::warn!(target: "agent_sidecar::detect", collector = %config.target, error = %e, queued = pending.len(), retry_in = ?backoff, "syslog delivery failed; the queue keeps the alerts");
                if !open {
                    return;
                }
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        m = rx.recv() => match m {
                            Some(msg) => store(&dir, &mut seq, &msg, &mut pending, &config, &counters),
                            None => { open = false; break; }
                        },
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn store(
    dir: &Path,
    seq: &mut u64,
    msg: &[u8],
    pending: &mut Vec<PathBuf>,
    config: &SyslogConfig,
    counters: &SyslogCounters,
) {
    if pending.len() >= config.max_queued {
        counters.count("dropped", &config.metrics);
        tracing::error!(target: "agent_sidecar::detect", collector = %config.target, queued = pending.len(), "syslog queue full: alert dropped");
        return;
    }
    match enqueue(dir, *seq, msg) {
        Ok(()) => {
            pending.push(dir.join(format!("{:020}.msg", *seq)));
            *seq += 1;
        }
        Err(e) => {
            counters.count("dropped", &config.metrics);
            tracing::error!(target: "agent_sidecar::detect", dir = %dir.display(), error = %e, "cannot queue a syslog message on disk: alert dropped");
        }
    }
}
