//! Errors of the tier policy engine. Every problem says what is wrong,
//! where (`file:line:column`, and the other place when two documents
//! conflict) and how to fix it.

use std::{fmt, path::PathBuf};

use super::location::Location;

/// One problem in a policy set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub location: Location,
    /// What is wrong.
    pub message: String,
    /// The other place involved (the parent rule a child tries to lower,
    /// the first declaration of a duplicate...), with what is there.
    pub related: Option<(Location, String)>,
    /// How to fix it.
    pub help: String,
}

impl Problem {
    /// A problem at `location`.
    pub fn new(location: Location, message: impl Into<String>, help: impl Into<String>) -> Self {
        Problem {
            location,
            message: message.into(),
            related: None,
            help: help.into(),
        }
    }

    /// Names the other location involved.
    pub fn with_related(mut self, location: Location, what: impl Into<String>) -> Self {
        self.related = Some((location, what.into()));
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.location, self.message)?;
        if let Some((loc, what)) = &self.related {
            write!(f, "\n  --> {loc}: {what}")?;
        }
        write!(f, "\n  help: {}", self.help)
    }
}

/// Why a policy set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The directory or a file in it could not be read.
    #[error("cannot read policy set {path}: {source}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// The documents are invalid; at least one problem.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// The directory's `SHA256SUMS` manifest does not match its files
    /// (an update caught half-way, or a stale manifest).
    #[error("the policy bundle manifest does not match the policy files: {0}")]
    Manifest(#[from] ManifestError),
}

impl CompileError {
    /// The problems, empty for a read error or a manifest mismatch.
    pub fn problems(&self) -> &[Problem] {
        match self {
            CompileError::Invalid(p) => p,
            CompileError::Read { .. } | CompileError::Manifest(_) => &[],
        }
    }
}

/// Why a manifest does not vouch for the files next to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A line is not `<64 hex digits>  <path>`.
    #[error(
        "{file}:{line}: not a `sha256sum` line (`<64 hex digits>  <path>`); regenerate the manifest with `sha256sum`"
    )]
    Syntax {
        /// The manifest.
        file: String,
        /// 1-based line number.
        line: usize,
    },
    /// A policy file the manifest does not list.
    #[error(
        "{file}: `{path}` is in the policy directory but not listed; the manifest is written last, after every policy file"
    )]
    Unlisted {
        /// The manifest.
        file: String,
        /// The policy file.
        path: String,
    },
    /// A listed file that is not in the directory.
    #[error("{file}: lists `{path}`, which is not in the policy directory (yet)")]
    Missing {
        /// The manifest.
        file: String,
        /// The listed path.
        path: String,
    },
    /// A file whose bytes are not the ones listed.
    #[error(
        "{file}: `{path}` has sha256 {actual}, the manifest lists {listed} (the file is not completely written yet, or the manifest is stale)"
    )]
    Digest {
        /// The manifest.
        file: String,
        /// The policy file.
        path: String,
        /// Digest in the manifest.
        listed: String,
        /// Digest of the file read.
        actual: String,
    },
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
