use std::{fs, os::unix::fs::PermissionsExt};

use hyper::header::HeaderValue;

use super::*;

const TOKEN: &str = "s3cret-token-0123456789";

#[test]
fn accepts_only_the_exact_token() {
    let t = BearerToken::new(TOKEN).expect("valid");
    assert!(t.verify(TOKEN.as_bytes()));
    assert!(!t.verify(b"s3cret-token-012345678"));
    assert!(!t.verify(b""));
    assert!(!t.verify(format!("{TOKEN}x").as_bytes()));
}

#[test]
fn parses_the_bearer_scheme() {
    let t = BearerToken::new(TOKEN).expect("valid");
    let h = |s: &str| HeaderValue::from_str(s).expect("header");
    assert!(t.authorizes(Some(&h(&format!("Bearer {TOKEN}")))));
    assert!(t.authorizes(Some(&h(&format!("bearer  {TOKEN} ")))));
    assert!(!t.authorizes(Some(&h(&format!("Basic {TOKEN}")))));
    assert!(!t.authorizes(Some(&h("Bearer"))));
    assert!(!t.authorizes(None));
}

#[test]
fn short_tokens_are_refused() {
    assert!(matches!(
        BearerToken::new(" short \n"),
        Err(TokenError::TooShort { len: 5 })
    ));
}

#[test]
fn token_file_must_not_be_world_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    fs::write(&path, format!("{TOKEN}\n")).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = BearerToken::from_file(&path).expect_err("world-readable");
    assert!(err.to_string().contains("world-readable"), "{err}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    let t = BearerToken::from_file(&path).expect("private file");
    assert!(t.verify(TOKEN.as_bytes()));
}

#[test]
fn missing_env_is_named() {
    let err = BearerToken::from_env("AGENT_SIDECAR_TEST_SURELY_UNSET_VAR").expect_err("unset");
    assert!(
        err.to_string()
            .contains("AGENT_SIDECAR_TEST_SURELY_UNSET_VAR")
    );
}

#[test]
fn debug_does_not_print_the_secret() {
    let t = BearerToken::new(TOKEN).expect("valid");
    assert_eq!(format!("{t:?}"), "BearerToken(<redacted>)");
}

/// The comparison must be constant-time: asserted on the code itself, since
/// timing tests are flaky. `verify` must hash and use `ct_eq`, never `==`.
#[test]
fn verify_compares_in_constant_time() {
    let src = include_str!("../auth.rs");
    let start = src.find("pub fn verify(").expect("verify exists");
    let body = &src[start..];
    let body = &body[..body.find("\n    }\n").expect("end of verify")];
    assert!(body.contains(".ct_eq("), "{body}");
    assert!(!body.contains("=="), "{body}");
    assert!(!src.contains("self.digest =="), "token compared with ==");
}
