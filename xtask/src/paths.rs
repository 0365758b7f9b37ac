//! Where things live: the workspace, the cache of installed tools and unpacked kernels.

use std::path::PathBuf;

/// The workspace root (parent of `xtask/`).
#[must_use]
pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), std::path::Path::to_path_buf)
}

/// Cache outside the work tree, kept across clones so a second setup takes seconds:
/// `$SNAPSHOT_CACHE`, else `$XDG_CACHE_HOME/snapshot-controller`, else
/// `~/.cache/snapshot-controller`.
#[must_use]
pub fn cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("SNAPSHOT_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache"),
        PathBuf::from,
    );
    base.join("snapshot-controller")
}

/// `cargo install --root` of bpf-linker; its `bin/` goes first on PATH for builds.
#[must_use]
pub fn tools() -> PathBuf {
    cache().join("tools")
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

/// PATH with the tools directory first.
#[must_use]
pub fn path_with_tools() -> std::ffi::OsString {
    let mut paths = vec![tools().join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
