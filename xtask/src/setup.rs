//! `cargo xtask setup`: installs only what is missing, printing each step. Idempotent; a second
//! run checks and finishes in seconds.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{apt, cmd, paths, vm};

/// Debian packages from bookworm: LLVM 22 for bpf-linker, busybox for the VM's initramfs,
/// decompressors for kernel modules, bpftool to inspect loaded programs (the leak test),
/// linux-perf for the benchmark's peer.
const PACKAGES: [&str; 6] = [
    "llvm-22-dev",
    "busybox-static",
    "xz-utils",
    "zstd",
    "bpftool",
    "linux-perf",
];
/// From bookworm-backports: bookworm's QEMU would replace the image's qemu-utils 10.0.2.
const BACKPORTS: [&str; 2] = ["qemu-system-x86", "qemu-utils"];
/// bpf-linker release built against LLVM 22 (the eBPF nightly's LLVM).
pub const BPF_LINKER: &str = "0.13.0";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Reads a quoted value following `marker` in a file of the workspace.
fn pinned(file: &str, marker: &str) -> anyhow::Result<String> {
    let path = paths::workspace().join(file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix(marker))
        .and_then(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .with_context(|| format!("no `{marker}` pin in {}", path.display()))
}

/// The userspace toolchain (`rust-toolchain.toml`).
pub fn user_toolchain() -> anyhow::Result<String> {
    pinned("rust-toolchain.toml", "channel =")
}

/// The eBPF toolchain (`EBPF_TOOLCHAIN` in snapshot-userspace/build.rs).
pub fn ebpf_toolchain() -> anyhow::Result<String> {
    pinned(
        "snapshot-userspace/build.rs",
        "pub const EBPF_TOOLCHAIN: &str =",
    )
}

fn toolchain_has(toolchain: &str, component: Option<&str>) -> bool {
    let installed = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                l.starts_with(&format!("{toolchain}-"))
                    || l.split_whitespace().next() == Some(toolchain)
            })
        });
    installed
        && component.is_none_or(|c| {
            Command::new("rustup")
                .args(["component", "list", "--installed", "--toolchain", toolchain])
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .any(|l| l.starts_with(c))
                })
        })
}

fn bpf_linker_ok() -> bool {
    Command::new(paths::tools().join("bin/bpf-linker"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER))
}

fn kernels_ok() -> bool {
    vm::SERIES.iter().all(|s| vm::Kernel::find(s).is_ok())
}

/// True when everything setup installs is present (cheap checks only).
#[must_use]
pub fn complete() -> bool {
    PACKAGES
        .iter()
        .chain(BACKPORTS.iter())
        .all(|p| apt::installed(p))
        && user_toolchain().is_ok_and(|t| toolchain_has(&t, None))
        && ebpf_toolchain().is_ok_and(|t| toolchain_has(&t, Some("rust-src")))
        && bpf_linker_ok()
        && kernels_ok()
}

/// Runs every step.
pub fn run(refresh: bool) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    cmd::step("Debian packages (bookworm)");
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !apt::installed(p))
        .collect();
    let missing_bp: Vec<&str> = BACKPORTS
        .iter()
        .copied()
        .filter(|p| !apt::installed(p))
        .collect();
    let need_kernels = !kernels_ok();
    if (!missing.is_empty() || !missing_bp.is_empty() || need_kernels) && !is_root() {
        bail!(
            "setup must install {} and needs root: run `sudo -E cargo xtask setup`",
            [missing.clone(), missing_bp.clone()].concat().join(", ")
        );
    }
    let mut apt_cfg = None;
    if missing.is_empty() {
        eprintln!("    present: {}", PACKAGES.join(", "));
    } else {
        let a = apt_cfg.insert(apt::Apt::open(refresh)?);
        a.install(&missing, None)?;
    }

    cmd::step("QEMU (bookworm-backports, keeps qemu-utils 10)");
    if missing_bp.is_empty() {
        eprintln!("    present: {}", BACKPORTS.join(", "));
    } else {
        let a = match apt_cfg.take() {
            Some(a) => apt_cfg.insert(a),
            None => apt_cfg.insert(apt::Apt::open(refresh)?),
        };
        a.install(&BACKPORTS, Some("bookworm-backports"))?;
    }

    cmd::step("Rust toolchains");
    let user = user_toolchain()?;
    let ebpf = ebpf_toolchain()?;
    let _ = Command::new("rustup")
        .args(["set", "auto-self-update", "disable"])
        .output();
    let install = |toolchain: &str, components: &[&str]| {
        let mut c = Command::new("rustup");
        c.args(["toolchain", "install", toolchain, "--profile", "minimal"]);
        for component in components {
            c.args(["--component", component]);
        }
        cmd::run(&mut c)
    };
    if toolchain_has(&user, None) {
        eprintln!("    present: {user} (userspace, rust-toolchain.toml)");
    } else {
        install(&user, &["rustfmt", "clippy"])?;
    }
    if toolchain_has(&ebpf, Some("rust-src")) {
        eprintln!("    present: {ebpf} with rust-src (eBPF, LLVM 22)");
    } else {
        install(&ebpf, &["rust-src"])?;
    }

    cmd::step(&format!("bpf-linker {BPF_LINKER} (LLVM 22)"));
    if bpf_linker_ok() {
        eprintln!(
            "    present: {}",
            paths::tools().join("bin/bpf-linker").display()
        );
    } else {
        cmd::run(
            Command::new("rustup")
                .args(["run", &user, "cargo", "install", "--root"])
                .arg(paths::tools())
                .arg(format!("bpf-linker@{BPF_LINKER}"))
                .args(["--locked", "--no-default-features", "--features", "llvm-22"])
                // Both are needed: llvm-sys reads the first, bpf-linker's build.rs the second.
                .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22")
                .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
        )?;
    }

    cmd::step("Debian kernels for the VM (unpacked, never installed)");
    for series in vm::SERIES {
        if let Ok(k) = vm::Kernel::find(series) {
            eprintln!("    present: {series} = {}", k.release);
            continue;
        }
        let a = match apt_cfg.take() {
            Some(a) => apt_cfg.insert(a),
            None => apt_cfg.insert(apt::Apt::open(refresh)?),
        };
        let pkg = a.kernel_package(series)?;
        let dest = paths::kernels().join(&pkg);
        std::fs::create_dir_all(paths::kernels())?;
        a.download_unpack(&pkg, &dest)?;
        std::fs::write(vm::pointer(series), &pkg)?;
        let k = vm::Kernel::find(series)?;
        eprintln!(
            "    unpacked: {series} = {} in {}",
            k.release,
            dest.display()
        );
    }
    cmd::green(&format!(
        "setup complete in {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}
