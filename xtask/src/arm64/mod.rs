//! arm64: Debian's arm64 kernels and busybox for the aarch64 VM, found and unpacked (never
//! installed) by setup, booted by `cargo xtask vm --arch aarch64` (see [`vm`]) and tested on by
//! the VM layer of `cargo xtask test`.
//!
//! Everything arm64 lives under `<cache>/arm64/` (its own apt lists, kernels and busybox), apart
//! from the `x86_64` kernels' configuration, so either list of kernels can change alone.

pub mod apt;
pub mod vm;

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::{cmd, paths};

/// An arm64 kernel series the VM layer tests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    /// What `--kernel` takes.
    pub name: &'static str,
    /// Where the package comes from (for messages).
    pub source: &'static str,
}

/// The arm64 kernels, oldest first.
///
/// * 6.1 (bookworm): no BPF trampolines on arm64 (`DYNAMIC_FTRACE_WITH_DIRECT_CALLS` came to
///   arm64 in 6.4): attaching fentry/fexit fails with error 524 (ENOTSUPP); the VM tests know
///   it (`missing` in `tests/vm.rs`) and count the cases in the summary.
/// * 6.12 (bookworm-backports, Debian 13's kernel): everything.
pub const SERIES: [Series; 2] = [
    Series {
        name: "6.1",
        source: "bookworm",
    },
    Series {
        name: "6.12",
        source: "bookworm-backports",
    },
];

/// The series `--kernel NAME` means on arm64.
pub fn series(name: &str) -> anyhow::Result<Series> {
    SERIES
        .iter()
        .find(|s| s.name == name)
        .copied()
        .with_context(|| {
            let valid: Vec<&str> = SERIES.iter().map(|s| s.name).collect();
            format!(
                "no arm64 kernel `{name}`: the aarch64 VM boots {}",
                valid.join(" or ")
            )
        })
}

/// Where arm64 things live in the cache.
#[must_use]
pub fn cache() -> PathBuf {
    paths::cache().join("arm64")
}

fn kernels() -> PathBuf {
    cache().join("kernels")
}

fn pointer(series: &str) -> PathBuf {
    kernels().join(format!("{series}.package"))
}

/// An unpacked arm64 kernel.
pub struct Kernel {
    /// `uname -r`.
    pub release: String,
    /// The kernel Image (Debian's arm64 `vmlinuz` is not compressed: QEMU boots it as is).
    pub image: PathBuf,
    /// Its modules.
    pub moddir: PathBuf,
}

impl Kernel {
    /// Finds the kernel setup unpacked for `series`.
    pub fn find(series: &str) -> anyhow::Result<Self> {
        let pkg = std::fs::read_to_string(pointer(series)).with_context(|| {
            format!("the arm64 kernel {series} is not unpacked yet: run `cargo xtask setup`")
        })?;
        let root = kernels().join(pkg.trim());
        let boot = root.join("boot");
        let image = std::fs::read_dir(&boot)
            .with_context(|| format!("{} missing: run `cargo xtask setup` again", boot.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with("vmlinuz-"))
            })
            .with_context(|| {
                format!(
                    "no vmlinuz in {}: run `cargo xtask setup` again",
                    boot.display()
                )
            })?;
        let release = image
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .trim_start_matches("vmlinuz-")
            .to_owned();
        let moddir = root.join("lib/modules").join(&release);
        if !moddir.is_dir() {
            bail!(
                "{} missing: run `cargo xtask setup` again",
                moddir.display()
            );
        }
        Ok(Self {
            release,
            image,
            moddir,
        })
    }
}

/// Debian's static arm64 busybox, the guest's userland.
pub fn busybox() -> anyhow::Result<PathBuf> {
    let bin = cache().join("busybox-static/bin/busybox");
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!(
            "the arm64 busybox is not unpacked yet ({} missing): run `cargo xtask setup`",
            bin.display()
        )
    }
}

/// True when every arm64 kernel and busybox are unpacked.
#[must_use]
pub fn complete() -> bool {
    SERIES.iter().all(|s| Kernel::find(s.name).is_ok()) && busybox().is_ok()
}

/// Setup's arm64 step: downloads and unpacks what is missing.
pub fn setup(refresh: bool) -> anyhow::Result<()> {
    cmd::step("Debian's arm64 kernels and busybox for the aarch64 VM (unpacked, never installed)");
    let mut apt = None;
    let open = |apt: &mut Option<apt::Arm64Apt>| -> anyhow::Result<()> {
        if apt.is_none() {
            if !cmd::is_root() {
                bail!(
                    "setup must download Debian's arm64 kernels into {} and needs root: run `sudo -E cargo xtask setup`",
                    cache().display()
                );
            }
            *apt = Some(apt::Arm64Apt::open(refresh)?);
        }
        Ok(())
    };
    for s in SERIES {
        if let Ok(k) = Kernel::find(s.name) {
            eprintln!("    present: {} = {}", s.name, k.release);
            continue;
        }
        open(&mut apt)?;
        let a = apt.as_ref().context("the arm64 apt configuration")?;
        let pkg = a.kernel_package(s.name)?;
        std::fs::create_dir_all(kernels())?;
        a.download_unpack(&pkg, &kernels().join(&pkg))?;
        std::fs::write(pointer(s.name), &pkg)?;
        let k = Kernel::find(s.name)?;
        eprintln!(
            "    unpacked: {} = {} (from {})",
            s.name, k.release, s.source
        );
    }
    if let Ok(bb) = busybox() {
        eprintln!("    present: {}", bb.display());
    } else {
        open(&mut apt)?;
        let a = apt.as_ref().context("the arm64 apt configuration")?;
        a.download_unpack("busybox-static", &cache().join("busybox-static"))?;
        eprintln!("    unpacked: {}", busybox()?.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_and_unknown_ones_refused() {
        assert_eq!(series("6.12").unwrap().source, "bookworm-backports");
        assert_eq!(series("6.1").unwrap().source, "bookworm");
        let err = format!("{:#}", series("5.10").unwrap_err());
        assert!(err.contains("6.1 or 6.12"), "{err}");
    }
}
