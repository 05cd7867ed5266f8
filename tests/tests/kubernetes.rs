//! The Kubernetes deployment, checked offline: every kustomization under
//! `deploy/kubernetes` rendered with `kubectl kustomize` (Debian's
//! kubernetes-client, installed by `cargo xtask setup`; `AGENT_SIDECAR_KUBECTL`
//! names another) and every rendered object, plus the pods the injection
//! webhook makes of the AdmissionReview fixtures, validated against the
//! Kubernetes 1.33 OpenAPI schemas by PyPI's `kubernetes-validate` (strict:
//! unknown fields are errors). Objects of CRDs the validator has no schema
//! for (cert-manager's Issuer and Certificate, the Prometheus Operator's
//! PodMonitor) are skipped by name, and the test lists them; they are
//! checked here field by field instead. The ValidatingAdmissionPolicy of
//! agent namespaces is evaluated (cel-python) on injected and forged pods.
//! The Dockerfile is parsed with BuildKit's parser and its sources checked;
//! it is not built (no registry or container engine here).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use agent_sidecar::inject::review::Webhook;
use agent_sidecar_test_support::mcp::{python_script, repo_root, test_python};
use agent_sidecar_test_support::temp::TempDir;
use serde_json::{Value, json};

/// Kubernetes version the objects are validated against (native sidecars
/// are stable from 1.33).
const K8S_VERSION: &str = "1.33.0";

/// The kustomizations: directory under deploy/kubernetes, and the objects
/// skipped for want of a schema (kind/name), which must be exactly these.
const KUSTOMIZATIONS: [(&str, &[&str]); 5] = [
    ("base", &[]),
    ("overlays/self-signed", &[]),
    (
        "overlays/cert-manager",
        &[
            "Certificate/agent-sidecar-injector-ca",
            "Certificate/agent-sidecar-injector-tls",
            "Issuer/agent-sidecar-ca",
            "Issuer/agent-sidecar-selfsigned",
        ],
    ),
    ("agents/example", &[]),
    ("monitoring", &["PodMonitor/agent-sidecar"]),
];

fn kubectl() -> PathBuf {
    std::env::var_os("AGENT_SIDECAR_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

fn check_script() -> PathBuf {
    python_script("k8s_check.py")
}

/// A copy of deploy/kubernetes with the self-signed overlay's certificates
/// made by its own gen-certs.sh (they are never in git).
fn deploy_copy(tmp: &TempDir) -> PathBuf {
    let dst = tmp.path().join("kubernetes");
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("deploy/kubernetes"))
        .arg(&dst)
        .status()
        .expect("cp");
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dst.join("overlays/self-signed/certs"));
    let out = Command::new("sh")
        .arg(dst.join("overlays/self-signed/gen-certs.sh"))
        .output()
        .expect("sh gen-certs.sh");
    assert!(out.status.success(), "gen-certs.sh: {out:?}");
    dst
}

/// `kubectl kustomize DIR` into `out`.
fn render(dir: &Path, out: &Path) {
    let result = Command::new(kubectl())
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; install Debian's kubernetes-client (`cargo xtask setup`) \
                 or set AGENT_SIDECAR_KUBECTL",
                kubectl().display()
            )
        });
    assert!(
        result.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::write(out, &result.stdout).unwrap();
}

/// Validates `files`; returns whether all were valid, the entries (one per
/// object: kind, name, result, reason, object) and the script's output.
fn validate(files: &[PathBuf], work: &Path) -> (bool, Vec<Value>, String) {
    let out = work.join(format!("validated-{}.json", files.len()));
    let result = Command::new(test_python())
        .arg(check_script())
        .args(["validate", "--k8s-version", K8S_VERSION, "--out"])
        .arg(&out)
        .args(files)
        .output()
        .expect("python k8s_check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let entries: Vec<Value> = std::fs::read(&out)
        .map(|b| serde_json::from_slice(&b).expect("validate output"))
        .unwrap_or_else(|e| panic!("no output from k8s_check.py validate ({e}): {text}"));
    (result.status.success(), entries, text)
}

fn object<'a>(entries: &'a [Value], kind: &str, name: &str) -> &'a Value {
    &entries
        .iter()
        .find(|e| e["kind"] == kind && e["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))["object"]
}

fn env_value<'a>(container: &'a Value, name: &str) -> &'a Value {
    &container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name}"))["value"]
}

