//! The eBPF build's tools: their pins, where `cargo xtask setup` installs them and whether they
//! are there.
//!
//! One file shared by xtask and `snapshot-userspace/build.rs` (which includes it with `#[path]`),
//! so that a plain `cargo build` finds what setup installed, where setup installed it: keep it to
//! std, anyhow and `cargo_metadata`, and use every item in both.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

/// The pins of `[workspace.metadata.snapshot]` in the root Cargo.toml, their one home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    /// The toolchain that compiles snapshot-ebpf (`ebpf-toolchain`): a nightly whose LLVM is
    /// bpf-linker's.
    pub ebpf_toolchain: String,
    /// The bpf-linker release that links the eBPF object (`bpf-linker`).
    pub bpf_linker: String,
}

impl Pins {
    /// Reads the pins from the workspace's `cargo metadata`.
    pub fn read(metadata: &cargo_metadata::Metadata) -> anyhow::Result<Self> {
        let table = &metadata.workspace_metadata["snapshot"];
        let pin = |key: &str| {
            table
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| {
                    format!(
                        "no `{key} = \"…\"` in [workspace.metadata.snapshot] of {}",
                        metadata.workspace_root.join("Cargo.toml")
                    )
                })
        };
        Ok(Self {
            ebpf_toolchain: pin("ebpf-toolchain")?,
            bpf_linker: pin("bpf-linker")?,
        })
    }
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

/// `cargo install --root` of bpf-linker.
#[must_use]
pub fn tools() -> PathBuf {
    cache().join("tools")
}

/// The bpf-linker setup installs.
#[must_use]
pub fn cached_bpf_linker() -> PathBuf {
    tools().join("bin/bpf-linker")
}

/// The release `program --version` reports (`bpf-linker 0.13.0` gives `0.13.0`), or `None` when
/// it cannot run.
#[must_use]
pub fn bpf_linker_version(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .map(str::to_owned)
}

/// The sysroot of `toolchain` when rustup has it installed (never installing it: a check must
/// not download, and the eBPF toolchain needs rust-src, which only setup adds).
#[must_use]
pub fn sysroot(toolchain: &str) -> Option<PathBuf> {
    let out = Command::new("rustup")
        .args(["which", "--toolchain", toolchain, "rustc"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rustc = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Some(rustc.parent()?.parent()?.to_path_buf())
}

/// True when `toolchain` is installed with rust-src: the sources `-Z build-std=core` builds
/// from, found where cargo looks for them.
#[must_use]
pub fn has_rust_src(toolchain: &str) -> bool {
    sysroot(toolchain).is_some_and(|root| {
        root.join("lib/rustlib/src/rust/library/Cargo.lock")
            .is_file()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(workspace_metadata: &str) -> cargo_metadata::Metadata {
        cargo_metadata::MetadataCommand::parse(format!(
            r#"{{"packages":[],"workspace_members":[],"resolve":null,"target_directory":"/w/target",
                "version":1,"workspace_root":"/w","metadata":{workspace_metadata}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn the_workspace_pins_the_ebpf_tools() {
        let pins = Pins::read(crate::paths::metadata().unwrap()).unwrap();
        assert!(pins.ebpf_toolchain.starts_with("nightly-"), "{pins:?}");
        assert_eq!(pins.bpf_linker.split('.').count(), 3, "{pins:?}");
    }

    #[test]
    fn pins_are_read_from_the_snapshot_table() {
        let read = |json: &str| Pins::read(&metadata(json)).map_err(|e| format!("{e:#}"));
        assert_eq!(
            read(r#"{"snapshot":{"ebpf-toolchain":"nightly-2026-07-20","bpf-linker":"0.13.0"}}"#),
            Ok(Pins {
                ebpf_toolchain: "nightly-2026-07-20".into(),
                bpf_linker: "0.13.0".into()
            })
        );
        let missing = read(r#"{"snapshot":{"ebpf-toolchain":"nightly-2026-07-20"}}"#).unwrap_err();
        assert!(
            missing.contains(
                "no `bpf-linker = \"…\"` in [workspace.metadata.snapshot] of /w/Cargo.toml"
            ),
            "{missing}"
        );
        assert!(read("null").unwrap_err().contains("`ebpf-toolchain"));
        assert!(read(r#"{"snapshot":{"ebpf-toolchain":22,"bpf-linker":"0.13.0"}}"#).is_err());
    }
}
