//! What agent-sidecar's unit tests, integration tests and benchmarks share,
//! written once:
//!
//! - [`ca`]: a throw-away certificate authority and the leaf certificates it
//!   signs (rcgen), as PEM, DER, files and rustls configurations;
//! - [`dns`]: an authoritative DNS server for test zones (real UDP and TCP
//!   DNS messages, hickory-proto), on loopback or inside a network namespace;
//! - [`netns`]: network namespaces and commands or threads inside them;
//! - [`web`] and [`mcp`]: the Python web and MCP servers (and the MCP client)
//!   the end-to-end tests run inside a namespace;
//! - [`fixtures`]: the named tier-policy fixtures of
//!   `test-support/fixtures/policies/` and their loader;
//! - [`temp`]: temporary directories removed on drop.
//!
//! It is independent of agent-sidecar: it deals in certificates, YAML text,
//! sockets and processes. That is what lets the library's own unit tests use it: a
//! unit test is compiled inside the library, so an `agent_sidecar` type
//! reached through this crate would be another copy's, and would not match
//! the library's own.
#![deny(clippy::mod_module_files)]

pub mod ca;
pub mod dns;
pub mod fixtures;
pub mod mcp;
pub mod netns;
pub mod temp;
pub mod web;

pub use fixtures::fixture;
