//! The JSONPatch that injects the sidecar into a pod.

use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, HostPathVolumeSource, ObjectFieldSelector, Pod, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString};
use serde_json::Value;

use super::{IDENTITY_ANNOTATIONS, STATUS_ANNOTATION, STATUS_INJECTED};

/// Name of the injected init container (and prefix of its volumes).
pub const SIDECAR_NAME: &str = "agent-sidecar";
/// Name of the sidecar's admin port (scraped for `/metrics`).
pub const ADMIN_PORT_NAME: &str = "sidecar-admin";
/// Where agent containers find the CA bundle.
pub const CA_BUNDLE_DIR: &str = "/etc/agent-sidecar/ca";
/// File name of the CA bundle in its ConfigMap and directory.
pub const CA_BUNDLE_FILE: &str = "ca.crt";

/// Capabilities the sidecar keeps (all others are dropped), each with why.
pub const SIDECAR_CAPABILITIES: [(&str, &str); 2] = [
    (
        "BPF",
        "create the policy maps and load the egress programs (bpf(2) map and program commands)",
    ),
    (
        "NET_ADMIN",
        "attach cgroup socket programs to the agent containers' cgroups and close \
         connections a policy change revokes (sock_diag destroy)",
    ),
];

/// What the injected sidecar looks like; from `inject-webhook`'s flags.
#[derive(Debug, Clone)]
pub struct InjectConfig {
    /// Sidecar image reference.
    pub image: String,
    /// Port of the sidecar's explicit HTTP(S) proxy on the pod's loopback.
    pub proxy_port: u16,
    /// Port of the sidecar's admin surface (`/readyz`, `/metrics`).
    pub admin_port: u16,
    /// ConfigMap holding the policies, mounted into the sidecar.
    pub policy_config_map: String,
    /// ConfigMap holding the CA bundle (`ca.crt`) agents trust.
    pub ca_bundle_config_map: String,
    /// Secret holding the sidecar CA's certificate and key (sidecar only).
    pub ca_secret: String,
    /// Host path of the bpffs where the sidecar pins its programs.
    pub host_bpffs: String,
    /// Host path of the cgroup v2 hierarchy (mounted read-only).
    pub host_cgroupfs: String,
}

/// Default [`InjectConfig::proxy_port`].
pub const DEFAULT_PROXY_PORT: u16 = 3128;
/// Default [`InjectConfig::admin_port`].
pub const DEFAULT_ADMIN_PORT: u16 = 9090;
/// Default [`InjectConfig::policy_config_map`].
pub const DEFAULT_POLICY_CONFIG_MAP: &str = "agent-sidecar-policy";
/// Default [`InjectConfig::ca_bundle_config_map`].
pub const DEFAULT_CA_BUNDLE_CONFIG_MAP: &str = "agent-sidecar-ca-bundle";
/// Default [`InjectConfig::ca_secret`].
pub const DEFAULT_CA_SECRET: &str = "agent-sidecar-ca";
/// Default [`InjectConfig::host_bpffs`].
pub const DEFAULT_HOST_BPFFS: &str = "/sys/fs/bpf";
/// Default [`InjectConfig::host_cgroupfs`].
pub const DEFAULT_HOST_CGROUPFS: &str = "/sys/fs/cgroup";

impl InjectConfig {
    /// The settings `inject-webhook` uses when no flag changes them, with
    /// the sidecar `image`.
    pub fn defaults(image: &str) -> Self {
        InjectConfig {
            image: image.to_string(),
            proxy_port: DEFAULT_PROXY_PORT,
            admin_port: DEFAULT_ADMIN_PORT,
            policy_config_map: DEFAULT_POLICY_CONFIG_MAP.to_string(),
            ca_bundle_config_map: DEFAULT_CA_BUNDLE_CONFIG_MAP.to_string(),
            ca_secret: DEFAULT_CA_SECRET.to_string(),
            host_bpffs: DEFAULT_HOST_BPFFS.to_string(),
            host_cgroupfs: DEFAULT_HOST_CGROUPFS.to_string(),
        }
    }
}

