//! Every example policy in `examples/` loads, so the examples never rot.

use std::path::{Path, PathBuf};

use agent_sidecar::policy::PolicyFile;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read examples") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_policy_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    assert!(
        files.len() >= 2,
        "expected example policies in {}",
        root.display()
    );
    for file in files {
        let policy = PolicyFile::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !policy.allowlist(&file).is_empty(),
            "{} allows nothing",
            file.display()
        );
    }
}
