//! Golden tests of the injection webhook on AdmissionReview v1 payloads:
//! the returned JSONPatch is applied to the pod and the result compared
//! with `tests/data/admission/expected/` (`UPDATE_GOLDEN=1` rewrites it).

use std::path::{Path, PathBuf};

use agent_sidecar::inject::review::Webhook;
use serde_json::Value;

const IMAGE: &str = "registry.example.com/agent-sidecar:0.1.0";

fn webhook() -> Webhook {
    Webhook::defaults(IMAGE)
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/admission")
}

/// Reviews fixture `name`; returns the response and the patched pod.
fn review(name: &str, namespace_selected: bool) -> (Value, Value) {
    let body = std::fs::read(dir().join(format!("{name}.json"))).expect("fixture");
    let out = webhook().review_json(&body, namespace_selected).unwrap();
    let request: Value = serde_json::from_slice(&body).unwrap();
    let response = out["response"].clone();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1", "{out}");
    assert_eq!(response["uid"], request["request"]["uid"], "uid echoed");
    let mut pod = request["request"]["object"].clone();
    if let Some(patch) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64_decode(patch);
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut pod, &patch).expect("patch applies to the pod");
    }
    (response, pod)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64 patch")
}

fn golden(name: &str, pod: &Value) {
    let path = dir().join("expected").join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(pod).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, want, "patched pod differs from {}", path.display());
}

fn warning(response: &Value) -> String {
    response["warnings"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Checks what every injected pod must hold.
fn assert_injected(pod: &Value) {
    assert_eq!(
        pod["metadata"]["annotations"]["agent-sidecar.io/status"],
        "injected"
    );
    let init = pod["spec"]["initContainers"].as_array().unwrap();
    let sidecar = &init[0];
    assert_eq!(sidecar["name"], "agent-sidecar");
    assert_eq!(sidecar["image"], IMAGE);
    assert_eq!(sidecar["restartPolicy"], "Always", "native sidecar");
    assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/readyz");
    let sc = &sidecar["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["BPF", "NET_ADMIN"])
    );
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    let env = sidecar["env"].as_array().unwrap();
    let owner = env
        .iter()
        .find(|e| e["name"] == "AGENT_SIDECAR_OWNER")
        .unwrap();
    assert_eq!(
        owner["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['agent-sidecar.io/owner']"
    );
    let volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for v in [
        "agent-sidecar-policy",
        "agent-sidecar-ca-bundle",
        "agent-sidecar-bpffs",
    ] {
        assert!(volumes.contains(&v), "{v} in {volumes:?}");
    }
    let cgroup = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "agent-sidecar-host-cgroup")
        .unwrap();
    assert_eq!(cgroup["hostPath"]["path"], "/sys/fs/cgroup");
    let mounts = sidecar["volumeMounts"].as_array().unwrap();
    let m = mounts
        .iter()
        .find(|m| m["name"] == "agent-sidecar-host-cgroup")
        .unwrap();
    assert_eq!(m["readOnly"], true, "host cgroupfs read-only");
    // The config file from the namespace's ConfigMap, named by --config.
    assert!(
        sidecar["args"].as_array().unwrap().contains(&Value::from(
            "--config=/etc/agent-sidecar/config/sidecar.yaml"
        )),
        "{sidecar}"
    );
    let volume = |name: &str| {
        pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"))
            .clone()
    };
    assert_eq!(
        volume("agent-sidecar-config")["configMap"]["name"],
        "agent-sidecar-config"
    );
    let secrets = volume("agent-sidecar-secrets");
    assert_eq!(
        secrets["secret"]["defaultMode"], 0o440,
        "never world-readable"
    );
    assert_eq!(secrets["secret"]["optional"], true);
    for name in ["agent-sidecar-config", "agent-sidecar-secrets"] {
        let m = mounts.iter().find(|m| m["name"] == name).unwrap();
        assert_eq!(m["readOnly"], true, "{name} read-only");
    }
    for container in pod["spec"]["containers"].as_array().unwrap() {
        let env = container["env"].as_array().unwrap();
        let get = |n: &str| -> Vec<&Value> { env.iter().filter(|e| e["name"] == n).collect() };
        let proxy = get("HTTPS_PROXY");
        assert_eq!(proxy.len(), 1, "one HTTPS_PROXY: {env:?}");
        assert_eq!(
            proxy[0]["value"], "http://127.0.0.1:3128",
            "the pod's own proxy replaced"
        );
        for n in [
            "HTTP_PROXY",
            "NO_PROXY",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
        ] {
            assert_eq!(get(n).len(), 1, "{n}");
        }
        assert_eq!(
            get("SSL_CERT_FILE")[0]["value"],
            "/etc/agent-sidecar/ca/ca.crt"
        );
        let mounts = container["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "agent-sidecar-ca-bundle" && m["readOnly"] == true)
        );
    }
}

/// Re-reviewing the patched pod changes nothing (idempotent).
fn assert_idempotent(name: &str, pod: &Value) {
    let body = std::fs::read(dir().join(format!("{name}.json"))).unwrap();
    let mut request: Value = serde_json::from_slice(&body).unwrap();
    request["request"]["object"] = pod.clone();
    let out = webhook()
        .review_json(&serde_json::to_vec(&request).unwrap(), true)
        .unwrap();
    assert_eq!(out["response"]["allowed"], true);
    assert!(
        out["response"]["patch"].is_null(),
        "second pass patches again: {out}"
    );
    assert!(warning(&out["response"]).contains("already injected"));
}

#[test]
fn labelled_pod_is_injected() {
    let (response, pod) = review("labelled_pod", false);
    assert_eq!(response["allowed"], true);
    assert_injected(&pod);
    assert_eq!(
        pod["spec"]["containers"][0]["env"][0]["name"], "LOG_LEVEL",
        "own env kept"
    );
    assert_idempotent("labelled_pod", &pod);
    golden("labelled_pod", &pod);
}

#[test]
fn pod_without_annotations_is_refused_for_owner() {
    let (response, _) = review("no_annotations", false);
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("agent-sidecar.io/owner")
    );
}

#[test]
fn unlabelled_pod_in_unlabelled_namespace_is_left_alone() {
    let (response, pod) = review("unlabelled_pod", false);
    assert_eq!(response["allowed"], true);
    assert!(response["patch"].is_null());
    assert!(warning(&response).contains("not injected"), "{response}");
    assert!(pod["spec"]["initContainers"].is_null());
}

#[test]
fn unlabelled_pod_in_labelled_namespace_is_injected() {
    let (response, pod) = review("unlabelled_pod", true);
    assert_eq!(response["allowed"], true);
    assert_injected(&pod);
    golden("unlabelled_pod_labelled_namespace", &pod);
}

#[test]
fn pod_choice_wins_over_namespace() {
    let (response, pod) = review("namespace_labelled_pod_opts_out", true);
    assert_eq!(response["allowed"], true);
    assert!(response["patch"].is_null());
    assert!(pod["spec"]["initContainers"].is_null());
}

#[test]
fn already_injected_pod_is_not_patched_again() {
    let (response, _) = review("already_injected", true);
    assert_eq!(response["allowed"], true);
    assert!(response["patch"].is_null());
    assert!(warning(&response).contains("already injected"));
}

#[test]
fn forged_status_annotation_is_refused() {
    let (response, _) = review("forged_status", true);
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not the sidecar")
    );
}

