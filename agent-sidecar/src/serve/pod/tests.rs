use std::fs;

use super::*;

const UID: &str = "3f1c2a9e-7b4d-4e8a-9c11-0d5e6f7a8b9c";

fn hints(proc_self: &str) -> OwnCgroupHints {
    OwnCgroupHints {
        configured: None,
        proc_self_cgroup: proc_self.to_string(),
        namespace_root_ino: None,
    }
}

#[test]
fn systemd_driver_pod_is_found_in_every_qos_class() {
    let under = UID.replace('-', "_");
    for (qos_dir, pod_dir) in [
        (
            "kubepods.slice/kubepods-burstable.slice".to_string(),
            format!("kubepods-burstable-pod{under}.slice"),
        ),
        (
            "kubepods.slice/kubepods-besteffort.slice".to_string(),
            format!("kubepods-besteffort-pod{under}.slice"),
        ),
        // Guaranteed pods sit directly under kubepods.slice.
        (
            "kubepods.slice".to_string(),
            format!("kubepods-pod{under}.slice"),
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let pod = root.path().join(&qos_dir).join(&pod_dir);
        let agent = pod.join("cri-containerd-aaaa.scope");
        let sidecar = pod.join("cri-containerd-bbbb.scope");
        fs::create_dir_all(&agent).unwrap();
        fs::create_dir_all(&sidecar).unwrap();
        // A different pod next to it is not taken.
        fs::create_dir_all(
            root.path()
                .join(&qos_dir)
                .join("kubepods-burstable-podffff.slice"),
        )
        .unwrap();
        assert_eq!(find(root.path(), UID).unwrap(), pod, "{qos_dir}");
        assert_eq!(
            find(root.path(), &UID.to_ascii_uppercase()).unwrap(),
            pod,
            "the UID is matched case-insensitively"
        );
        let rel = sidecar
            .strip_prefix(root.path())
            .unwrap()
            .display()
            .to_string();
        let own = own_cgroup(root.path(), &pod, &hints(&format!("0::/{rel}\n"))).unwrap();
        assert_eq!(own, sidecar);
    }
}

#[test]
fn cgroupfs_driver_pod_is_found_in_every_qos_class() {
    for qos in ["kubepods/burstable", "kubepods/besteffort", "kubepods"] {
        let root = tempfile::tempdir().unwrap();
        let pod = root.path().join(qos).join(format!("pod{UID}"));
        let sidecar = pod.join("0123abcd");
        fs::create_dir_all(pod.join("4567ef01")).unwrap();
        fs::create_dir_all(&sidecar).unwrap();
        assert_eq!(find(root.path(), UID).unwrap(), pod, "{qos}");
        let own = own_cgroup(
            root.path(),
            &pod,
            &hints(&format!("0::/{qos}/pod{UID}/0123abcd\n")),
        )
        .unwrap();
        assert_eq!(own, sidecar);
    }
}

#[test]
fn missing_ambiguous_and_forged_uids_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let err = find(root.path(), UID).unwrap_err().to_string();
    assert!(
        err.contains("no cgroup of pod") && err.contains("--host-cgroupfs"),
        "{err}"
    );
    // A UID that would walk out of the tree.
    for bad in ["../../etc", "abc", "3f1c2a9e/../x", ""] {
        assert!(
            matches!(find(root.path(), bad), Err(PodError::BadUid(_))),
            "{bad}"
        );
    }
    let under = UID.replace('-', "_");
    fs::create_dir_all(
        root.path()
            .join(format!("kubepods.slice/kubepods-pod{under}.slice")),
    )
    .unwrap();
    fs::create_dir_all(root.path().join(format!("kubepods/pod{UID}"))).unwrap();
    let err = find(root.path(), UID).unwrap_err().to_string();
    assert!(err.contains("more than one cgroup"), "{err}");
}

#[test]
fn own_cgroup_must_be_a_container_of_the_pod() {
    let root = tempfile::tempdir().unwrap();
    let pod = root.path().join(format!("kubepods/pod{UID}"));
    let sidecar = pod.join("side");
    fs::create_dir_all(sidecar.join("nested")).unwrap();
    fs::create_dir_all(root.path().join("elsewhere")).unwrap();
    // Outside the pod, the pod itself, deeper than a container: refused.
    for line in [
        "0::/elsewhere\n".to_string(),
        format!("0::/kubepods/pod{UID}\n"),
        format!("0::/kubepods/pod{UID}/side/nested\n"),
        format!("0::/kubepods/pod{UID}/../pod{UID}/side\n"),
    ] {
        let err = own_cgroup(root.path(), &pod, &hints(&line));
        assert!(err.is_err(), "{line} gave {err:?}");
    }
    // Configured, relative to the pod.
    let mut h = hints("0::/\n");
    h.configured = Some("side".into());
    assert_eq!(own_cgroup(root.path(), &pod, &h).unwrap(), sidecar);
}

#[test]
fn own_cgroup_in_a_private_namespace_is_found_by_inode() {
    let root = tempfile::tempdir().unwrap();
    let pod = root.path().join(format!("kubepods/pod{UID}"));
    let sidecar = pod.join("side");
    fs::create_dir_all(&sidecar).unwrap();
    fs::create_dir_all(pod.join("agent")).unwrap();
    let mut h = hints("0::/\n");
    let err = own_cgroup(root.path(), &pod, &h).unwrap_err().to_string();
    assert!(err.contains("--sidecar-cgroup"), "{err}");
    h.namespace_root_ino = Some(fs::metadata(&sidecar).unwrap().ino());
    assert_eq!(own_cgroup(root.path(), &pod, &h).unwrap(), sidecar);
    h.namespace_root_ino = Some(1);
    assert!(own_cgroup(root.path(), &pod, &h).is_err());
}
