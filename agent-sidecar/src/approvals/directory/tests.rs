use std::{os::unix::fs::PermissionsExt, path::Path};

use hyper::header::HeaderValue;

use super::*;

const LEAD: &str = "lead-token-0123456789abcdef";
const FIN: &str = "finance-token-0123456789abcdef";

fn yaml() -> String {
    format!(
        "approvers:\n  - name: alice\n    team: payments\n    roles: [team_lead]\n    token_sha256: {}\n  - name: bob\n    team: finance\n    roles: [finance]\n    token_sha256: {}\n",
        token_sha256_hex(LEAD),
        token_sha256_hex(FIN)
    )
}

#[test]
fn authenticates_each_approver_by_their_own_token() {
    let d = Approvers::from_yaml(&yaml(), Path::new("a.yaml")).unwrap();
    assert_eq!(d.len(), 2);
    let h = HeaderValue::from_str(&format!("Bearer {LEAD}")).unwrap();
    let a = d.authenticate(Some(&h)).unwrap();
    assert_eq!(a.name, "alice");
    assert!(a.has_role("team_lead"));
    let h = HeaderValue::from_str(&format!("bearer {FIN}")).unwrap();
    assert_eq!(d.authenticate(Some(&h)).unwrap().name, "bob");
}

#[test]
fn forged_missing_and_malformed_tokens_are_refused() {
    let d = Approvers::from_yaml(&yaml(), Path::new("a.yaml")).unwrap();
    for bad in [
        "Bearer lead-token-0123456789abcdeF",
        "Bearer lead-token-0123456789abcde",
        "Basic bGVhZC10b2tlbg==",
        "Bearer ",
        LEAD,
    ] {
        let h = HeaderValue::from_str(bad).unwrap();
        assert!(d.authenticate(Some(&h)).is_none(), "{bad}");
    }
    assert!(d.authenticate(None).is_none());
    // The digest itself is not a token.
    let h = HeaderValue::from_str(&format!("Bearer {}", token_sha256_hex(LEAD))).unwrap();
    assert!(d.authenticate(Some(&h)).is_none());
}

#[test]
fn errors_name_the_line_and_the_entry() {
    let e = Approvers::from_yaml(
        "approvers:\n  - name: a\n    tean: x\n",
        Path::new("f.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("f.yaml:3:"), "{e}");
    let e = Approvers::from_yaml(
        "approvers:\n  - name: a\n    team: x\n    token_sha256: abc\n",
        Path::new("f.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("64 hex digits"), "{e}");
    let dup = format!(
        "approvers:\n  - name: a\n    team: x\n    token_sha256: {h}\n  - name: b\n    team: x\n    token_sha256: {h}\n",
        h = token_sha256_hex(LEAD)
    );
    let e = Approvers::from_yaml(&dup, Path::new("f.yaml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("shared with another approver"), "{e}");
}

#[test]
fn world_readable_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("approvers.yaml");
    std::fs::write(&p, yaml()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Approvers::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("world-readable"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(Approvers::from_file(&p).unwrap().len(), 2);
}
