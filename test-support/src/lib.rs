//! What agent-sidecar's unit tests, integration tests and benchmarks share,
//! written once:
//!
//! - [`ca`]: a throw-away certificate authority and the leaf certificates it
//!   signs (rcgen), as PEM, DER, files and rustls configurations;
//! - [`dns`]: an authoritative DNS server for test zones (real UDP and TCP
//!   DNS messages, hickory-proto), on loopback or inside a network namespace;
//! - [`fixtures`]: the named tier-policy fixtures of
//!   `test-support/fixtures/policies/` and their loader;
//! - [`netns`]: network namespaces and commands or threads inside them;
//! - [`web`] and [`mcp`]: the Python web and MCP servers (and the MCP client)
//!   the end-to-end tests run inside a namespace;
//! - [`connect_proxy`]: an HTTP `CONNECT` proxy that records what it
//!   tunnelled;
//! - [`upstream`], [`tool_api`] and [`webhook`]: in-process loopback HTTP(S)
//!   servers (a counting upstream, a recording tool API, a webhook receiver),
//!   and [`curl`] as their client;
//! - [`bench`]: what the benchmarks' reports share (statistics, scheduler
//!   clocks, a reference nginx);
//! - [`rsyslog`]: a real syslog collector (Debian's rsyslogd) with TLS, TCP
//!   and UDP inputs on loopback;
//! - [`temp`]: temporary directories removed on drop;
//! - [`log_capture`]: the test process's log lines, captured for the fault
//!   tests to assert;
//! - `sidecar` (feature `sidecar`): agent-sidecar's proxy listeners and tool
//!   gateway wired the way `run` wires them, for the integration tests and
//!   benchmarks.
//!
//! Everything but `sidecar` is independent of agent-sidecar: it deals in
//! certificates, YAML text, sockets and processes. That is what lets the
//! library's own unit tests use it: a unit test is compiled inside the
//! library, so an `agent_sidecar` type reached through this crate would be
//! another copy's, and would not match the library's own. `sidecar` does
//! depend on agent-sidecar; agent-sidecar's dev-dependency turns it on for
//! its integration tests and benchmarks (cargo has no dev-dependencies per
//! target, so the unit-test binary links that second copy too), and no unit
//! test may use it.
#![deny(clippy::mod_module_files)]

pub mod bench;
pub mod ca;
pub mod connect_proxy;
pub mod curl;
pub mod dns;
pub mod fixtures;
pub mod log_capture;
pub mod mcp;
pub mod netns;
pub mod redis;
pub mod rsyslog;
#[cfg(feature = "sidecar")]
pub mod sidecar;
pub mod temp;
pub mod tool_api;
pub mod upstream;
pub mod web;
pub mod webhook;

pub use fixtures::fixture;
