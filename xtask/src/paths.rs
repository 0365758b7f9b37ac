//! Where things live: the workspace, the cache of installed tools and unpacked kernels.

use std::{path::PathBuf, sync::OnceLock};

use anyhow::Context as _;

pub use crate::toolchain::{cache, tools};

/// The workspace root (parent of `xtask/`).
#[must_use]
pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), std::path::Path::to_path_buf)
}

/// The workspace's `cargo metadata` (no dependencies), read once.
pub fn metadata() -> anyhow::Result<&'static cargo_metadata::Metadata> {
    static METADATA: OnceLock<cargo_metadata::Metadata> = OnceLock::new();
    if let Some(m) = METADATA.get() {
        return Ok(m);
    }
    let m = cargo_metadata::MetadataCommand::new()
        .manifest_path(workspace().join("Cargo.toml"))
        .no_deps()
        .exec()
        .context("`cargo metadata` failed")?;
    Ok(METADATA.get_or_init(|| m))
}

/// The workspace's target directory (`CARGO_TARGET_DIR` and cargo's configuration included).
pub fn target() -> anyhow::Result<PathBuf> {
    Ok(metadata()?.target_directory.clone().into_std_path_buf())
}

/// Unpacked Debian kernels, one directory per package.
#[must_use]
pub fn kernels() -> PathBuf {
    cache().join("kernels")
}

/// Private apt configuration (sources with bookworm-backports, its own lists).
#[must_use]
pub fn apt() -> PathBuf {
    cache().join("apt")
}

/// Python virtualenv with Perfetto's trace schema (`perfetto_trace_pb2`), which the tests
/// decode exported traces with.
#[must_use]
pub fn venv() -> PathBuf {
    cache().join("python")
}

/// The virtualenv's interpreter; `cargo xtask test` passes it to the tests as `SNAPSHOT_PYTHON`.
#[must_use]
pub fn python() -> PathBuf {
    venv().join("bin/python")
}
