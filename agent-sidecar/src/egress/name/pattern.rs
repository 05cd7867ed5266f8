//! [`NamePattern`]: one host-name pattern (exact, `*.` or `**.`), parsed
//! into its canonical ASCII form, and the errors of parsing it.

use std::{borrow::Cow, fmt, net::IpAddr, str::FromStr};

/// Longest DNS name in presentation form without the trailing dot.
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// Whether a too-broad pattern is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breadth {
    /// Refuse `*`, `**` and wildcards over a public suffix (the default).
    Strict,
    /// Accept them: the policy entry says `force: true`.
    Forced,
}

/// Which names a pattern covers, relative to its base name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternKind {
    /// The base name itself.
    Exact,
    /// `*.base`: the base plus exactly one label.
    OneLabel,
    /// `**.base`: the base plus one or more labels.
    AnyDepth,
}

/// A host-name pattern. Parse it with [`NamePattern::parse`] or `str::parse`
/// (which is [`Breadth::Strict`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamePattern {
    kind: PatternKind,
    /// ASCII lowercase base name without trailing dot; empty for `*`/`**`.
    base: String,
}

/// What kind of mistake a [`NameError`] reports; decides the advice given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameErrorKind {
    /// The text is not a valid name, pattern or port.
    Invalid,
    /// The pattern is valid but covers more than a registrable domain.
    TooBroad,
}

impl NameErrorKind {
    fn how_to(self) -> &'static str {
        match self {
            NameErrorKind::Invalid => {
                "write HOST or HOST:PORT (e.g. api.example.com, api.example.com:443, \
                 *.example.com:443 for exactly one more label, **.example.com for any depth)"
            }
            NameErrorKind::TooBroad => {
                "name the domains you need (e.g. *.example.com), or force the pattern \
                 with `force: true` on the policy entry"
            }
        }
    }
}

/// A host name, pattern or `HOST[:PORT]` rule that could not be parsed, with
/// what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid egress name `{input}`: {problem}; {}", kind.how_to())]
pub struct NameError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub problem: String,
    /// Invalid or too broad.
    pub kind: NameErrorKind,
}

