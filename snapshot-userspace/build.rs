//! Builds the eBPF object with `aya_build` and the pinned eBPF toolchain.
//!
//! The pins come from `[workspace.metadata.snapshot]` in the root Cargo.toml (read by
//! `cargo xtask setup` too). A plain `cargo build` works once setup has run: bpf-linker is
//! taken from setup's cache even when it is not on PATH. Anything missing stops the build with
//! one line naming `cargo xtask setup`.
//!
//! The eBPF cargo runs quietly: `aya_build` turns every line it writes into a build-script
//! warning, which cargo replays on every later build, so only its diagnostics (the eBPF crate's
//! warnings, or the errors of a build that fails) reach the terminal, not its progress.

#[path = "../xtask/src/object_cache.rs"]
mod object_cache;
#[path = "../xtask/src/toolchain.rs"]
mod toolchain;

use std::{env, path::PathBuf};

use anyhow::{Context as _, anyhow, bail};

fn main() {
    if let Err(e) = build() {
        // One line, no backtrace: cargo prints it as `error: snapshot-userspace@…: …` and fails.
        println!("cargo::error={}", format!("{e:#}").replace('\n', " "));
    }
}

fn build() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata failed")?;
    // The pins live there: a new one rebuilds the eBPF object.
    println!(
        "cargo::rerun-if-changed={}",
        metadata.workspace_root.join("Cargo.toml")
    );
    let pins = toolchain::Pins::read(&metadata)?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "snapshot-ebpf")
        .ok_or_else(|| anyhow!("snapshot-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("snapshot-ebpf manifest has no parent directory"))?;
    let out = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR is not set")?);
    let cached = if skipped() {
        None
    } else {
        let cached = cached_object(&metadata, root_dir.as_std_path())?;
        if cached.is_file() {
            // As `aya_build` says when it builds: its sources change the object.
            println!("cargo::rerun-if-changed={root_dir}");
            println!("cargo::rerun-if-env-changed=AYA_BUILD_SKIP");
            std::fs::copy(&cached, out.join("snapshot")).with_context(|| {
                format!("cannot copy the cached eBPF object {}", cached.display())
            })?;
            return Ok(());
        }
        prepare(&pins)?;
        Some(cached)
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&pins.ebpf_toolchain),
    )
    .with_context(|| {
        format!(
            "the eBPF crate did not build with {} (its messages are above)",
            pins.ebpf_toolchain
        )
    })?;
    let object = out.join("snapshot");
    match cached {
        // A cache that cannot be written only costs the next build its time.
        Some(cached) => {
            let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
            let _ = object_cache::store(&object, &cached, &arch);
        }
        // Skipped (the fuzz targets, which load no program): an empty object, which
        // `session::load` refuses with a clear error.
        None => {
            if !object.exists() {
                std::fs::write(object, [])?;
            }
        }
    }
    Ok(())
}

/// Where the object this build would make is kept (see `object_cache`): keyed by the eBPF and
/// common crates, the lock file, the root manifest and the target's architecture and order.
fn cached_object(
    metadata: &cargo_metadata::Metadata,
    ebpf_dir: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    let root = metadata.workspace_root.as_std_path();
    let common = root.join("snapshot-common");
    let (manifest, lock) = (root.join("Cargo.toml"), root.join("Cargo.lock"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH is not set")?;
    let endian =
        env::var("CARGO_CFG_TARGET_ENDIAN").context("CARGO_CFG_TARGET_ENDIAN is not set")?;
    let key = object_cache::key(&[ebpf_dir, &common], &[&manifest, &lock], &arch, &endian)
        .context("cannot read the eBPF sources to key the object cache")?;
    Ok(object_cache::entry(
        &metadata.target_directory.as_std_path().join("ebpf-object"),
        &arch,
        key,
    ))
}

/// `AYA_BUILD_SKIP=1` (or `true`): `aya_build` builds nothing, so nothing is needed.
fn skipped() -> bool {
    env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Checks what the eBPF build needs (the pinned nightly with rust-src, the pinned bpf-linker)
/// and sets up the environment the eBPF cargo inherits: bpf-linker's directory first on PATH,
/// progress off.
fn prepare(pins: &toolchain::Pins) -> anyhow::Result<()> {
    let nightly = &pins.ebpf_toolchain;
    if toolchain::sysroot(nightly).is_none() {
        bail!("the eBPF toolchain {nightly} is not installed: run `cargo xtask setup`");
    }
    if !toolchain::has_rust_src(nightly) {
        bail!("the eBPF toolchain {nightly} has no rust-src: run `cargo xtask setup`");
    }
    let wanted = &pins.bpf_linker;
    let cached = toolchain::cached_bpf_linker();
    let mut path: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    let cached_version = toolchain::bpf_linker_version(&cached);
    if cached_version.as_ref() == Some(wanted) {
        if let Some(dir) = cached.parent() {
            path.insert(0, dir.to_path_buf());
        }
    } else {
        let on_path = toolchain::bpf_linker_version("bpf-linker".as_ref());
        if on_path.as_ref() != Some(wanted) {
            let found = [(&cached_version, "in the cache"), (&on_path, "on PATH")]
                .iter()
                .filter_map(|(v, at)| v.as_ref().map(|v| format!(" ({v} {at})")))
                .collect::<String>();
            bail!(
                "bpf-linker {wanted} is neither in {} nor on PATH{found}: run `cargo xtask setup`",
                cached.parent().unwrap_or(&cached).display()
            );
        }
    }
    let path = env::join_paths(path).context("PATH has a directory with a `:` in its name")?;
    // SAFETY: the build script is single-threaded until `aya_build` starts its reader thread,
    // after this; nothing reads the environment concurrently.
    unsafe {
        env::set_var("PATH", path);
        env::set_var("CARGO_TERM_QUIET", "true");
    }
    Ok(())
}
