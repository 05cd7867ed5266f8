//! Host-name patterns for name-based egress: `api.example.com` (exact),
//! `*.example.com` (exactly one extra label) and `**.example.com` (one or
//! more extra labels).
//!
//! Names are stored in their ASCII form: lowercase, no trailing dot,
//! internationalised labels as punycode (`bücher` is `xn--bcher-kva`), so
//! `api.bücher.example`, `API.xn--bcher-kva.example.` and
//! `api.xn--bcher-kva.example` are one name. Patterns broader than a
//! registrable domain (`*`, `**`, `*.com`, `**.co.uk`, `*.github.io`) are
//! refused unless forced ([`Breadth::Forced`]): the public suffix list (the
//! `psl` crate, ICANN and private sections) decides what "public suffix"
//! means.

mod allowlist;
mod pattern;
mod rule;

pub use allowlist::NameAllowlist;
pub use pattern::{Breadth, NameError, NameErrorKind, NamePattern, PatternKind, canonical_name};
pub use rule::{Endpoint, NameRule};

#[cfg(test)]
mod tests;
