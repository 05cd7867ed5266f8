//! The one YAML parser of the sidecar: policy documents, fixtures, egress
//! files and the config file all go through [`from_str`], which deserializes
//! with `serde-saphyr` (duplicate keys refused, alias expansion bounded,
//! YAML 1.2 booleans) and turns every failure into a [`YamlError`] with a
//! 1-based line and column. [`events`] gives the same parser's events with
//! their spans, for indexing where each node is written.

use serde::de::DeserializeOwned;
use serde_saphyr::granit_parser::{ErrorKind, Event, Parser, ScanError, Span};

/// Why a YAML text could not be read into the wanted type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column; 0 when unknown.
    pub column: u32,
    /// What is wrong, without the position.
    pub message: String,
}

/// The options every YAML text is read with.
fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    // A repeated key is an error, never "last one wins": a policy whose
    // second `tier:` silently replaces the first is a reviewer's trap.
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // YAML 1.2: only true/false are booleans (`no` is not `false`).
    o.strict_booleans = true;
    // Errors are formatted by the callers, at their own positions.
    o.with_snippet = false;
    o
}

/// Deserializes one YAML document. A message about a value inside the
/// document starts with its path (`rules[0].tier: ...`).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut path = String::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            let p = e.path().to_string();
            if p != "." {
                path = p;
            }
            e.into_inner()
        })
    })
    .map_err(|e| {
        // A syntax error is reported where the text is wrong, in words
        // that say how (an unclosed bracket: where the file ends and
        // where the bracket was opened).
        if let Some(syntax) = syntax_error(text) {
            return syntax;
        }
        let e = e.without_snippet();
        match e.location() {
            Some(l) if l.line() > 0 => {
                let text = e.to_string();
                let suffix = format!(" at line {}, column {}", l.line(), l.column());
                let message = text.strip_suffix(&suffix).unwrap_or(&text);
                // An unknown key's path ends with the key: say it once.
                if let Some(rest) = message.strip_prefix("unknown field `")
                    && let Some((key, _)) = rest.split_once('`')
                    && let Some(parent) = path.strip_suffix(key)
                {
                    path = parent.trim_end_matches('.').to_string();
                }
                YamlError {
                    line: l.line() as u32,
                    column: l.column() as u32,
                    message: if path.is_empty() {
                        message.to_string()
                    } else {
                        format!("{path}: {message}")
                    },
                }
            }
            _ => YamlError {
                line: 0,
                column: 0,
                message: e.to_string(),
            },
        }
    })
}

/// The events of the first document of `text` with their spans, until the
/// end of the stream or the first syntax error.
pub(crate) fn events(text: &str) -> impl Iterator<Item = Result<(Event<'_>, Span), YamlError>> {
    let mut parser = Parser::new_from_str(text);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        match parser.next_event()? {
            Ok(ev) => Some(Ok(ev)),
            Err(e) => {
                failed = true;
                Some(Err(scan_error(text, &e)))
            }
        }
    })
}

/// The first syntax error of `text`, if any.
fn syntax_error(text: &str) -> Option<YamlError> {
    events(text).find_map(Result::err)
}

fn scan_error(text: &str, e: &ScanError) -> YamlError {
    let mark = e.marker();
    let (line, column) = (mark.line() as u32, mark.col() as u32 + 1);
    match e.kind() {
        // The parser points at the opening bracket or quote; the text is
        // wrong where it ends without closing it.
        ErrorKind::UnclosedFlowCollection { .. } | ErrorKind::UnclosedQuotedScalar => {
            let (end_line, end_column) = end_of(text);
            YamlError {
                line: end_line,
                column: end_column,
                message: format!(
                    "{} (opened at line {line} column {column}): the file ends before it is closed",
                    e.info()
                ),
            }
        }
        _ => YamlError {
            line,
            column,
            message: e.info(),
        },
    }
}

/// The 1-based line and column just past the last character of `text`.
fn end_of(text: &str) -> (u32, u32) {
    let line = text.matches('\n').count() as u32 + 1;
    let last = text.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() as u32 + 1)
}

#[cfg(test)]
mod tests;
