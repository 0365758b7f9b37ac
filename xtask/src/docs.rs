//! `cargo xtask docs`: man pages and shell completions generated from the clap definitions by
//! the `snapshot` binary's hidden `__generate` subcommand (xtask does not link the userspace
//! crate: its build script needs the eBPF toolchain), written into `target/docs`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::{build, cmd, paths, setup};

/// Builds `snapshot`, writes `target/docs/{man,completions}` and prints how to use them.
pub fn run() -> anyhow::Result<i32> {
    setup::ensure()?;
    let bin = build::binaries(false)?;
    let out = paths::target()?.join("docs");
    let (man, completions) = (out.join("man"), out.join("completions"));
    for dir in [&man, &completions] {
        // Pages of subcommands that no longer exist must not linger.
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
    }
    cmd::step("man pages and shell completions from the clap definitions");
    let listed = cmd::stdout(
        Command::new(bin.join("snapshot"))
            .arg("__generate")
            .arg("--man")
            .arg(&man)
            .arg("--completions")
            .arg(&completions),
    )?;
    for file in listed.lines() {
        eprintln!("    {}", shown(Path::new(file)).display());
    }
    cmd::green(&format!(
        "docs: {} file(s) in {}",
        listed.lines().count(),
        shown(&out).display()
    ));
    eprint!("{}", instructions(&shown(&man), &shown(&completions)));
    Ok(0)
}

/// `path` relative to the workspace when it is inside it (shorter to copy).
fn shown(path: &Path) -> PathBuf {
    path.strip_prefix(paths::workspace())
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

/// How to read the pages and load the completions written into `man` and `completions`.
fn instructions(man: &Path, completions: &Path) -> String {
    let (man, comp) = (man.display(), completions.display());
    format!(
        "read a page without installing it (one per subcommand too: snapshot-record.1, …):
    man -l {man}/snapshot.1
install the pages:
    sudo cp {man}/*.1 /usr/local/share/man/man1/ && sudo mandb -q
load the completions into this shell:
    bash:  source {comp}/snapshot.bash
    zsh:   source {comp}/_snapshot   (after compinit)
    fish:  source {comp}/snapshot.fish
install them:
    sudo cp {comp}/snapshot.bash /usr/share/bash-completion/completions/snapshot
    sudo cp {comp}/_snapshot /usr/local/share/zsh/site-functions/
    cp {comp}/snapshot.fish ~/.config/fish/completions/
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_the_workspace_are_shown_relative() {
        let inside = paths::workspace().join("target/docs/man");
        assert_eq!(shown(&inside), Path::new("target/docs/man"));
        assert_eq!(
            shown(Path::new("/elsewhere/docs")),
            Path::new("/elsewhere/docs")
        );
    }

    #[test]
    fn instructions_name_every_generated_file() {
        let text = instructions(
            Path::new("target/docs/man"),
            Path::new("target/docs/completions"),
        );
        for needle in [
            "man -l target/docs/man/snapshot.1",
            "snapshot-record.1",
            "source target/docs/completions/snapshot.bash",
            "target/docs/completions/_snapshot",
            "target/docs/completions/snapshot.fish",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
    }
}
