//! `--allow TARGET`: an address target (`IP:PORT`, `CIDR`, ...) enforced in
//! the kernel, or a name target (`HOST[:PORT]`, `*.example.com:443`, ...)
//! enforced by the sidecar's resolver and proxies.

use std::{fmt, str::FromStr};

use crate::egress::{Breadth, NameError, NameRule, Target, TargetError};

/// One `--allow` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowArg {
    /// An address, network or address with port.
    Address(Target),
    /// A host name or name pattern, with optional ports.
    Name(NameRule),
}

/// Why an `--allow` value is unusable: the error of the kind of target it
/// looks like.
#[derive(Debug, thiserror::Error)]
pub enum AllowArgError {
    /// It looks like an address.
    #[error(transparent)]
    Address(#[from] TargetError),
    /// It looks like a name.
    #[error(transparent)]
    Name(#[from] NameError),
}

impl FromStr for AllowArg {
    type Err = AllowArgError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<Target>() {
            Ok(t) => Ok(AllowArg::Address(t)),
            Err(e) if looks_like_address(s) => Err(e.into()),
            Err(_) => Ok(AllowArg::Name(NameRule::parse(s, Breadth::Strict)?)),
        }
    }
}

impl fmt::Display for AllowArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowArg::Address(t) => t.fmt(f),
            AllowArg::Name(n) => n.fmt(f),
        }
    }
}

/// Addresses are digits, dots, colons, slashes and brackets (and hex digits
/// inside brackets); a name has a letter outside brackets.
fn looks_like_address(s: &str) -> bool {
    s.starts_with('[')
        || s.contains('/')
        || s.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ':')
        || (s.matches(':').count() > 1 && s.chars().all(|c| c.is_ascii_hexdigit() || c == ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_are_told_apart() {
        for s in ["10.0.0.1:443", "10.0.0.0/8", "[2001:db8::1]:443", "::1"] {
            assert!(
                matches!(s.parse::<AllowArg>(), Ok(AllowArg::Address(_))),
                "{s}"
            );
        }
        for s in [
            "api.example.com",
            "api.example.com:443",
            "*.example.com:443",
            "db.internal:5432",
        ] {
            assert!(
                matches!(s.parse::<AllowArg>(), Ok(AllowArg::Name(_))),
                "{s}"
            );
        }
    }

    #[test]
    fn errors_speak_about_what_the_value_looks_like() {
        let e = "10.0.0.1/8".parse::<AllowArg>().unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/8"), "{e}");
        let e = "999.1.1.1:80".parse::<AllowArg>().unwrap_err().to_string();
        assert!(e.contains("IP:PORT"), "{e}");
        let e = "*.com".parse::<AllowArg>().unwrap_err().to_string();
        assert!(
            e.contains("whole top-level domain") && e.contains("force"),
            "{e}"
        );
        let e = "api..example.com"
            .parse::<AllowArg>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("api..example.com"), "{e}");
    }
}
