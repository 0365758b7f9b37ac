//! `cargo xtask run`: set up if needed, build, run the controller as root.

use std::{ffi::OsString, process::Command};

use anyhow::{Context as _, bail};

use crate::{build, cmd, setup};

/// Sets up what is missing, builds in release mode and runs `snapshot ARGS` (the demo when
/// ARGS is empty). Returns the controller's exit code.
pub fn run(args: &[OsString]) -> anyhow::Result<i32> {
    setup::ensure()?;
    let bin = build::binaries(true)?;
    if !cmd::is_root() {
        bail!("the controller loads eBPF programs and needs root: run `sudo -E cargo xtask run …`");
    }
    let demo = args.is_empty();
    let out = crate::paths::workspace().join("target/snapshots/demo");
    let args: Vec<OsString> = if demo {
        let _ = std::fs::remove_dir_all(&out);
        cmd::step(
            "demo: recording a small-file I/O workload; the trigger is a read that fails (ret < 0)",
        );
        demo_args(&bin, &out)
    } else {
        args.to_vec()
    };
    let status = Command::new(bin.join("snapshot"))
        .args(&args)
        .status()
        .context("cannot start the snapshot binary")?;
    if demo && status.success() {
        explain(&bin, &out);
    }
    Ok(status.code().unwrap_or(1))
}

/// After the demo: what was written (as `snapshot list` shows it) and how to read it.
fn explain(bin: &std::path::Path, out: &std::path::Path) {
    let snapshot = bin.join("snapshot");
    let listing = Command::new(&snapshot)
        .arg("list")
        .arg(out)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    cmd::green(&format!("demo: snapshots in {}", out.display()));
    eprint!("{listing}");
    // `snapshot list` starts each line with the file's name.
    if let Some(first) = listing
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().next())
    {
        let first = out.join(first);
        eprintln!("read one as text (ftrace-like, trigger context on top):");
        eprintln!("    {} show {}", snapshot.display(), first.display());
        eprintln!("or as JSON lines (a header object, then one object per event):");
        eprintln!("    {} show --json {}", snapshot.display(), first.display());
    }
}

/// The demo: a workload doing small-file I/O whose reads now and then fail; the trigger fires
/// in the kernel on the failed `read`, and each snapshot holds the I/O that led up to it and
/// the 8 events after it.
fn demo_args(bin: &std::path::Path, out: &std::path::Path) -> Vec<OsString> {
    let workload = bin.join("snapshot-workload").to_string_lossy().into_owned();
    let out = out.to_string_lossy().into_owned();
    [
        "record",
        "--probe",
        "tracepoint:syscalls:sys_enter_openat",
        "--probe",
        "tracepoint:syscalls:sys_exit_openat",
        "--probe",
        "tracepoint:syscalls:sys_enter_write",
        "--probe",
        "tracepoint:syscalls:sys_enter_read",
        "--probe",
        "tracepoint:syscalls:sys_exit_read",
        "--trigger",
        "sys_exit_read.ret < 0",
        // Also keep the 8 events after the failure: what the program did next.
        "--post",
        "8",
        "--buffer-size",
        "4096ev",
        "--max-snapshots",
        "3",
        "--out",
        &out,
        "--",
        &workload,
        "fileio",
        "3000",
        "700",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// `cargo xtask bench`: release build, then `snapshot-bench` (prints the README's tables), then
/// `snapshot-bench strings-vm` inside the VM: ftrace fetches strings with kprobe events, which
/// this host lacks, so that comparison is a ratio measured on Debian's 6.12.
pub fn bench() -> anyhow::Result<i32> {
    setup::ensure()?;
    let bin = build::binaries(true)?;
    cmd::step("benchmark (about a minute; the machine should be otherwise idle)");
    let status = Command::new(bin.join("snapshot-bench"))
        .status()
        .context("cannot start snapshot-bench")?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    cmd::step("the string against ftrace's kprobe event, in the VM (6.12, emulated: a ratio)");
    crate::vm::run(&crate::vm::VmOptions {
        series: "6.12".into(),
        timeout: 1200,
        smp: 1,
        memory: "1G".into(),
        rw: None,
        env: Vec::new(),
        stdout_copy: None,
        prefix: None,
        command: vec![bin.join("snapshot-bench").into(), "strings-vm".into()],
    })
}
