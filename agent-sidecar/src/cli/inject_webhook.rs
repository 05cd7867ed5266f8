//! `agent-sidecar inject-webhook`: the Kubernetes mutating admission
//! webhook that adds the sidecar to agent pods. Settings come from flags or
//! `AGENT_SIDECAR_*` environment variables, gathered into one
//! [`InjectConfig`] so that a configuration file can fill it too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use agent_sidecar::inject::certs::ReloadingCert;
use agent_sidecar::inject::patch::{self, InjectConfig};
use agent_sidecar::inject::review::{self, Webhook};
use agent_sidecar::inject::server;

/// `inject-webhook` flags.
#[derive(Args, Debug)]
pub(crate) struct InjectWebhookArgs {
    /// Address the HTTPS server listens on.
    #[arg(
        long,
        env = "AGENT_SIDECAR_WEBHOOK_LISTEN",
        default_value = "0.0.0.0:8443"
    )]
    listen: SocketAddr,
    /// PEM certificate chain served (reloaded when it changes).
    #[arg(
        long,
        env = "AGENT_SIDECAR_WEBHOOK_TLS_CERT",
        default_value = "/etc/agent-sidecar/webhook-tls/tls.crt"
    )]
    tls_cert: PathBuf,
    /// PEM private key of --tls-cert (reloaded when it changes).
    #[arg(
        long,
        env = "AGENT_SIDECAR_WEBHOOK_TLS_KEY",
        default_value = "/etc/agent-sidecar/webhook-tls/tls.key"
    )]
    tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "AGENT_SIDECAR_WEBHOOK_CERT_RELOAD", default_value = "10s", value_parser = humantime::parse_duration)]
    cert_reload_interval: Duration,
    /// Image of the injected sidecar.
    #[arg(long, env = "AGENT_SIDECAR_SIDECAR_IMAGE")]
    sidecar_image: String,
    /// The webhook's own namespace (never injected).
    #[arg(long, env = "AGENT_SIDECAR_NAMESPACE", default_value = review::DEFAULT_NAMESPACE)]
    namespace: String,
    /// Port of the sidecar's explicit proxy on the pod's loopback.
    #[arg(long, env = "AGENT_SIDECAR_PROXY_PORT", default_value_t = patch::DEFAULT_PROXY_PORT)]
    proxy_port: u16,
    /// Port of the sidecar's admin surface (/readyz, /metrics).
    #[arg(long, env = "AGENT_SIDECAR_ADMIN_PORT", default_value_t = patch::DEFAULT_ADMIN_PORT)]
    admin_port: u16,
    /// ConfigMap (in the pod's namespace) holding the policies.
    #[arg(long, env = "AGENT_SIDECAR_POLICY_CONFIGMAP", default_value = patch::DEFAULT_POLICY_CONFIG_MAP)]
    policy_configmap: String,
    /// ConfigMap (in the pod's namespace) holding the CA bundle (ca.crt).
    #[arg(long, env = "AGENT_SIDECAR_CA_BUNDLE_CONFIGMAP", default_value = patch::DEFAULT_CA_BUNDLE_CONFIG_MAP)]
    ca_bundle_configmap: String,
    /// Secret (in the pod's namespace) holding the sidecar CA's certificate and key.
    #[arg(long, env = "AGENT_SIDECAR_CA_SECRET", default_value = patch::DEFAULT_CA_SECRET)]
    ca_secret: String,
    /// Host path of the bpffs.
    #[arg(long, env = "AGENT_SIDECAR_HOST_BPFFS", default_value = patch::DEFAULT_HOST_BPFFS)]
    host_bpffs: String,
    /// Host path of the cgroup v2 hierarchy.
    #[arg(long, env = "AGENT_SIDECAR_HOST_CGROUPFS", default_value = patch::DEFAULT_HOST_CGROUPFS)]
    host_cgroupfs: String,
}

impl InjectWebhookArgs {
    fn webhook(&self) -> Webhook {
        Webhook {
            inject: InjectConfig {
                image: self.sidecar_image.clone(),
                proxy_port: self.proxy_port,
                admin_port: self.admin_port,
                policy_config_map: self.policy_configmap.clone(),
                ca_bundle_config_map: self.ca_bundle_configmap.clone(),
                ca_secret: self.ca_secret.clone(),
                host_bpffs: self.host_bpffs.clone(),
                host_cgroupfs: self.host_cgroupfs.clone(),
            },
            namespace: self.namespace.clone(),
        }
    }
}

/// Runs the webhook until SIGTERM or SIGINT.
pub(crate) fn run(args: InjectWebhookArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent-sidecar: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("agent-sidecar: {e:#}");
            1
        }
    }
}

async fn serve(args: InjectWebhookArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = Arc::new(ReloadingCert::new(
        args.tls_cert.clone(),
        args.tls_key.clone(),
        provider,
    )?);
    let tls = server::tls_config(cert.clone()).context("webhook TLS configuration")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "injection webhook serving");
    tokio::spawn(cert.watch(args.cert_reload_interval));
    let webhook = Arc::new(args.webhook());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = server::serve(listener, tls, webhook) => { r.context("webhook listener failed")?; }
        _ = term.recv() => tracing::info!("SIGTERM: injection webhook stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: injection webhook stopping"),
    }
    Ok(())
}
