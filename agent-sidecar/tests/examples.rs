//! Every example in `examples/` loads, so the examples never rot: tier
//! policy sets (directories with a `kind: base` document) compile and pass
//! their fixtures in `tests/`; config files of `run` (`examples/config/`)
//! pass `config check` and every path they name exists; every other YAML
//! file is an egress policy file.

use std::path::{Path, PathBuf};

use agent_sidecar::{
    config::{self, LoadedFile, Source},
    policy::{CompiledPolicySet, PolicyFile, document::Kind, document_kind, fixtures},
};

fn is_policy_set(dir: &Path) -> bool {
    std::fs::read_dir(dir).expect("read dir").any(|e| {
        let p = e.expect("entry").path();
        p.extension().is_some_and(|x| x == "yaml" || x == "yml")
            && std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| document_kind(&t))
                == Some(Kind::Base)
    })
}

/// Egress policy files and policy set directories under `dir`.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, sets: &mut Vec<PathBuf>) {
    if dir.ends_with("examples/config") || dir.ends_with("examples/fleet") {
        return;
    }
    if is_policy_set(dir) {
        sets.push(dir.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(dir).expect("read examples") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(&path, files, sets);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

fn examples() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let (mut files, mut sets) = (Vec::new(), Vec::new());
    walk(&root, &mut files, &mut sets);
    (files, sets)
}

#[test]
fn every_example_policy_loads() {
    let (files, _) = examples();
    assert!(files.len() >= 2, "expected example egress policies");
    for file in files {
        let policy = PolicyFile::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !policy.allowlist(&file).is_empty(),
            "{} allows nothing",
            file.display()
        );
    }
}

#[test]
fn every_example_policy_set_compiles_and_passes_its_fixtures() {
    let (_, sets) = examples();
    assert!(!sets.is_empty(), "expected example policy sets");
    for dir in sets {
        let set = CompiledPolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let s = set.summary();
        assert!(
            s.rules > 0 && s.agents > 0 && s.overlays > 0,
            "{}: {s:?}",
            dir.display()
        );
        let tests = dir.join("tests");
        let report = fixtures::run_fixtures(&set, &tests);
        assert!(report.ok(), "{}:\n{report}", tests.display());
        assert!(
            report.passed >= 20,
            "{}: only {} scenarios",
            tests.display(),
            report.passed
        );
    }
}

#[test]
fn the_example_organisation_redacts_bank_details() {
    use agent_sidecar::policy::gateway::RedactMethod;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let set = CompiledPolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let pay = set.redaction("erp", "create_payment").expect("declared");
    for (path, want) in [
        (&["iban"][..], Some(RedactMethod::Hash)),
        (&["beneficiary", "iban"], Some(RedactMethod::Hash)),
        (&["beneficiary", "name"], Some(RedactMethod::Keep)),
        (&["lines", "3", "card_number"], Some(RedactMethod::Drop)),
        (&["lines", "3", "sku"], Some(RedactMethod::Keep)),
        (&["amount"], Some(RedactMethod::Keep)),
        (&["memo"], None),
    ] {
        assert_eq!(pay.method_at(path), want, "{path:?}");
    }
    let vendor = set.redaction("erp", "update_vendor").expect("declared");
    assert_eq!(
        vendor.headers.get("x-vendor-contact"),
        Some(&RedactMethod::Hash)
    );
}

