//! The malformed-policy corpus (`tests/data/malformed-policies/`): each file
//! breaks the example policy set in one way. Loading it must fail with
//! exactly one problem, at the expected place, saying what is wrong, and
//! the previous set must stay in force.

use std::path::{Path, PathBuf};

use agent_sidecar::policy::{
    ActionInput, CompileError, PolicyStore, PolicyVersion, ReloadOutcome, StoreOptions, Tier,
};

struct Case {
    file: PathBuf,
    path: String,
    expect_at: String,
    expect: String,
    text: String,
}

fn header(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malformed-policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("read case");
            let need = |k: &str| {
                header(&text, k).unwrap_or_else(|| panic!("{}: no `# {k}` header", file.display()))
            };
            Case {
                path: header(&text, "path:").unwrap_or_else(|| "extra.yaml".into()),
                expect_at: need("expect-at:"),
                expect: need("expect:"),
                text,
                file,
            }
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if p.is_dir() {
            if name != "tests" {
                copy_dir(&p, &to.join(name));
            }
        } else {
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

fn probe() -> ActionInput {
    serde_json::from_str(
        r#"{"agent": "procurement-agent", "environment": "prod",
            "http": {"host": "erp.acme.internal", "method": "POST", "path": "/v1/payments",
                     "body": {"amount": 30000, "currency": "USD"}}}"#,
    )
    .unwrap()
}

#[test]
fn every_malformed_policy_yields_one_precise_error_and_keeps_the_previous_set() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let dir = std::env::temp_dir().join(format!("malformed-policies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&examples, &dir);
    let store =
        PolicyStore::open(&dir, StoreOptions::default(), None).unwrap_or_else(|e| panic!("{e}"));
    let good = store.current().version().clone();
    let cases = cases();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file.display().to_string();
        let target = dir.join(&case.path);
        let original = std::fs::read(&target).ok();
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &case.text).unwrap();

        let outcome = check(&store, &dir, &case, &good);

        match original {
            Some(bytes) => std::fs::write(&target, bytes).unwrap(),
            None => std::fs::remove_file(&target).unwrap(),
        }
        match store.reload() {
            ReloadOutcome::Updated(v) => assert_eq!(v, good, "{name}"),
            other => panic!("{name}: restoring the set: {other:?}"),
        }
        assert!(store.last_error().is_none(), "{name}");
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Reloads with the broken file in place and checks the one problem.
fn check(store: &PolicyStore, dir: &Path, case: &Case, good: &PolicyVersion) -> Result<(), String> {
    let err = match store.reload() {
        ReloadOutcome::Failed(e) => e,
        other => return Err(format!("expected a failed reload, got {other:?}")),
    };
    let problems = match err.as_ref() {
        CompileError::Invalid(p) => p,
        other => return Err(other.to_string()),
    };
    if problems.len() != 1 {
        return Err(format!("expected one problem, got:\n{err}"));
    }
    let p = &problems[0];
    let at = format!(
        "{}:{}:{}",
        p.location.file, p.location.line, p.location.column
    );
    let want_at = dir.join(&case.expect_at).display().to_string();
    if at != want_at {
        return Err(format!("at {at}, expected {want_at}:\n{p}"));
    }
    let text = p.to_string();
    if !text.contains(&case.expect) || p.help.is_empty() {
        return Err(format!(
            "expected `{}` and a help line in:\n{text}",
            case.expect
        ));
    }
    // The last-known-good set is still in force and still decides.
    let set = store.current();
    if set.version() != good || store.last_error().is_none() {
        return Err("the set in force changed".into());
    }
    let action = set.action_from_input(&probe()).unwrap();
    if store.decide(&action).tier != Tier::Approval {
        return Err("the set in force decides differently".into());
    }
    Ok(())
}
