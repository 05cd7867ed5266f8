//! Hardening of the agent-facing HTTP server: bounded headers, bodies and
//! waits, and refusal of ambiguous request framing (request smuggling).
//!
//! [`server_builder`] configures hyper with [`GatewayLimits`], each
//! connection is served through [`FirstByteTimeout`] and by
//! [`serve_until_idle`], which closes it once idle; each request
//! then goes through [`check_framing`] and its body through
//! [`collect_limited`]. A refusal should be answered with
//! `Connection: close`, so no byte after a doubtful request is ever read as
//! another request.

mod body;
mod bounds;
mod first_byte;
mod framing;
mod idle;
mod server;
#[cfg(test)]
mod socket_tests;

pub use body::{BodyError, collect_limited};
pub use bounds::GatewayLimits;
pub use first_byte::FirstByteTimeout;
pub use framing::{FramingError, check_framing};
pub use idle::serve_until_idle;
pub use server::server_builder;