/// Renders and validates every kustomization; checks what each promises.
#[test]
fn every_kustomization_renders_and_validates_against_kubernetes_1_33() {
    let tmp = TempDir::new();
    let deploy = deploy_copy(&tmp);
    let mut all = Vec::new();
    for (dir, skipped_want) in KUSTOMIZATIONS {
        let out = tmp.path().join(format!("{}.yaml", dir.replace('/', "-")));
        render(&deploy.join(dir), &out);
        let (ok, entries, text) = validate(std::slice::from_ref(&out), tmp.path());
        assert!(ok, "{dir}: invalid objects:\n{text}");
        assert!(!entries.is_empty(), "{dir} rendered nothing");
        let skipped: Vec<String> = entries
            .iter()
            .filter(|e| e["result"] == "skipped")
            .map(|e| {
                format!(
                    "{}/{}",
                    e["kind"].as_str().unwrap(),
                    e["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            skipped,
            skipped_want.to_vec(),
            "{dir}: skipped objects\n{text}"
        );
        eprintln!(
            "{dir}: {} objects, {} skipped (CRDs)",
            entries.len(),
            skipped.len()
        );
        all.push((dir, entries));
    }
    let get = |d: &str| &all.iter().find(|(dir, _)| *dir == d).unwrap().1;

    // The webhook configuration fails closed, in time, without side effects.
    for overlay in ["overlays/self-signed", "overlays/cert-manager"] {
        let entries = get(overlay);
        let mwc = object(
            entries,
            "MutatingWebhookConfiguration",
            "agent-sidecar-injector",
        );
        let hooks = mwc["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 2, "{overlay}");
        for hook in hooks {
            assert_eq!(hook["failurePolicy"], "Fail", "{overlay}");
            assert_eq!(hook["sideEffects"], "None", "{overlay}");
            assert_eq!(hook["reinvocationPolicy"], "IfNeeded", "{overlay}");
            let timeout = hook["timeoutSeconds"].as_i64().unwrap();
            assert!((1..=30).contains(&timeout), "{overlay}: timeout {timeout}");
            assert_eq!(hook["rules"][0]["operations"], json!(["CREATE"]));
            let excluded = hook["namespaceSelector"]["matchExpressions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["key"] == "kubernetes.io/metadata.name")
                .unwrap();
            assert_eq!(excluded["operator"], "NotIn");
            for ns in ["kube-system", "agent-sidecar-system"] {
                assert!(excluded["values"].as_array().unwrap().contains(&json!(ns)));
            }
            assert_eq!(
                hook["clientConfig"]["service"]["namespace"],
                "agent-sidecar-system"
            );
        }
        assert!(hooks[1]["objectSelector"]["matchLabels"]["agent-sidecar.io/inject"] == "true");
        let deployment = object(entries, "Deployment", "agent-sidecar-injector");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(c[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
        }
        assert!(c["resources"]["requests"]["cpu"].is_string());
        assert!(c["resources"]["limits"]["memory"].is_string());
        // The sidecar the webhook injects is the image the policy admits.
        let image = env_value(c, "AGENT_SIDECAR_SIDECAR_IMAGE");
        assert_eq!(image, &c["image"]);
        let vap = object(
            entries,
            "ValidatingAdmissionPolicy",
            "agent-sidecar-agent-pods",
        );
        let var = vap["spec"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "sidecarImage")
            .unwrap();
        assert_eq!(var["expression"], format!("'{}'", image.as_str().unwrap()));
        let pdb = object(entries, "PodDisruptionBudget", "agent-sidecar-injector");
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        // No API access: no token, and no Role or binding at all.
        let sa = object(entries, "ServiceAccount", "agent-sidecar-injector");
        assert_eq!(sa["automountServiceAccountToken"], false);
        for e in entries {
            let kind = e["kind"].as_str().unwrap();
            assert!(
                !kind.contains("Role"),
                "{overlay}: the webhook needs no RBAC, found {kind}"
            );
        }
    }

    // Self-signed: the Secret holds gen-certs.sh's files and the caBundle
    // is its CA.
    let entries = get("overlays/self-signed");
    let secret = object(entries, "Secret", "agent-sidecar-injector-tls");
    assert_eq!(secret["metadata"]["namespace"], "agent-sidecar-system");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let ca = secret["data"]["ca.crt"].as_str().unwrap().replace('\n', "");
    let mwc = object(
        entries,
        "MutatingWebhookConfiguration",
        "agent-sidecar-injector",
    );
    for hook in mwc["webhooks"].as_array().unwrap() {
        assert_eq!(hook["clientConfig"]["caBundle"].as_str().unwrap(), ca);
    }
    assert!(
        secret["data"].get("ca.key").is_none(),
        "the CA key stays out"
    );

    // cert-manager: the cainjector's annotation names the serving
    // Certificate, which names the Secret the Deployment mounts.
    let entries = get("overlays/cert-manager");
    let mwc = object(
        entries,
        "MutatingWebhookConfiguration",
        "agent-sidecar-injector",
    );
    assert_eq!(
        mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "agent-sidecar-system/agent-sidecar-injector-tls"
    );
    let cert = object(entries, "Certificate", "agent-sidecar-injector-tls");
    assert_eq!(cert["metadata"]["namespace"], "agent-sidecar-system");
    assert_eq!(cert["spec"]["secretName"], "agent-sidecar-injector-tls");
    assert_eq!(
        cert["spec"]["dnsNames"][0],
        "agent-sidecar-injector.agent-sidecar-system.svc"
    );
    assert_eq!(cert["spec"]["issuerRef"]["name"], "agent-sidecar-ca");
    let ca_cert = object(entries, "Certificate", "agent-sidecar-injector-ca");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let issuer = object(entries, "Issuer", "agent-sidecar-ca");
    assert_eq!(
        issuer["spec"]["ca"]["secretName"],
        "agent-sidecar-injector-ca"
    );

    // The agent namespace: labelled, its ConfigMaps under the names the
    // webhook mounts, its Deployment annotated with an owner.
    let entries = get("agents/example");
    let ns = object(entries, "Namespace", "agents");
    assert_eq!(ns["metadata"]["labels"]["agent-sidecar.io/inject"], "true");
    let policy = object(entries, "ConfigMap", "agent-sidecar-policy");
    assert!(policy["data"]["org.yaml"].is_string());
    let config = object(entries, "ConfigMap", "agent-sidecar-config");
    assert!(config["data"]["sidecar.yaml"].is_string());
    let agent = object(entries, "Deployment", "procurement-agent");
    let annotations = &agent["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["agent-sidecar.io/owner"].is_string());
    assert_eq!(
        annotations["agent-sidecar.io/agent-id"],
        "procurement-agent"
    );
    let np = object(entries, "NetworkPolicy", "agent-sidecar-admin");
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 9090);

    let monitor = object(get("monitoring"), "PodMonitor", "agent-sidecar");
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["port"],
        agent_sidecar::inject::patch::ADMIN_PORT_NAME
    );
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["path"],
        "/metrics"
    );
}

/// The webhook's configuration as the base Deployment gives it.
fn webhook() -> Webhook {
    Webhook::defaults("registry.example.com/agent-sidecar:0.1.0")
}

/// The pods the webhook makes of every AdmissionReview fixture that it
/// injects: the JSONPatch of its response applied to the request's pod.
fn injected_pods(dir: &Path) -> Vec<PathBuf> {
    use base64::Engine as _;
    let fixtures = repo_root().join("agent-sidecar/tests/data/admission");
    let mut pods = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for fixture in names {
        let body = std::fs::read(&fixture).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        // Posted by the namespace entry (/mutate/namespace) or the pod
        // entry (/mutate) of the MutatingWebhookConfiguration.
        for (namespace_selected, entry) in [(true, "ns"), (false, "pod")] {
            let out = webhook().review_json(&body, namespace_selected).unwrap();
            let Some(patch) = out["response"]["patch"].as_str() else {
                continue;
            };
            let patch = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .unwrap();
            let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
            let mut pod = request["request"]["object"].clone();
            json_patch::patch(&mut pod, &patch).expect("the patch applies");
            let stem = fixture.file_stem().unwrap().to_str().unwrap();
            let path = dir.join(format!("{stem}-{entry}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(&pod).unwrap()).unwrap();
            pods.push(path);
        }
    }
    pods
}

#[test]
fn injected_pods_validate_against_kubernetes_1_33() {
    let tmp = TempDir::new();
    let pods = injected_pods(tmp.path());
    assert!(pods.len() >= 2, "injected fixtures: {pods:?}");
    let (ok, entries, text) = validate(&pods, tmp.path());
    assert!(ok, "injected pods invalid:\n{text}");
    assert_eq!(entries.len(), pods.len());
    for e in &entries {
        assert_eq!(e["result"], "valid", "{e}");
        let inits = e["object"]["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(inits[0]["name"], "agent-sidecar");
        assert_eq!(inits[0]["restartPolicy"], "Always");
    }
    eprintln!(
        "{} injected pods valid against {K8S_VERSION}",
        entries.len()
    );
}

/// Runs the agent-namespace admission policy on `pods`; the denial
/// messages per pod, in order.
fn admission_policy(pods: &[PathBuf]) -> Vec<Vec<String>> {
    let out = Command::new(test_python())
        .arg(check_script())
        .arg("cel")
        .arg(repo_root().join("deploy/kubernetes/base/agent-pods-policy.yaml"))
        .args(pods)
        .output()
        .expect("python k8s_check.py cel");
    assert!(out.status.success(), "cel: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["denied"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn agent_namespace_policy_admits_injected_pods_and_refuses_forged_ones() {
    let tmp = TempDir::new();
    let pods = injected_pods(tmp.path());
    for (pod, denied) in pods.iter().zip(admission_policy(&pods)) {
        assert!(denied.is_empty(), "{} denied: {denied:?}", pod.display());
    }
    let base: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("labelled_pod-pod.json")).unwrap())
            .unwrap();
    type Forge = fn(&mut Value);
    let forgeries: [(&str, Forge, &str); 8] = [
        (
            "agent adds NET_ADMIN",
            |p| {
                p["spec"]["containers"][0]["securityContext"] =
                    json!({"capabilities": {"add": ["NET_ADMIN"]}})
            },
            "may be privileged or add capabilities",
        ),
        (
            "agent privileged",
            |p| p["spec"]["containers"][0]["securityContext"] = json!({"privileged": true}),
            "may be privileged or add capabilities",
        ),
        (
            "agent mounts the host bpffs",
            |p| {
                p["spec"]["containers"][0]["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "agent-sidecar-bpffs", "mountPath": "/bpf"}))
            },
            "may not mount the sidecar's volumes",
        ),
        (
            "agent mounts the sidecar CA key",
            |p| {
                p["spec"]["containers"][0]["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "agent-sidecar-ca-key", "mountPath": "/k"}))
            },
            "may not mount the sidecar's volumes",
        ),
        (
            "another hostPath",
            |p| {
                p["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "root", "hostPath": {"path": "/"}}))
            },
            "hostPath volumes are the injected sidecar's only",
        ),
        (
            "hostPID",
            |p| p["spec"]["hostPID"] = json!(true),
            "may not share the node's network, PID or IPC namespace",
        ),
        (
            "a sidecar of another image",
            |p| p["spec"]["initContainers"][0]["image"] = json!("registry.example.com/evil:1"),
            "must be the injected one",
        ),
        (
            "the sidecar image running a shell",
            |p| p["spec"]["initContainers"][0]["command"] = json!(["/bin/sh"]),
            "must be the injected one",
        ),
    ];
    let mut paths = Vec::new();
    for (i, (_, forge, _)) in forgeries.iter().enumerate() {
        let mut pod = base.clone();
        forge(&mut pod);
        let path = tmp.path().join(format!("forged-{i}.json"));
        std::fs::write(&path, serde_json::to_vec(&pod).unwrap()).unwrap();
        paths.push(path);
    }
    for ((what, _, want), denied) in forgeries.iter().zip(admission_policy(&paths)) {
        assert!(
            denied.iter().any(|m| m.contains(want)),
            "{what}: want a denial containing {want:?}, got {denied:?}"
        );
    }
}

/// The validator fails on what is broken: these must not pass.
#[test]
fn validator_refuses_broken_manifests() {
    let tmp = TempDir::new();
    let cases = [
        (
            "unknown field",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n",
            "replica",
        ),
        (
            "wrong type",
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: \"443\"}]}\n",
            "is not of type 'integer'",
        ),
        (
            "misspelt kind",
            "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n",
            "no schema for apps/v1 Deploymnet",
        ),
        (
            "missing required field",
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: x}\nwebhooks: [{name: a.b.c, clientConfig: {}, admissionReviewVersions: [v1]}]\n",
            "sideEffects",
        ),
    ];
    for (what, yaml, want) in cases {
        let path = tmp.path().join(format!("{}.yaml", what.replace(' ', "-")));
        std::fs::write(&path, yaml).unwrap();
        let (ok, entries, text) = validate(&[path], tmp.path());
        assert!(!ok, "{what}: passed:\n{text}");
        assert_eq!(entries[0]["result"], "invalid", "{what}");
        let reason = entries[0]["reason"].as_str().unwrap();
        assert!(reason.contains(want), "{what}: {reason}");
    }
    // A broken kustomization fails to render: a resource it names is absent.
    let dir = tmp.path().join("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n  - deployment.yaml\n",
    )
    .unwrap();
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missing resource rendered");
}

/// deploy/kubernetes/agents/example/policies is examples/policies (without
/// its scenario fixtures), flattened; and it compiles as a policy set.
#[test]
fn example_policy_configmap_is_the_example_policy_set() {
    let src = repo_root().join("examples/policies");
    let copy = repo_root().join("deploy/kubernetes/agents/example/policies");
    let mut want = BTreeSet::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "tests" {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|x| x == "yaml") {
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                assert!(want.insert(name.clone()), "two example files named {name}");
                let copied = std::fs::read(copy.join(&name))
                    .unwrap_or_else(|e| panic!("{name} not copied to {}: {e}", copy.display()));
                assert!(
                    copied == std::fs::read(&path).unwrap(),
                    "{name} differs from {}: copy it again",
                    path.display()
                );
            }
        }
    }
    let have: BTreeSet<String> = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(have, want, "files of {}", copy.display());
    // Every copied file is in the ConfigMap.
    let kustomization = std::fs::read_to_string(
        repo_root().join("deploy/kubernetes/agents/example/kustomization.yaml"),
    )
    .unwrap();
    for name in &want {
        assert!(
            kustomization.contains(&format!("- policies/{name}\n")),
            "{name} missing from the configMapGenerator"
        );
    }
    let out = Command::new(agent_sidecar_tests::sidecar_bin())
        .args(["policy", "check"])
        .arg(&copy)
        .output()
        .expect("agent-sidecar policy check (cargo build --workspace --bins first)");
    assert!(out.status.success(), "policy check of the copy: {out:?}");
}

/// The Dockerfile, parsed by BuildKit's parser: two stages, every source it
/// copies exists and is not excluded from the build context, every
/// workspace member is copied, the toolchain matches `cargo xtask setup`'s,
/// and the image runs as a non-root user by default.
#[test]
fn dockerfile_builds_from_the_repository_as_it_is() {
    let root = repo_root();
    let out = Command::new(test_python())
        .arg(check_script())
        .arg("dockerfile")
        .arg(root.join("Dockerfile"))
        .output()
        .expect("python k8s_check.py dockerfile");
    assert!(out.status.success(), "dockerfile parse: {out:?}");
    let instructions: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let froms: Vec<&Value> = instructions.iter().filter(|i| i["cmd"] == "FROM").collect();
    let stages: Vec<&str> = froms
        .iter()
        .map(|f| {
            f["value"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(stages, ["build", "runtime"]);
    assert!(froms[1]["value"][0].as_str().unwrap().ends_with("-slim"));

    let ignored: Vec<String> = std::fs::read_to_string(root.join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut copied = BTreeSet::new();
    let runtime_at = instructions.iter().position(|i| i == froms[1]).unwrap();
    for (at, copy) in instructions.iter().enumerate() {
        if copy["cmd"] != "COPY" {
            continue;
        }
        let from_stage = copy["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("--from="));
        let values = copy["value"].as_array().unwrap();
        for src in &values[..values.len() - 1] {
            let src = src.as_str().unwrap();
            if from_stage {
                assert!(at > runtime_at, "COPY --from in the build stage");
                continue;
            }
            assert!(root.join(src).exists(), "COPY {src}: not in the repository");
            assert!(
                !ignored
                    .iter()
                    .any(|i| i == src || i.trim_end_matches('/') == src),
                "COPY {src}: excluded by .dockerignore"
            );
            copied.insert(src.to_owned());
        }
    }
    let cargo_toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members_line = cargo_toml
        .lines()
        .find(|l| l.starts_with("members"))
        .unwrap();
    for member in members_line.split('"').skip(1).step_by(2) {
        assert!(
            copied.contains(member),
            "workspace member {member} not copied"
        );
    }
    for needed in ["Cargo.toml", "Cargo.lock", "ebpf"] {
        assert!(copied.contains(needed), "{needed} not copied");
    }
    let linker_arg = instructions
        .iter()
        .find_map(|i| {
            (i["cmd"] == "ARG")
                .then(|| i["value"][0].as_str().unwrap())
                .and_then(|v| v.strip_prefix("BPF_LINKER_VERSION="))
        })
        .expect("ARG BPF_LINKER_VERSION");
    let xtask = std::fs::read_to_string(root.join("xtask/src/main.rs")).unwrap();
    assert!(
        xtask.contains(&format!(
            "const BPF_LINKER_VERSION: &str = \"{linker_arg}\";"
        )),
        "bpf-linker {linker_arg} in the Dockerfile differs from cargo xtask setup's"
    );
    let build_run: String = instructions[..runtime_at]
        .iter()
        .filter(|i| i["cmd"] == "RUN")
        .map(|i| i["value"][0].as_str().unwrap().to_owned())
        .collect();
    for package in ["rustc-web", "libstd-rust-web-dev-bpf", "llvm-22-dev"] {
        assert!(
            xtask.contains(&format!("\"{package}\"")),
            "{package} not in xtask"
        );
        assert!(build_run.contains(package), "{package} not installed");
    }
    assert!(build_run.contains("cargo build --release --locked -p agent-sidecar"));
    let user = instructions[runtime_at..]
        .iter()
        .rfind(|i| i["cmd"] == "USER")
        .expect("USER in the runtime stage");
    assert!(!user["value"][0].as_str().unwrap().starts_with('0'));
    let entry = instructions
        .iter()
        .rfind(|i| i["cmd"] == "ENTRYPOINT")
        .unwrap();
    assert_eq!(entry["value"][0], "/usr/local/bin/agent-sidecar");
}
