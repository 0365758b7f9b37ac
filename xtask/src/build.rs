//! Building the workspace with the tools setup installed on PATH.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::{cmd, paths};

/// `cargo` in the workspace with bpf-linker on PATH.
#[must_use]
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(paths::workspace())
        .env("PATH", paths::path_with_tools());
    c
}

/// Builds the userspace binaries (and so the eBPF object); returns the binaries' directory.
pub fn binaries(release: bool) -> anyhow::Result<PathBuf> {
    let mut c = cargo();
    c.args(["build", "--package", "snapshot-userspace", "--bins"]);
    if release {
        c.arg("--release");
    }
    cmd::run(&mut c)?;
    Ok(target_dir()?.join(if release { "release" } else { "debug" }))
}

/// The workspace's target directory.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let out = cmd::stdout(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let key = "\"target_directory\":\"";
    let start = out
        .find(key)
        .context("cargo metadata has no target_directory")?
        + key.len();
    let end = out[start..].find('"').context("malformed cargo metadata")? + start;
    Ok(PathBuf::from(&out[start..end]))
}

/// Builds an integration test target without running it (`release`: optimised, with the
/// binaries it runs); returns the test executable.
pub fn test_binary(test: &str, release: bool) -> anyhow::Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "test",
        "--package",
        "snapshot-userspace",
        "--test",
        test,
        "--no-run",
        "--message-format=json",
    ]);
    if release {
        c.arg("--release");
    }
    let out = cmd::output(&mut c)?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| {
            l.contains("\"reason\":\"compiler-artifact\"")
                && l.contains(&format!("\"name\":\"{test}\""))
        })
        .find_map(|l| {
            let key = "\"executable\":\"";
            let start = l.find(key)? + key.len();
            let end = l[start..].find('"')? + start;
            Some(PathBuf::from(&l[start..end]))
        })
        .with_context(|| format!("cargo did not report the executable of test `{test}`"))
}
