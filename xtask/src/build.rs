//! Building the workspace: its binaries and its integration test executables.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;
use cargo_metadata::{Message, TargetKind};

use crate::{cmd, paths};

/// `cargo` in the workspace (the build script finds bpf-linker in setup's cache by itself).
#[must_use]
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(paths::workspace());
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
    Ok(paths::target()?.join(if release { "release" } else { "debug" }))
}

/// The executable of integration test `test` in cargo's `--message-format=json` stream.
pub(crate) fn test_executable(stream: &[u8], test: &str) -> anyhow::Result<Option<PathBuf>> {
    for message in Message::parse_stream(stream) {
        if let Message::CompilerArtifact(artifact) =
            message.context("cannot read cargo's JSON messages")?
            && artifact.target.name == test
            && artifact.target.kind.contains(&TargetKind::Test)
            && let Some(executable) = artifact.executable
        {
            return Ok(Some(executable.into_std_path_buf()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_executable_is_found_among_cargo_messages() {
        let artifact = |name: &str, kind: &str, exe: &str| {
            format!(
                r#"{{"reason":"compiler-artifact","package_id":"path+file:///w#snapshot-userspace@0.1.0","manifest_path":"/w/Cargo.toml","target":{{"kind":["{kind}"],"crate_types":["bin"],"name":"{name}","src_path":"/w/tests/{name}.rs","edition":"2024","doc":false,"doctest":false,"test":true}},"profile":{{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":true}},"features":[],"filenames":["{exe}"],"executable":"{exe}","fresh":true}}"#
            )
        };
        let stream = [
            "warning: a line that is not JSON".to_owned(),
            artifact("vm", "bin", "/t/debug/vm"),
            artifact("host", "test", "/t/debug/deps/host-1"),
            artifact("vm", "test", "/t/debug/deps/vm-2"),
            r#"{"reason":"build-finished","success":true}"#.to_owned(),
        ]
        .join("\n");
        let found = |test| test_executable(stream.as_bytes(), test).unwrap();
        assert_eq!(found("vm"), Some(PathBuf::from("/t/debug/deps/vm-2")));
        assert_eq!(found("host"), Some(PathBuf::from("/t/debug/deps/host-1")));
        assert_eq!(found("post"), None);
    }
}
