//! Builds the eBPF object with `aya_build` and the pinned eBPF toolchain.
use anyhow::{Context as _, anyhow};

/// The toolchain that compiles `snapshot-ebpf`: the one place it is pinned.
///
/// It must be a nightly (the bpfel target needs `-Z build-std=core`) of Rust >= 1.98 (aya-ebpf
/// 0.3) whose LLVM is 22, the LLVM bpf-linker 0.13.0 is built against (`--features llvm-22`):
/// bitcode from a nightly with LLVM 23 makes bpf-linker fail with "Invalid record".
/// nightly-2026-07-20 is rustc 1.99.0-nightly with LLVM 22.1.8. `cargo xtask setup` installs it
/// (reading this constant) with rust-src.
pub const EBPF_TOOLCHAIN: &str = "nightly-2026-07-20";

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata failed")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "snapshot-ebpf")
        .ok_or_else(|| anyhow!("snapshot-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("snapshot-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(EBPF_TOOLCHAIN),
    )?;
    // `AYA_BUILD_SKIP=1` (the fuzz targets, which load no program): an empty object, which
    // `session::load` refuses with a clear error.
    let object = std::path::Path::new(&std::env::var("OUT_DIR")?).join("snapshot");
    if !object.exists() {
        std::fs::write(object, [])?;
    }
    Ok(())
}
