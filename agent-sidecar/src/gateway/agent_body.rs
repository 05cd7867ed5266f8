//! The body type of every response the gateway sends the agent.

/// The body of responses to the agent.
pub type AgentBody = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;