/// ConfigMap (in the pod's namespace) holding the sidecar's config file
/// under the key [`CONFIG_FILE`]; required, like the policy ConfigMap.
pub const CONFIG_CONFIG_MAP: &str = "agent-sidecar-config";
/// Key of the config file in [`CONFIG_CONFIG_MAP`].
pub const CONFIG_FILE: &str = "sidecar.yaml";
/// Secret (in the pod's namespace) holding the tool credentials the
/// gateway injects (`secret: NAME=file:/etc/agent-sidecar/secrets/KEY` in
/// the config file); optional, mounted 0440 into the sidecar only.
pub const SECRETS_SECRET: &str = "agent-sidecar-secrets";

/// Mount points inside the sidecar container.
const POLICY_DIR: &str = "/etc/agent-sidecar/policy";
const CONFIG_DIR: &str = "/etc/agent-sidecar/config";
const SECRETS_DIR: &str = "/etc/agent-sidecar/secrets";
const CA_SECRET_DIR: &str = "/etc/agent-sidecar/ca-key";
const BPFFS_DIR: &str = "/sys/fs/bpf";
const STATE_DIR: &str = "/run/agent-sidecar";
const HOST_CGROUP_DIR: &str = "/host/sys/fs/cgroup";

/// Environment variables the webhook sets in agent containers (replacing
/// any the pod set itself, so the agent cannot opt out of the proxy).
pub fn agent_env(config: &InjectConfig) -> Vec<EnvVar> {
    let proxy = format!("http://127.0.0.1:{}", config.proxy_port);
    let bundle = format!("{CA_BUNDLE_DIR}/{CA_BUNDLE_FILE}");
    [
        ("HTTPS_PROXY", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("https_proxy", proxy.as_str()),
        ("http_proxy", proxy.as_str()),
        ("NO_PROXY", "localhost,127.0.0.1,::1"),
        ("no_proxy", "localhost,127.0.0.1,::1"),
        ("SSL_CERT_FILE", bundle.as_str()),
        ("REQUESTS_CA_BUNDLE", bundle.as_str()),
        ("NODE_EXTRA_CA_CERTS", bundle.as_str()),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    })
    .collect()
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// The sidecar as a native sidecar: an init container that keeps running
/// (`restartPolicy: Always`), started before the agent containers and
/// considered started only once `/readyz` answers.
pub fn sidecar_container(config: &InjectConfig) -> Container {
    let mut env = vec![
        field_env("AGENT_SIDECAR_POD_UID", "metadata.uid"),
        field_env("AGENT_SIDECAR_POD_NAME", "metadata.name"),
        field_env("AGENT_SIDECAR_POD_NAMESPACE", "metadata.namespace"),
    ];
    env.extend(
        IDENTITY_ANNOTATIONS.iter().map(|(annotation, var)| {
            field_env(var, &format!("metadata.annotations['{annotation}']"))
        }),
    );
    let probe = |period, failures| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/readyz".to_owned()),
            port: IntOrString::Int(i32::from(config.admin_port)),
            host: Some("127.0.0.1".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    Container {
        name: SIDECAR_NAME.to_owned(),
        image: Some(config.image.clone()),
        args: Some(vec![
            "serve".to_owned(),
            format!("--config={CONFIG_DIR}/{CONFIG_FILE}"),
            format!("--policy-dir={POLICY_DIR}"),
            format!("--host-cgroupfs={HOST_CGROUP_DIR}"),
            format!("--bpffs={BPFFS_DIR}"),
            "--no-mount-bpffs".to_owned(),
            format!("--ca-cert={CA_SECRET_DIR}/tls.crt"),
            format!("--ca-key={CA_SECRET_DIR}/tls.key"),
            format!("--proxy-listen=127.0.0.1:{}", config.proxy_port),
            // `/readyz`, `/healthz`, `/metrics`; the kernel refuses the
            // agent containers this port.
            format!("--metrics-listen=0.0.0.0:{}", config.admin_port),
        ]),
        restart_policy: Some("Always".to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some(ADMIN_PORT_NAME.to_owned()),
            container_port: i32::from(config.admin_port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        // Measured (docs/kubernetes.md): 0.3 millicores and 41-43 MiB
        // idle, 16.5 millicores per 100 tool calls a second. No CPU limit:
        // a throttled sidecar holds the agent's calls, not the agent.
        resources: Some(ResourceRequirements {
            requests: Some(
                [("cpu", "50m"), ("memory", "96Mi")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
                    .collect(),
            ),
            limits: Some([("memory".to_owned(), Quantity("256Mi".to_owned()))].into()),
            ..ResourceRequirements::default()
        }),
        startup_probe: Some(probe(1, 60)),
        readiness_probe: Some(probe(5, 3)),
        volume_mounts: Some(vec![
            mount("agent-sidecar-config", CONFIG_DIR, true),
            mount("agent-sidecar-policy", POLICY_DIR, true),
            mount("agent-sidecar-secrets", SECRETS_DIR, true),
            mount("agent-sidecar-ca-key", CA_SECRET_DIR, true),
            mount("agent-sidecar-bpffs", BPFFS_DIR, false),
            // State, locks, the audit log and the approvals journal: the
            // root filesystem is read-only, and a restarted sidecar
            // container finds them again (the volume lives with the pod).
            mount("agent-sidecar-state", STATE_DIR, false),
            mount("agent-sidecar-host-cgroup", HOST_CGROUP_DIR, true),
        ]),
        security_context: Some(SecurityContext {
            // Root inside the container, but only with the capabilities
            // below: pins under the host bpffs are root-owned.
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: Some(
                    SIDECAR_CAPABILITIES
                        .iter()
                        .map(|(c, _)| (*c).to_owned())
                        .collect(),
                ),
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The volumes the sidecar and the agents mount.
pub fn volumes(config: &InjectConfig) -> Vec<Volume> {
    let host = |name: &str, path: &str, kind: &str| Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_owned(),
            type_: Some(kind.to_owned()),
        }),
        ..Volume::default()
    };
    let config_map = |name: &str, map: &str| Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: map.to_owned(),
            optional: Some(false),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    vec![
        config_map("agent-sidecar-config", CONFIG_CONFIG_MAP),
        config_map("agent-sidecar-policy", &config.policy_config_map),
        config_map("agent-sidecar-ca-bundle", &config.ca_bundle_config_map),
        Volume {
            name: "agent-sidecar-ca-key".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(config.ca_secret.clone()),
                // Group-readable, never world-readable.
                default_mode: Some(0o440),
                optional: Some(false),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "agent-sidecar-secrets".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(SECRETS_SECRET.to_owned()),
                // Group-readable (fsGroup), never world-readable; a pod
                // whose agent calls no credentialed tool needs none.
                default_mode: Some(0o440),
                optional: Some(true),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        host("agent-sidecar-bpffs", &config.host_bpffs, "Directory"),
        Volume {
            name: "agent-sidecar-state".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        host(
            "agent-sidecar-host-cgroup",
            &config.host_cgroupfs,
            "Directory",
        ),
    ]
}

/// Escapes one JSON Pointer reference token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn add(path: &str, value: Value) -> Result<PatchOperation, serde_json::Error> {
    Ok(PatchOperation::Add(AddOperation {
        path: path.parse().map_err(serde::de::Error::custom)?,
        value,
    }))
}

/// Appends `items` to the array at `path`, creating it when absent.
fn append<T: serde::Serialize>(
    ops: &mut Vec<PatchOperation>,
    path: &str,
    present: bool,
    items: &[T],
    first: bool,
) -> Result<(), serde_json::Error> {
    if !present {
        return add(path, serde_json::to_value(items)?).map(|op| ops.push(op));
    }
    for item in items {
        let at = if first {
            format!("{path}/0")
        } else {
            format!("{path}/-")
        };
        ops.push(add(&at, serde_json::to_value(item)?)?);
    }
    Ok(())
}

/// The patch injecting the sidecar into `pod`. The sidecar goes first
/// among the init containers so that later init containers are already
/// governed; each agent container gets [`agent_env`] (overriding its own
/// values of those names) and the CA bundle mounted read-only.
pub fn patch(pod: &Pod, config: &InjectConfig) -> Result<Patch, serde_json::Error> {
    let mut ops = Vec::new();
    let annotations_present = pod.metadata.annotations.is_some();
    if annotations_present {
        let path = format!("/metadata/annotations/{}", escape(STATUS_ANNOTATION));
        ops.push(add(&path, Value::from(STATUS_INJECTED))?);
    } else {
        let value = serde_json::json!({ STATUS_ANNOTATION: STATUS_INJECTED });
        ops.push(add("/metadata/annotations", value)?);
    }
    let spec = pod.spec.clone().unwrap_or_default();
    append(
        &mut ops,
        "/spec/initContainers",
        spec.init_containers.is_some(),
        &[sidecar_container(config)],
        true,
    )?;
    append(
        &mut ops,
        "/spec/volumes",
        spec.volumes.is_some(),
        &volumes(config),
        false,
    )?;
    let ours = agent_env(config);
    for (i, container) in spec.containers.iter().enumerate() {
        let mut env: Vec<EnvVar> = container
            .env
            .iter()
            .flatten()
            .filter(|e| !ours.iter().any(|o| o.name == e.name))
            .cloned()
            .collect();
        env.extend(ours.iter().cloned());
        ops.push(add(
            &format!("/spec/containers/{i}/env"),
            serde_json::to_value(&env)?,
        )?);
        let mut mounts: Vec<VolumeMount> = container
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.mount_path != CA_BUNDLE_DIR && m.name != "agent-sidecar-ca-bundle")
            .cloned()
            .collect();
        mounts.push(mount("agent-sidecar-ca-bundle", CA_BUNDLE_DIR, true));
        let path = format!("/spec/containers/{i}/volumeMounts");
        ops.push(add(&path, serde_json::to_value(&mounts)?)?);
    }
    Ok(Patch(ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The injected sidecar's command line, with the variables the
    /// downward API gives it, is one `serve` accepts.
    #[test]
    fn the_injected_arguments_are_a_valid_serve_command_line() {
        let config = InjectConfig::defaults("agent-sidecar:test");
        let container = sidecar_container(&config);
        // The config file is the namespace's ConfigMap in a pod; here an
        // empty one stands in for it.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CONFIG_FILE);
        std::fs::write(&file, "{}\n").unwrap();
        let mut argv: Vec<std::ffi::OsString> = vec!["agent-sidecar".into()];
        let mut configs = 0;
        argv.extend(container.args.unwrap().into_iter().map(|a| {
            if a == format!("--config={CONFIG_DIR}/{CONFIG_FILE}") {
                configs += 1;
                format!("--config={}", file.display()).into()
            } else {
                a.into()
            }
        }));
        assert_eq!(configs, 1, "the sidecar is given its config file once");
        let env: std::collections::HashMap<String, std::ffi::OsString> = container
            .env
            .unwrap()
            .into_iter()
            .map(|e| (e.name, "3f1c2a9e-7b4d-4e8a-9c11-0d5e6f7a8b9c".into()))
            .collect();
        let cli = crate::config::args::run_cli();
        let resolved = crate::config::resolve(&cli, "serve", &argv, &|k| env.get(k).cloned())
            .unwrap_or_else(|e| panic!("{e}"));
        let matches = cli
            .clone()
            .try_get_matches_from(&resolved.argv)
            .unwrap_or_else(|e| panic!("{e}"));
        let serve = matches.subcommand_matches("serve").expect("serve");
        for (id, want) in [
            ("proxy_listen", "127.0.0.1:3128"),
            ("metrics_listen", "0.0.0.0:9090"),
        ] {
            let got = serve
                .get_raw(id)
                .and_then(|mut v| v.next())
                .map(|v| v.to_string_lossy().into_owned());
            assert_eq!(got.as_deref(), Some(want), "{id}");
        }
        // Every variable the webhook sets is a key serve reads.
        let keys: Vec<String> = crate::config::keys(cli.find_subcommand("serve").unwrap())
            .into_iter()
            .map(|k| crate::config::env_name(&k.name))
            .collect();
        for var in env.keys() {
            assert!(keys.contains(var), "{var} is read by nothing");
        }
    }
}
