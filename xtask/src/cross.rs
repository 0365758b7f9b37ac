//! Static builds for an architecture (`--arch`): the musl targets, built with Debian's cross
//! linker for aarch64, and what setup installs for them and for the aarch64 VM.
//!
//! `aya_build` (in `snapshot-userspace/build.rs`) takes the eBPF object's `bpf_target_arch` from
//! the build script's target, so `cargo build --target aarch64-unknown-linux-musl` embeds an
//! eBPF object that reads arm64's registers.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::{
    apt,
    arch::{self, Arch},
    arm64, build, cmd, paths, setup, toolchain,
};

/// Debian packages from bookworm: the aarch64 cross linker and the C library it links against.
pub const PACKAGES: [&str; 2] = ["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"];
/// From bookworm-backports, like qemu-system-x86 (bookworm's would replace the image's
/// qemu-utils 10).
pub const BACKPORTS: [&str; 1] = ["qemu-system-arm"];

/// True when the userspace toolchain has the Rust standard library for `target`.
fn has_target(channel: &str, target: &str) -> bool {
    toolchain::sysroot(channel).is_some_and(|root| root.join("lib/rustlib").join(target).is_dir())
}

fn targets() -> Vec<&'static str> {
    Arch::ALL.iter().map(|a| a.musl_target()).collect()
}

/// True when everything the static builds and the aarch64 VM need is there.
#[must_use]
pub fn complete() -> bool {
    PACKAGES.iter().chain(&BACKPORTS).all(|p| apt::installed(p))
        && setup::UserToolchain::read().is_ok_and(|t| {
            targets()
                .iter()
                .all(|target| has_target(&t.channel, target))
        })
        && arm64::complete()
}

/// Setup's steps for the static builds and the aarch64 VM.
pub fn setup(refresh: bool) -> anyhow::Result<()> {
    cmd::step("cross linker and aarch64 QEMU (bookworm, bookworm-backports)");
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
    if missing.is_empty() && missing_bp.is_empty() {
        eprintln!(
            "    present: {}",
            [&PACKAGES[..], &BACKPORTS[..]].concat().join(", ")
        );
    } else {
        if !cmd::is_root() {
            anyhow::bail!(
                "setup must install {} and needs root: run `sudo -E cargo xtask setup`",
                [missing.clone(), missing_bp.clone()].concat().join(", ")
            );
        }
        let a = apt::Apt::open(refresh)?;
        if !missing.is_empty() {
            a.install(&missing, None)?;
        }
        if !missing_bp.is_empty() {
            a.install(&missing_bp, Some("bookworm-backports"))?;
        }
    }
    let user = setup::UserToolchain::read()?;
    let wanted = targets();
    cmd::step(&format!(
        "Rust targets for static builds ({})",
        wanted.join(", ")
    ));
    let absent: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|t| !has_target(&user.channel, t))
        .collect();
    if absent.is_empty() {
        eprintln!("    present in {}", user.channel);
    } else {
        cmd::run(
            Command::new("rustup")
                .args(["target", "add", "--toolchain", &user.channel])
                .args(&absent),
        )?;
    }
    arm64::setup(refresh)
}

/// `cargo` for `arch`'s static target (with the cross linker where one is needed).
#[must_use]
pub fn cargo(arch: Arch) -> Command {
    let mut c = build::cargo();
    if let Some(linker) = arch.cross_linker() {
        c.env(arch.linker_env(), linker);
    }
    c
}

/// Builds the userspace binaries for `arch`, static and optimised; returns their directory
/// after checking that `snapshot` is static, for `arch`, with an eBPF object for `arch` inside.
pub fn binaries(arch: Arch) -> anyhow::Result<PathBuf> {
    cmd::run(cargo(arch).args([
        "build",
        "--release",
        "--package",
        "snapshot-userspace",
        "--bins",
        "--target",
        arch.musl_target(),
    ]))?;
    let dir = paths::target()?.join(arch.musl_target()).join("release");
    let checked = arch::check_static_binary(&dir.join("snapshot"), arch)?;
    eprintln!("    {checked}");
    Ok(dir)
}

/// Builds integration test `test` for `arch` (static, optimised, with the binaries it runs);
/// returns the test executable.
pub fn test_binary(arch: Arch, test: &str) -> anyhow::Result<PathBuf> {
    test_binary_to(arch, test, std::process::Stdio::inherit(), None)
}

/// As [`test_binary`], the build's progress and messages written to `progress` (a log file,
/// for a build that runs beside another layer), in `target_dir` when given (a build beside
/// another cargo must not share its target directory, whose lock would make one wait).
pub fn test_binary_to(
    arch: Arch,
    test: &str,
    progress: impl Into<std::process::Stdio>,
    target_dir: Option<&std::path::Path>,
) -> anyhow::Result<PathBuf> {
    let mut cargo = cargo(arch);
    if let Some(dir) = target_dir {
        cargo.env("CARGO_TARGET_DIR", dir);
    }
    let out = cmd::output(
        cargo
            .args([
                "test",
                "--release",
                "--package",
                "snapshot-userspace",
                "--target",
                arch.musl_target(),
                "--test",
                test,
                "--no-run",
                "--message-format=json",
            ])
            // The build takes minutes: its progress shows; the JSON on stdout names the executable.
            .stderr(progress),
    )?;
    build::test_executable(out.stdout.as_slice(), test)?
        .with_context(|| format!("cargo did not report the executable of test `{test}`"))
}
