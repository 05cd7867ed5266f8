//! MCP fixtures on the official MCP Python SDK (`mcp` 2.x, pinned in
//! `tests/python/requirements.txt`, installed into `.tools/venv` by
//! `cargo xtask setup`):
//!
//! - [`McpServer`]: `tests/python/mcp_server.py`, a CRM-like MCP server over
//!   Streamable HTTP with TLS, run inside a network namespace. Every tool call
//!   is logged with the `Authorization` and `traceparent` headers it came with.
//! - [`mcp_client_args`] / [`parse_client_output`]: `tests/python/mcp_client.py`,
//!   the SDK's Streamable HTTP client (initialize, tools/list, one optional
//!   tools/call), which prints one JSON object ([`McpClientResult`]).
//!
//! Tests that use them fail (never skip) when the venv is missing.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde::Deserialize;
use serde_json::Value;

use crate::netns::{NetNs, command_in, unique};

/// Environment variable with the venv's python (`cargo xtask test` sets it).
pub const PYTHON_ENV: &str = "AGENT_SIDECAR_TEST_PYTHON";

/// How long a server gets to print its readiness line (the SDK's imports are slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `--timeout` (seconds) [`mcp_client_args`] passes; a later `--timeout`
/// argument overrides it.
pub const CLIENT_TIMEOUT_SECS: u32 = 20;

/// The workspace root (parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The python of the fixtures' venv: `$AGENT_SIDECAR_TEST_PYTHON`, else
/// `<repo>/.tools/venv/bin/python`. Panics (test failure) when it is missing.
pub fn test_python() -> PathBuf {
    let python = std::env::var_os(PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: the MCP fixtures need the Python venv with the MCP SDK; \
         run `cargo xtask setup` (as root) to create it",
        python.display()
    );
    python
}

/// Environment variable with the directory of the Python scripts the tests
/// run (`cargo xtask test` sets it to a copy the agent's uid can reach when
/// the checkout is not).
pub const SCRIPTS_ENV: &str = "AGENT_SIDECAR_TEST_SCRIPTS";

/// A script of `tests/python/` (or of `$AGENT_SIDECAR_TEST_SCRIPTS`).
pub fn python_script(name: &str) -> PathBuf {
    std::env::var_os(SCRIPTS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/python"))
        .join(name)
}

/// The MCP test server in a namespace; killed when dropped.
pub struct McpServer {
    child: Child,
    log: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `https://ADDR/mcp` (by address; certificates for tests name the IP too).
    pub url: String,
}

impl McpServer {
    /// Starts `mcp_server.py` on `addr` (`IP:PORT`) inside `ns`, with TLS from
    /// `cert`/`key` (see [`crate::ca::TestCa::issue`]), answering with SSE
    /// streams or, when `json_response`, plain JSON. Returns once it listens.
    pub fn start(ns: &NetNs, addr: &str, cert: &Path, key: &Path, json_response: bool) -> Self {
        let python = test_python();
        let sock: SocketAddr = addr.parse().expect("server addr");
        let log = std::env::temp_dir().join(unique("mcp-calls"));
        std::fs::write(&log, "").expect("mcp log file");
        let script = python_script("mcp_server.py");
        let (ip, port) = (sock.ip().to_string(), sock.port().to_string());
        let mut args = vec![
            script.to_str().expect("utf-8 path"),
            "--host",
            &ip,
            "--port",
            &port,
            "--cert",
            cert.to_str().expect("utf-8 path"),
            "--key",
            key.to_str().expect("utf-8 path"),
            "--log",
            log.to_str().expect("utf-8 path"),
        ];
        if json_response {
            args.push("--json-response");
        }
        let mut child = command_in(ns, None, &python, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        // A thread reads stdout for good: it reports the readiness line, then
        // keeps draining so the server never writes to a closed pipe.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ready") {
                    let _ = tx.send(());
                }
            }
        });
        if let Err(e) = rx.recv_timeout(START_TIMEOUT) {
            let _ = child.kill();
            let status = child.wait();
            panic!("MCP server on {addr} did not become ready ({e:?}); exit: {status:?}");
        }
        let url = format!("https://{sock}/mcp");
        McpServer {
            child,
            log,
            addr: sock,
            url,
        }
    }

    /// The tool calls served so far, one JSON object each:
    /// `{"tool", "arguments", "authorization", "traceparent"}`.
    pub fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("call log line {l:?}: {e}")))
            .collect()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The arguments to run `mcp_client.py` with [`test_python`]: the script,
/// `--url`, `--timeout` ([`CLIENT_TIMEOUT_SECS`]), one `--header NAME=VALUE`
/// per header, and `--call`/`--args` when `call` is given (`args` defaults to
/// `{}`). TLS trust comes from `SSL_CERT_FILE`, proxies from `HTTPS_PROXY`,
/// both in the client's environment.
pub fn mcp_client_args(
    url: &str,
    call: Option<&str>,
    args: Option<&Value>,
    headers: &[(&str, &str)],
) -> Vec<String> {
    let mut out = vec![
        python_script("mcp_client.py").display().to_string(),
        "--url".into(),
        url.into(),
        "--timeout".into(),
        CLIENT_TIMEOUT_SECS.to_string(),
    ];
    for (name, value) in headers {
        out.push("--header".into());
        out.push(format!("{name}={value}"));
    }
    if let Some(tool) = call {
        out.push("--call".into());
        out.push(tool.into());
        out.push("--args".into());
        out.push(args.map_or_else(|| "{}".into(), Value::to_string));
    }
    out
}

/// What `mcp_client.py` printed.
#[derive(Debug, Clone, Deserialize)]
pub struct McpClientResult {
    /// Names from tools/list.
    pub tools: Vec<String>,
    /// The negotiated protocol version.
    #[serde(default)]
    pub protocol_version: Option<String>,
    /// The tools/call outcome, when a call was asked for.
    pub call: Option<McpCallResult>,
}

/// The outcome of the client's tools/call.
#[derive(Debug, Clone, Deserialize)]
pub struct McpCallResult {
    /// A result that is not an error result.
    pub ok: bool,
    /// The result's content blocks (JSON), absent after a JSON-RPC error.
    pub content: Option<Value>,
    /// The result's structured content, if any.
    #[serde(default)]
    pub structured: Option<Value>,
    /// The result was a tool error result (`isError: true`).
    pub is_error: bool,
    /// The JSON-RPC error that answered the call instead of a result.
    pub error: Option<McpRpcError>,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Deserialize)]
pub struct McpRpcError {
    /// The error code (e.g. -32001).
    pub code: Option<i64>,
    /// The error message.
    pub message: String,
    /// The error's data, if any.
    #[serde(default)]
    pub data: Option<Value>,
}

/// Parses the client's stdout (its last non-empty line); panics with the
/// output when it is not a [`McpClientResult`].
pub fn parse_client_output(stdout: &str) -> McpClientResult {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("mcp_client.py printed nothing"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("mcp_client.py output is not a result ({e}): {stdout}"))
}
