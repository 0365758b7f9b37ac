//! Rebuild the eBPF object when the `bpf-linker` binary changes: the link step depends on it but
//! cargo cannot see that dependency.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
