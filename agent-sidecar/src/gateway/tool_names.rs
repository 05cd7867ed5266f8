//! MCP tool names the policy can match exactly. A `tools/call` whose name
//! carries control or format characters, surrounding whitespace, anything
//! outside the MCP naming alphabet (ASCII letters, digits, `_`, `-`, `.`;
//! 1 to 128 of them), or that differs from a declared tool of the server
//! only by letter case, is refused before it is decided: otherwise it would
//! fall to `defaults.unknown` and become an approval whose name looks like a
//! tool the policy denies (`delete_customer ` next to `delete_customer`).

use hyper::StatusCode;

use super::{binding::escaped, refusal::Refusal};
use crate::policy::CompiledPolicySet;

/// Longest tool name accepted.
pub(crate) const MAX_TOOL_NAME: usize = 128;

/// `None` if `name` may be decided as a tool of `server`; otherwise the
/// refusal, naming the exact bytes (escaped) and what to send instead.
pub(crate) fn refusal(policy: &CompiledPolicySet, server: &str, name: &str) -> Option<Refusal> {
    let shown = escaped(name.as_bytes());
    let valid = !name.is_empty()
        && name.len() <= MAX_TOOL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    let declared = policy.declared_mcp_tools(server);
    let lookalike = declared.iter().find(|d| {
        **d != name && (d.eq_ignore_ascii_case(name) || d.eq_ignore_ascii_case(name.trim()))
    });
    if let Some(d) = lookalike {
        tracing::warn!(server, name = %shown, declared = %d, "tool name refused: a look-alike of a declared tool");
        return Some(Refusal::new(
            StatusCode::BAD_REQUEST,
            "confusable_tool_name",
            format!(
                "tool name \"{shown}\" differs from the declared tool `{d}` of server `{server}` only by letter case or whitespace; tool names are matched exactly: call `{d}`"
            ),
        ));
    }
    if !valid {
        tracing::warn!(server, name = %shown, "tool name refused: not a plain tool name");
        return Some(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_tool_name",
            format!(
                "tool name \"{shown}\" ({} bytes) is not a plain tool name: use 1 to {MAX_TOOL_NAME} ASCII letters, digits, `_`, `-` or `.`, without spaces, control or look-alike characters",
                name.len()
            ),
        ));
    }
    None
}
