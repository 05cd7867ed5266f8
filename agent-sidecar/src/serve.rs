//! `agent-sidecar serve`: the long-running sidecar of a Kubernetes pod.
//! It governs every other container of the pod and starts none itself.
//!
//! [`serve`] shares `run`'s phases ([`crate::run`]): the plan and the
//! audit trail, the operator listeners, the kernel enforcement, the
//! resolver, proxies and gateway. What differs:
//!
//! 1. **the pod** ([`pod`]): its cgroup found from the pod UID under the
//!    host's cgroupfs (both kubelet drivers), and the sidecar's own
//!    container under it;
//! 2. **enforcement at the pod's cgroup**: the programs are attached to
//!    the pod's cgroup, so every container under it, present or created
//!    later (a restart), is governed from its first instruction by the
//!    kernel's cgroup hierarchy, with no watch and no window; only the
//!    sidecar's own container is exempt, by its exact cgroup id;
//! 3. **identity** ([`identity`]): the agent id, owner, team and purpose
//!    from the pod's annotations, and an instance id from the pod name
//!    that names the pins, lock and state, so that replicas never share
//!    them;
//! 4. **no agent process**: `serve` waits for SIGTERM (or SIGINT), then
//!    drains: `/readyz` fails at once, the services stop within
//!    `--drain-grace`, the audit trail is closed and shipped. The
//!    programs stay pinned and attached (they deny while no sidecar
//!    runs); the next `serve` of the pod replaces them after attaching its
//!    own generation, so a sidecar restart opens no window.

pub mod identity;
pub mod pod;

use std::{path::PathBuf, time::Duration};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::run::{self, PodContext, RunError, RunOptions};

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The shared sidecar options (no command).
    pub run: RunOptions,
    /// The pod's UID.
    pub pod_uid: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's namespace.
    pub pod_namespace: Option<String>,
    /// The host's cgroup v2 mount.
    pub host_cgroupfs: PathBuf,
    /// The sidecar's own container cgroup, when configured.
    pub sidecar_cgroup: Option<PathBuf>,
    /// Owner, team, purpose from the pod's annotations.
    pub owner: Option<String>,
    /// The owner's team.
    pub team: Option<String>,
    /// What the agent is for.
    pub purpose: Option<String>,
    /// How long in-flight calls may take to finish on SIGTERM.
    pub drain_grace: Duration,
}

/// Governs the pod until SIGTERM; returns the exit code (0 after a clean
/// drain).
pub async fn serve(opts: ServeOptions) -> Result<i32, RunError> {
    run::harden_sidecar();
    let serve_err = |m: String| RunError::Serve(m);
    let agent_id = opts.run.agent_id.clone().ok_or_else(|| {
        serve_err(
            "serve needs --agent-id (or AGENT_SIDECAR_AGENT_ID from the pod's annotation): the id of the agent's document in the policy set".into(),
        )
    })?;
    let pod_cgroup =
        pod::find(&opts.host_cgroupfs, &opts.pod_uid).map_err(|e| serve_err(e.to_string()))?;
    let hints = pod::OwnCgroupHints::of_self(opts.sidecar_cgroup.clone())
        .map_err(|e| RunError::Io("reading /proc/self/cgroup", e))?;
    let own = pod::own_cgroup(&opts.host_cgroupfs, &pod_cgroup, &hints)
        .map_err(|e| serve_err(e.to_string()))?;
    let instance_id =
        identity::instance_id(opts.pod_namespace.as_deref(), &opts.pod_name, &opts.pod_uid);
    info!(
        agent_id = %agent_id,
        instance_id = %instance_id,
        pod_uid = %opts.pod_uid,
        pod_cgroup = %pod_cgroup.display(),
        sidecar_cgroup = %own.display(),
        owner = opts.owner.as_deref().unwrap_or(""),
        team = opts.team.as_deref().unwrap_or(""),
        "governing the pod's containers"
    );
    let mut ropts = opts.run.clone();
    ropts.cgroup = Some(pod_cgroup);
    ropts.exempt_cgroups = vec![own];
    // The programs outlive the sidecar: a restart must open no window.
    ropts.keep_pinned = true;
    ropts.pod = Some(PodContext {
        instance_id,
        owner: opts.owner.clone(),
        team: opts.team.clone(),
        purpose: opts.purpose.clone(),
    });
    let mut term = signal(SignalKind::terminate()).map_err(|e| RunError::Io("SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| RunError::Io("SIGINT", e))?;
    run::check_fleet_controls(&ropts)?;
    let (opened, plan) = run::Opened::open(&ropts, &agent_id)?;
    let code = governed(
        &ropts,
        &agent_id,
        plan,
        &opened,
        (&mut term, &mut int),
        opts.drain_grace,
    )
    .await;
    opened.close(&code).await;
    code
}

async fn governed(
    opts: &RunOptions,
    agent_id: &str,
    plan: run::EgressPlan,
    opened: &run::Opened,
    (term, int): (
        &mut tokio::signal::unix::Signal,
        &mut tokio::signal::unix::Signal,
    ),
    grace: Duration,
) -> Result<i32, RunError> {
    let governing = run::Governing::start(opts, agent_id, plan, opened).await?;
    info!(agent_id = %agent_id, "serving: programs attached, resolver listening, policies loaded");
    let signal = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(agent_id = %agent_id, signal, grace_s = grace.as_secs_f64(), "draining");
    // Not ready from now on: the kubelet and the fleet stop sending.
    opened
        .metrics
        .readiness()
        .set(crate::metrics::Check::ResolverListening, false);
    // The proxies wait up to `grace` for their calls in flight; this
    // bound is the backstop for everything else.
    let stop = governing.stop(&opened.metrics, agent_id, true);
    match tokio::time::timeout(grace + Duration::from_secs(5), stop).await {
        Ok(done) => done?,
        Err(_) => warn!(
            agent_id = %agent_id,
            grace_s = grace.as_secs_f64(),
            "calls still in flight at the end of the drain grace were cut"
        ),
    }
    Ok(0)
}
