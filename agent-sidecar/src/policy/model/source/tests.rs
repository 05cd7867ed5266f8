use super::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("policy-source-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn reads_yaml_files_sorted_and_skips_hidden_and_tests() {
    let dir = temp_dir("read");
    for (path, text) in [
        ("org.yaml", "a"),
        ("teams/z.yml", "b"),
        ("teams/a.yaml", "c"),
        ("teams/notes.txt", "x"),
        (".hidden.yaml", "x"),
        ("..data/org.yaml", "x"),
        ("tests/f.yaml", "x"),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let snap = Snapshot::read_dir(&dir).unwrap();
    let paths: Vec<_> = snap.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["org.yaml", "teams/a.yaml", "teams/z.yml"]);

    let copy = temp_dir("copy");
    snap.write_to(&copy).unwrap();
    assert_eq!(Snapshot::read_dir(&copy).unwrap().files, snap.files);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(copy).unwrap();
}

#[test]
fn a_missing_directory_is_a_read_error_naming_it() {
    let e = Snapshot::read_dir(Path::new("/nonexistent/policies")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/policies"), "{e}");
}
