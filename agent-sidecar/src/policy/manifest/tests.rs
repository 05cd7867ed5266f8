use super::*;
use crate::policy::source::SourceFile;

fn snapshot(files: &[(&str, &str)]) -> Snapshot {
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

fn line(path: &str, text: &str) -> String {
    format!("{}  {path}\n", hex(&Sha256::digest(text.as_bytes())))
}

#[test]
fn a_manifest_vouches_only_for_exactly_the_files_it_lists() {
    let s = snapshot(&[("a.yaml", "x: 1\n"), ("t/b.yaml", "y: 2\n")]);
    let full = format!("{}{}", line("a.yaml", "x: 1\n"), line("t/b.yaml", "y: 2\n"));
    verify(&full, &s).unwrap();
    // `sha256sum -b` and `./` prefixes are accepted.
    let binary = full.replace("  a.yaml", " *./a.yaml");
    verify(&binary, &s).unwrap();

    // Cut short: the second file is not listed.
    let cut = line("a.yaml", "x: 1\n");
    assert!(
        matches!(verify(&cut, &s), Err(ManifestError::Unlisted { path, .. }) if path == "t/b.yaml")
    );
    // A file not written yet.
    let s1 = snapshot(&[("a.yaml", "x: 1\n")]);
    assert!(
        matches!(verify(&full, &s1), Err(ManifestError::Missing { path, .. }) if path == "t/b.yaml")
    );
    // A file only half written.
    let half = snapshot(&[("a.yaml", "x: 1\n"), ("t/b.yaml", "y:")]);
    let e = verify(&full, &half).unwrap_err();
    assert!(
        e.to_string()
            .contains("/p/SHA256SUMS: `t/b.yaml` has sha256"),
        "{e}"
    );
    // A line cut mid-digest.
    let e = verify(&full[..30], &s).unwrap_err();
    assert_eq!(
        e,
        ManifestError::Syntax {
            file: "/p/SHA256SUMS".into(),
            line: 1
        }
    );
}
