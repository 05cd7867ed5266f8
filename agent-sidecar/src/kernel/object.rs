//! The eBPF object compiled from `ebpf/` by the build script.

use sha2::{Digest, Sha256};

/// The embedded object, 8-byte aligned as the ELF parser requires.
pub fn bytes() -> &'static [u8] {
    #[repr(C, align(8))]
    struct Aligned<T: ?Sized>(T);
    static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
        env!("OUT_DIR"),
        "/agent-sidecar-ebpf.o"
    )));
    &OBJECT.0
}

/// SHA-256 of the object, recorded with pinned state so a later run knows
/// which programs are attached.
pub fn digest() -> String {
    let d = Sha256::digest(bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}
