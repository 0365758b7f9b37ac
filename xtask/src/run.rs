//! `cargo xtask run`: set up if needed, build, run the controller as root.

use std::{ffi::OsString, process::Command};

use anyhow::{Context as _, bail};

use crate::{build, cmd, setup};

/// Sets up what is missing, builds in release mode and runs `snapshot ARGS` (the demo when
/// ARGS is empty). Returns the controller's exit code.
pub fn run(args: &[OsString]) -> anyhow::Result<i32> {
    if !setup::complete() {
        cmd::step("something is missing: running `cargo xtask setup` first");
        setup::run(false)?;
    }
    let bin = build::binaries(true)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the controller loads eBPF programs and needs root: run `sudo -E cargo xtask run …`");
    }
    let args: Vec<OsString> = if args.is_empty() {
        demo_args(&bin)
    } else {
        args.to_vec()
    };
    let status = Command::new(bin.join("snapshot"))
        .args(&args)
        .status()
        .context("cannot start the snapshot binary")?;
    Ok(status.code().unwrap_or(1))
}

/// The demo: the bundled workload's uprobe and `close()` calls.
fn demo_args(bin: &std::path::Path) -> Vec<OsString> {
    let workload = bin.join("snapshot-workload");
    let w = workload.to_string_lossy();
    [
        "record".to_owned(),
        "--probe".to_owned(),
        "tracepoint:syscalls:sys_enter_close".to_owned(),
        "--probe".to_owned(),
        "tracepoint:syscalls:sys_exit_close".to_owned(),
        "--probe".to_owned(),
        format!("uprobe:{w}:snapshot_workload_fn"),
        "--".to_owned(),
        w.clone().into_owned(),
        "calls".to_owned(),
        "5".to_owned(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}