#[test]
fn every_example_config_file_loads_and_names_paths_that_exist() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/config") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        LoadedFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let cli = config::args::run_cli();
        // `serve*.yaml` may hold the keys only `serve` has (the pod, the
        // identity); every other file is read by `run` and by `serve`.
        let serve_only = path
            .file_stem()
            .is_some_and(|s| s.to_string_lossy().starts_with("serve"));
        let run_resolved = (!serve_only).then(|| {
            let argv: Vec<std::ffi::OsString> = vec![
                "agent-sidecar".into(),
                "run".into(),
                "--config".into(),
                path.clone().into(),
                "--".into(),
                "true".into(),
            ];
            let resolved =
                config::resolve(&cli, "run", &argv, &|_| None).unwrap_or_else(|e| panic!("{e}"));
            cli.clone()
                .try_get_matches_from(&resolved.argv)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            resolved
        });
        // The pod's UID and name come from the downward API.
        let serve_argv: Vec<std::ffi::OsString> = vec![
            "agent-sidecar".into(),
            "serve".into(),
            "--config".into(),
            path.clone().into(),
            "--pod-uid".into(),
            "3f1c2a9e-7b4d-4e8a-9c11-0d5e6f7a8b9c".into(),
            "--pod-name".into(),
            "bot-0".into(),
        ];
        let served = config::resolve(&cli, "serve", &serve_argv, &|_| None)
            .unwrap_or_else(|e| panic!("{}: serve: {e}", path.display()));
        cli.clone()
            .try_get_matches_from(&served.argv)
            .unwrap_or_else(|e| panic!("{}: serve: {e}", path.display()));
        let resolved = run_resolved.unwrap_or(served);
        let from_file: Vec<_> = resolved
            .entries
            .iter()
            .filter(|e| e.source == Source::File)
            .collect();
        assert!(from_file.len() >= 10, "{}: {from_file:?}", path.display());
        for e in &from_file {
            if matches!(e.key.name.as_str(), "policy" | "policy-dir") {
                for p in &e.values {
                    assert!(
                        Path::new(p).exists(),
                        "{}: `{}` names {p}, which does not exist",
                        path.display(),
                        e.key.name
                    );
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 1, "expected example config files");
}

/// Every key of the config file's schema is written in some example, so a
/// new flag gets an example with it (and the loader and `run`'s parser see
/// it in the test above).
#[test]
fn the_example_config_files_together_show_every_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let mut shown = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("examples/config") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let file = LoadedFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            shown.extend(file.values.into_keys());
        }
    }
    let schema = config::schema();
    let keys: Vec<&String> = schema["properties"]
        .as_object()
        .expect("the schema's properties")
        .keys()
        .collect();
    assert!(keys.len() > 40, "{keys:?}");
    let missing: Vec<&&String> = keys.iter().filter(|k| !shown.contains(**k)).collect();
    assert!(
        missing.is_empty(),
        "config keys no file in examples/config/ shows: {missing:?}"
    );
}

#[test]
fn the_example_detection_sections_resolve_per_agent() {
    use agent_sidecar::policy::{
        Tier,
        detection::{DetectorKind, Response},
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let set = CompiledPolicySet::load_dir(&dir).expect("examples/policies compiles");
    let support = set.detection("support-agent");
    assert_eq!(support.pool.as_deref(), Some("support"));
    assert_eq!(support.detector(DetectorKind::RateSurge).threshold, 8.0);
    let nd = support.detector(DetectorKind::NewDestination);
    assert_eq!(
        (nd.response, nd.raise_to, nd.raise_for.as_secs()),
        (Response::RaiseTier, Tier::Approval, 7200)
    );
    // The procurement agent: the base's settings, pooled by its first role.
    let procurement = set.detection("procurement-agent");
    assert_eq!(procurement.pool.as_deref(), Some("payments-operator"));
    assert_eq!(procurement.detector(DetectorKind::RateSurge).threshold, 6.0);
    assert_eq!(
        procurement.detector(DetectorKind::DeniedBurst).response,
        Response::Quarantine
    );
    assert_eq!(procurement.utc_offset_minutes, -300);
}

#[test]
fn the_example_fleet_controls_file_loads_and_names_scopes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet/controls.yaml");
    let (controls, _) =
        agent_sidecar::fleet::Controls::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let scopes: Vec<String> = controls
        .kill_switches
        .iter()
        .map(|k| k.scope.label())
        .collect();
    assert_eq!(scopes, ["team=payments", "role=summarizer"]);
}
