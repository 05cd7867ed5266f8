//! Compiles the eBPF programs in `../ebpf` for `bpfel-unknown-none` with
//! Debian's `rustc` and `bpf-linker`, and hands the object to the crate as
//! `$OUT_DIR/agent-sidecar-ebpf.o`. Installing that toolchain is one command:
//! `cargo xtask setup`.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const SETUP_HINT: &str = "the eBPF toolchain is missing; install it with `cargo xtask setup` \
(Debian packages rustc-web, libstd-rust-web-dev-bpf, llvm-22-dev and bpf-linker built against LLVM 22)";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let ebpf = root.join("ebpf");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for dir in [ebpf.join("src"), root.join("common/src")] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    for file in [
        ebpf.join("Cargo.toml"),
        ebpf.join("Cargo.lock"),
        root.join("common/Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rerun-if-env-changed=AGENT_SIDECAR_BPF_RUSTC");
    println!("cargo:rerun-if-env-changed=AGENT_SIDECAR_TOOLS");

    let rustc = env::var_os("AGENT_SIDECAR_BPF_RUSTC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/rustc"));
    let tools = env::var_os("AGENT_SIDECAR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".tools"));
    let linker_dir = tools.join("bin");
    if !rustc.exists() {
        panic!("{SETUP_HINT}: {} not found", rustc.display());
    }
    if !linker_dir.join("bpf-linker").exists() && which("bpf-linker").is_none() {
        panic!(
            "{SETUP_HINT}: bpf-linker not found in {} or on PATH",
            linker_dir.display()
        );
    }
    let path = match env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![linker_dir.clone()];
            dirs.extend(env::split_paths(&p));
            env::join_paths(dirs).expect("PATH")
        }
        None => linker_dir.clone().into_os_string(),
    };

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("ebpf-target");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ebpf)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC", &rustc)
        .env("RUSTC_BOOTSTRAP", "aya_ebpf")
        .env("PATH", &path);
    // The host build's settings must not leak into the BPF build.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{SETUP_HINT}: running cargo failed: {e}"));
    if !status.success() {
        panic!(
            "building the eBPF programs failed ({status}); if the error above is about a missing target, linker or `core`, {SETUP_HINT}"
        );
    }
    let object = target_dir.join("bpfel-unknown-none/release/agent-sidecar-ebpf");
    let dest = out.join("agent-sidecar-ebpf.o");
    std::fs::copy(&object, &dest)
        .unwrap_or_else(|e| panic!("copying {} failed: {e}", object.display()));
}

fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| Path::new(p).exists())
}
