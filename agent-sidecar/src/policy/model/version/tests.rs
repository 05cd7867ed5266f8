use super::*;
use crate::policy::source::SourceFile;

fn snap(files: &[(&str, &str)]) -> Snapshot {
    Snapshot::from_files(
        "/p",
        files
            .iter()
            .map(|(p, t)| SourceFile {
                path: p.to_string(),
                text: t.to_string(),
            })
            .collect(),
    )
}

#[test]
fn hash_depends_on_paths_and_bytes_not_on_order() {
    let a = content_hash(&snap(&[("a.yaml", "x"), ("b.yaml", "y")]));
    assert_eq!(a, content_hash(&snap(&[("b.yaml", "y"), ("a.yaml", "x")])));
    assert_ne!(a, content_hash(&snap(&[("a.yaml", "x"), ("c.yaml", "y")])));
    assert_ne!(a, content_hash(&snap(&[("a.yaml", "x"), ("b.yaml", "y ")])));
    // The length prefix keeps file boundaries unambiguous.
    assert_ne!(
        content_hash(&snap(&[("a.yaml", "xb.yaml")])),
        content_hash(&snap(&[("a.yaml", "x"), ("b.yaml", "")]))
    );
    assert_eq!(a.len(), 64);
}

#[test]
fn short_form_and_prefix_matching() {
    let v = PolicyVersion {
        hash: "0123456789abcdef0123".into(),
        label: "r1".into(),
    };
    assert_eq!(v.short(), "0123456789ab");
    assert_eq!(v.to_string(), "r1 (sha256:0123456789ab)");
    assert!(v.matches("sha256:01234567"));
    assert!(v.matches("0123"));
    assert!(!v.matches("012"));
    assert!(!v.matches("1234"));
}
