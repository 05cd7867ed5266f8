//! `agent-sidecar policy promote` (the real binary): a candidate policy
//! version replaces the active directory whole, a sidecar's watcher
//! reloads it as one version, and a candidate that does not compile
//! changes nothing.

use std::{
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use agent_sidecar::policy::{CompiledPolicySet, PolicyStore, StoreOptions, WatchOptions, watch};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn promote(candidate: &Path, active: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agent-sidecar"))
        .args(["policy", "promote", "--candidate"])
        .arg(candidate)
        .arg("--active")
        .arg(active)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn hash(dir: &Path) -> String {
    CompiledPolicySet::load_dir(dir)
        .unwrap()
        .version()
        .hash
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_is_promoted_whole_and_a_broken_one_changes_nothing() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let dir = tempfile::tempdir().unwrap();
    let (active, candidate) = (dir.path().join("active"), dir.path().join("candidate"));
    copy_dir(&examples, &active);
    copy_dir(&examples, &candidate);
    // The candidate: a new label and one file fewer.
    let org = candidate.join("org.yaml");
    let text = std::fs::read_to_string(&org).unwrap();
    let label = text
        .lines()
        .find(|l| l.starts_with("label:"))
        .unwrap()
        .to_string();
    std::fs::write(&org, text.replace(&label, "label: candidate-2")).unwrap();
    let overlay = std::fs::read_dir(candidate.join("overlays"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&overlay).unwrap();
    let before = hash(&active);
    let expected = hash(&candidate);
    assert_ne!(before, expected);

    let store = Arc::new(PolicyStore::open(&active, StoreOptions::default(), None).unwrap());
    let _watch = watch(store.clone(), WatchOptions::default()).unwrap();
    let mut seen = store.subscribe();

    // A broken candidate: refused, nothing written.
    let broken = dir.path().join("broken");
    copy_dir(&candidate, &broken);
    std::fs::write(broken.join("org.yaml"), "kind: base\nname: [unclosed\n").unwrap();
    let (code, _, err) = promote(&broken, &active);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("does not compile") && err.contains("org.yaml"),
        "{err}"
    );
    assert_eq!(hash(&active), before);

    let (code, out, err) = promote(&candidate, &active);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["promoted"], expected.as_str());
    assert_eq!(report["previous"], before.as_str());
    let overlay_rel = format!(
        "overlays/{}",
        overlay.file_name().unwrap().to_string_lossy()
    );
    assert_eq!(report["removed"], serde_json::json!([overlay_rel]));
    assert_eq!(hash(&active), expected);
    // No staged file is left behind.
    let leftovers: Vec<_> = walk(&active)
        .into_iter()
        .filter(|p| p.contains(".promote"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The watching sidecar's set becomes the candidate's, as one version.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.current().version().hash.to_string() != expected {
        assert!(
            Instant::now() < deadline,
            "the watcher never reloaded; a reload now: {:?}; store {} expected {}",
            store.reload(),
            store.current().version().hash,
            expected
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), seen.changed()).await;
    }
    assert_eq!(&*store.current().version().label, "candidate-2");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}