impl NamePattern {
    /// Parses a pattern: `name`, `*.name` or `**.name` (or `*` / `**`
    /// alone, which are always too broad), case-insensitive, with or without
    /// a trailing dot, Unicode or punycode.
    pub fn parse(input: &str, breadth: Breadth) -> Result<Self, NameError> {
        let error = |problem: String, kind| NameError {
            input: input.to_string(),
            problem,
            kind,
        };
        let invalid = |problem: String| error(problem, NameErrorKind::Invalid);
        let text = input.trim();
        if text.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Err(invalid("`.` alone is the DNS root, not a host".into()));
        }
        let (kind, base_text) = match text {
            "*" => (PatternKind::OneLabel, ""),
            "**" => (PatternKind::AnyDepth, ""),
            _ => match (text.strip_prefix("**."), text.strip_prefix("*.")) {
                (Some(base), _) => (PatternKind::AnyDepth, base),
                (None, Some(base)) => (PatternKind::OneLabel, base),
                (None, None) => (PatternKind::Exact, text),
            },
        };
        if let Some(label) = base_text.split('.').find(|l| l.contains('*')) {
            return Err(invalid(if label == "*" || label == "**" {
                format!("the wildcard `{label}` must be the leftmost label")
            } else {
                format!(
                    "`*` inside the label `{label}`: a wildcard is a whole leftmost label \
                     (`*.` or `**.`)"
                )
            }));
        }
        if base_text.parse::<IpAddr>().is_ok() {
            return Err(invalid(format!(
                "`{base_text}` is an IP address; write it as an IP:PORT or CIDR target"
            )));
        }
        let base = if base_text.is_empty() {
            String::new()
        } else {
            canonical_base(base_text).map_err(invalid)?
        };
        let pattern = NamePattern { kind, base };
        if breadth == Breadth::Strict
            && let Some(problem) = pattern.too_broad()
        {
            return Err(error(problem, NameErrorKind::TooBroad));
        }
        Ok(pattern)
    }

    /// Why the pattern is too broad to accept without force, if it is.
    fn too_broad(&self) -> Option<String> {
        if self.kind == PatternKind::Exact {
            return None;
        }
        if self.base.is_empty() {
            return Some(format!("`{self}` matches every name"));
        }
        if !self.base.contains('.') {
            return Some(format!(
                "`{self}` covers the whole top-level domain `{}`",
                self.base
            ));
        }
        let suffix = psl::suffix(self.base.as_bytes())?;
        (suffix.is_known() && suffix.as_bytes() == self.base.as_bytes()).then(|| {
            format!(
                "`{}` is a public suffix (anyone can register names under it), so `{self}` \
                 covers other people's domains",
                self.base
            )
        })
    }

    /// Which names the pattern covers relative to its base.
    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    /// The base name in ASCII form (empty for `*` and `**`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether `name` (any case, trailing dot or not, Unicode or punycode)
    /// is covered by this pattern.
    pub fn matches(&self, name: &str) -> bool {
        canonical_name(name).is_some_and(|n| self.matches_canonical(&n))
    }

    /// [`NamePattern::matches`] for a name already in canonical form.
    pub(crate) fn matches_canonical(&self, name: &str) -> bool {
        let extra = if self.base.is_empty() {
            Some(name)
        } else if name == self.base {
            return self.kind == PatternKind::Exact;
        } else {
            name.strip_suffix(self.base.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
        };
        match (self.kind, extra) {
            (_, None) | (PatternKind::Exact, _) => false,
            (_, Some("")) => false,
            (PatternKind::OneLabel, Some(extra)) => !extra.contains('.'),
            (PatternKind::AnyDepth, Some(_)) => true,
        }
    }
}

impl FromStr for NamePattern {
    type Err = NameError;

    /// Parses with [`Breadth::Strict`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, Breadth::Strict)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            PatternKind::Exact => "",
            PatternKind::OneLabel => "*",
            PatternKind::AnyDepth => "**",
        };
        match (prefix, self.base.is_empty()) {
            ("", _) => f.write_str(&self.base),
            (p, true) => f.write_str(p),
            (p, false) => write!(f, "{p}.{}", self.base),
        }
    }
}

/// The canonical form of a name being looked up (a DNS question, an SNI, a
/// Host header): lowercase ASCII, punycode for Unicode labels, no trailing
/// dot. `None` if it cannot be a host name (IDNA conversion fails). Does no
/// further validation: a name that is not valid simply matches nothing.
pub fn canonical_name(name: &str) -> Option<Cow<'_, str>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_ascii() && !name.contains("xn--") && !name.contains("XN--") {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some(Cow::Owned(name.to_ascii_lowercase()));
        }
        return Some(Cow::Borrowed(name));
    }
    idna::domain_to_ascii(name).ok().map(Cow::Owned)
}

/// Validates and converts a base name to its ASCII form, or says what is
/// wrong with it.
fn canonical_base(text: &str) -> Result<String, String> {
    if text.split('.').any(str::is_empty) {
        return Err("it has an empty label (a leading dot or two dots in a row)".into());
    }
    let ascii = idna::domain_to_ascii(text).map_err(|_| {
        format!(
            "`{text}` is not a valid internationalised name (IDNA): check for invalid \
             characters or a malformed `xn--` label"
        )
    })?;
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (a leading dot or two dots in a row)".into());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "`{c}` is not allowed in a host name (letters, digits, `-` and `_` only)"
            ));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "the label `{label}` is {} characters long; a label has at most {MAX_LABEL_LEN}",
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label `{label}` starts or ends with `-`"));
        }
    }
    if ascii.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} characters long; a name has at most {MAX_NAME_LEN}",
            ascii.len()
        ));
    }
    Ok(ascii)
}