#[test]
fn missing_owner_is_refused_with_the_fix() {
    let (response, _) = review("missing_owner", false);
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("agent-sidecar.io/owner") && message.contains("add"),
        "{message}"
    );
}

#[test]
fn missing_or_invalid_agent_id_is_refused_with_the_fix() {
    let (response, _) = review("missing_agent_id", false);
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("agent-sidecar.io/agent-id") && message.contains("set"),
        "{message}"
    );
    // An id that would name another agent's pins is refused too.
    let mut body: Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("missing_agent_id.json")).unwrap(),
    )
    .unwrap();
    body["request"]["object"]["metadata"]["annotations"]["agent-sidecar.io/agent-id"] =
        Value::from("../payments-bot");
    let out = webhook()
        .review_json(&serde_json::to_vec(&body).unwrap(), false)
        .unwrap();
    assert_eq!(out["response"]["allowed"], false, "{out}");
}

#[test]
fn existing_init_containers_run_after_the_sidecar() {
    let (response, pod) = review("existing_init_containers", false);
    assert_eq!(response["allowed"], true);
    assert_injected(&pod);
    let init = pod["spec"]["initContainers"].as_array().unwrap();
    assert_eq!(init.len(), 2);
    assert_eq!(init[1]["name"], "migrate");
    golden("existing_init_containers", &pod);
}

#[test]
fn host_network_pod_is_skipped_with_a_reason() {
    let (response, pod) = review("host_network", true);
    assert_eq!(response["allowed"], true);
    assert!(response["patch"].is_null());
    assert!(warning(&response).contains("hostNetwork"), "{response}");
    assert!(pod["spec"]["initContainers"].is_null());
}

#[test]
fn system_namespace_is_skipped() {
    let (response, _) = review("system_namespace", true);
    assert_eq!(response["allowed"], true);
    assert!(response["patch"].is_null());
    assert!(
        warning(&response).contains("system namespace"),
        "{response}"
    );
}

#[test]
fn garbage_body_is_denied() {
    let out = webhook().review_json(b"{\"kind\":\"Nope\"}", true).unwrap();
    assert_eq!(out["response"]["allowed"], false, "{out}");
}
