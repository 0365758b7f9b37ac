//! Rebuild the eBPF object when the `bpf-linker` binary changes: the link step depends on it but
//! cargo cannot see that dependency. `bpf_target_arch` (set by `aya_build` from the userspace
//! target: `pt_regs` differs per architecture) is declared for the cfg check.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\"))");
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
