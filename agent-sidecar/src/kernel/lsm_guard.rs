//! The BPF-LSM socket guard (`lsm_cgroup/socket_create`): refuses every
//! socket family but Unix, IPv4 and IPv6 (netlink, vsock, packet...) and raw
//! inet sockets, with a deny event for each refusal. Where it is not in
//! force, the agent's seccomp filter refuses the same families (without
//! events) and packet and raw sockets also need `CAP_NET_RAW`, which the
//! agent never holds.
//!
//! Loading it needs the kernel's BTF (a ~5 MB parse) and the kernel may
//! refuse it (BPF LSM inactive, lockdown). A refusal cannot change before the
//! next boot, so it is remembered for the current boot in the state
//! directory and later starts skip the attempt.

use std::path::{Path, PathBuf};

use agent_sidecar_common::program_names;
use aya::{
    Ebpf,
    programs::{LsmCgroup, links::FdLink},
};
use tracing::warn;

use super::{KernelError, cgroup::AgentCgroup, pins::PinLayout};

/// The list of active LSMs.
const LSM_LIST: &str = "/sys/kernel/security/lsm";
/// Changes at every boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Attaches and pins the guard; returns whether it is in force. Every
/// failure is a warning: packet sockets stay refused by the capability drop.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    cgroup: &AgentCgroup,
    layout: &PinLayout,
    generation: u64,
) -> bool {
    if !bpf_lsm_active() {
        warn!(
            "the BPF LSM is not active (no `bpf` in {LSM_LIST}): the agent's seccomp \
             filter refuses other socket families (without deny events), not an eBPF program"
        );
        return false;
    }
    let marker = marker_path(&layout.state_dir);
    let boot = boot_id();
    if let Some(reason) = refused_this_boot(&marker, &boot) {
        warn!(
            reason = %reason,
            marker = %marker.display(),
            "the BPF-LSM socket guard was refused earlier this boot and is not retried \
             (delete the marker to retry); the agent's seccomp filter refuses other socket \
             families (without deny events)"
        );
        return false;
    }
    let name = program_names::LSM_SOCKET_CREATE;
    let attached = load_and_attach(ebpf, cgroup).and_then(|link| {
        link.pin(layout.link_path(generation, name))
            .map_err(|e| KernelError::bpf(name, "pinning the link", &e))
    });
    match attached {
        Ok(_) => true,
        Err(e) => {
            warn!(
                error = %e,
                "the BPF-LSM socket guard could not be attached (kernel lockdown or policy); \
                 the agent's seccomp filter refuses other socket families (without deny events)"
            );
            // Best effort: without the marker the next start simply retries.
            let _ = std::fs::write(&marker, format!("{boot}\n{e}\n"));
            false
        }
    }
}

fn marker_path(state_dir: &Path) -> PathBuf {
    state_dir.join("lsm-guard.refused")
}

fn boot_id() -> String {
    std::fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The recorded refusal, if it was recorded during this boot.
fn refused_this_boot(marker: &Path, boot: &str) -> Option<String> {
    let text = std::fs::read_to_string(marker).ok()?;
    let (recorded_boot, reason) = text.split_once('\n')?;
    (!boot.is_empty() && recorded_boot == boot).then(|| reason.trim().to_string())
}

/// Whether the BPF LSM is active, so `lsm_cgroup` programs run.
fn bpf_lsm_active() -> bool {
    std::fs::read_to_string(LSM_LIST).is_ok_and(|s| s.trim().split(',').any(|l| l == "bpf"))
}

/// Loads the guard against the kernel's BTF and attaches it to the cgroup.
fn load_and_attach(ebpf: &mut Ebpf, cgroup: &AgentCgroup) -> Result<FdLink, KernelError> {
    let name = program_names::LSM_SOCKET_CREATE;
    let btf =
        aya::Btf::from_sys_fs().map_err(|e| KernelError::bpf(name, "reading kernel BTF", &e))?;
    let program: &mut LsmCgroup = ebpf
        .program_mut(name)
        .ok_or_else(|| KernelError::Bpf {
            program: name.into(),
            action: "finding program",
            detail: "missing from the object".into(),
        })?
        .try_into()
        .map_err(|e| KernelError::bpf(name, "loading", &e))?;
    program
        .load(program_names::LSM_SOCKET_CREATE_HOOK, &btf)
        .map_err(|e| KernelError::bpf(name, "loading (verifier)", &e))?;
    let id = program
        .attach(cgroup.dir())
        .map_err(|e| KernelError::bpf(name, "attaching to the cgroup", &e))?;
    let link = program
        .take_link(id)
        .map_err(|e| KernelError::bpf(name, "taking the link", &e))?;
    Ok(link.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_remembered_for_the_boot_that_recorded_it_only() {
        let dir = std::env::temp_dir().join(format!("lsm-guard-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = marker_path(&dir);
        assert_eq!(refused_this_boot(&marker, "boot-a"), None, "no marker yet");
        std::fs::write(&marker, "boot-a\nEPERM under lockdown\n").unwrap();
        assert_eq!(
            refused_this_boot(&marker, "boot-a").as_deref(),
            Some("EPERM under lockdown")
        );
        assert_eq!(
            refused_this_boot(&marker, "boot-b"),
            None,
            "a reboot retries"
        );
        assert_eq!(refused_this_boot(&marker, ""), None, "unknown boot retries");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
