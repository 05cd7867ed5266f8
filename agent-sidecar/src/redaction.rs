//! Redaction of a tool call's input by policy: what the audit record, the
//! approvals journal, every webhook (approver, owner, SOC) and every log
//! line hold of the body (MCP: arguments), the query and the headers of a
//! call. The policy declares per field `keep`, `hash` or `drop` (a
//! [`FieldRedaction`](crate::policy::gateway::FieldRedaction) per action);
//! body fields it does not name and no attribute reads are dropped.
//! Hashes are keyed ([`RedactionKey`], HMAC-SHA256 with the deployment's
//! key): equal values correlate across calls without being readable. The
//! forwarded call itself is never changed.
//!
//! - [`key`]: the deployment's key, generated on first start;
//! - [`view`]: a request's body, query and headers as kept
//!   ([`InputView`]), with the list of what was redacted.

pub mod key;
pub mod view;

pub use key::{RedactionKey, RedactionKeyError};
pub use view::{InputView, Redacted, body_view, header_view, query_view};
