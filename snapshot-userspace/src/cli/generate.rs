//! `snapshot __generate` (hidden, used by `cargo xtask docs`): man pages and shell completions
//! generated from the clap definitions of [`Cli`], so they never drift from `--help`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{ArgGroup, Args, CommandFactory as _};
use clap_complete::Shell;

use super::Cli;

/// Arguments of `snapshot __generate`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true)))]
pub struct GenerateArgs {
    /// Write `snapshot.1` and one page per subcommand (`snapshot-record.1`, …) into DIR.
    #[arg(long, value_name = "DIR", group = "what")]
    pub man: Option<PathBuf>,
    /// Write the bash, zsh and fish completions into DIR.
    #[arg(long, value_name = "DIR", group = "what")]
    pub completions: Option<PathBuf>,
}

/// Shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The command line as documented: [`Cli`] without its hidden subcommands (`clap_complete`
/// would offer them otherwise).
#[must_use]
pub fn documented() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("snapshot")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(full.is_subcommand_required_set())
        .arg_required_else_help(full.is_arg_required_else_help_set())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}: choose another directory", dir.display()))
}

/// Writes `snapshot.1` and one page per subcommand into `dir`; returns the files written.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let cmd = documented();
    clap_mangen::generate_to(cmd.clone(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    let pages = std::iter::once("snapshot.1".to_owned())
        .chain(
            cmd.get_subcommands()
                .map(|s| format!("snapshot-{}.1", s.get_name())),
        )
        .map(|name| dir.join(name))
        .collect();
    Ok(pages)
}

/// Writes the bash (`snapshot.bash`), zsh (`_snapshot`) and fish (`snapshot.fish`) completions
/// into `dir`; returns the files written.
pub fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let mut cmd = documented();
    SHELLS
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut cmd, "snapshot", dir).with_context(|| {
                format!("cannot write the {shell} completion into {}", dir.display())
            })
        })
        .collect()
}

/// Runs `snapshot __generate`: prints one written file per line.
pub fn run(args: &GenerateArgs) -> anyhow::Result<i32> {
    let mut written = Vec::new();
    if let Some(dir) = &args.man {
        written.extend(man_pages(dir)?);
    }
    if let Some(dir) = &args.completions {
        written.extend(completions(dir)?);
    }
    for file in written {
        println!("{}", file.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("snapshot-generate-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn read(path: &Path) -> String {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(!text.trim().is_empty(), "{} is empty", path.display());
        text
    }

    fn subcommands() -> Vec<String> {
        documented()
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect()
    }

    #[test]
    fn documented_is_the_cli_without_its_hidden_subcommand() {
        let names = subcommands();
        assert_eq!(
            names,
            ["record", "export", "list", "show", "trigger", "check"]
        );
        assert!(
            Cli::command()
                .get_subcommands()
                .any(|s| s.get_name() == "__generate" && s.is_hide_set())
        );
        assert_eq!(
            documented().get_about().map(ToString::to_string),
            Cli::command().get_about().map(ToString::to_string)
        );
        documented().debug_assert();
    }

    #[test]
    fn man_pages_cover_every_subcommand_and_option() {
        let dir = TempDir::new("man");
        let pages = man_pages(&dir.0).unwrap();
        assert_eq!(pages.len(), 1 + subcommands().len(), "{pages:?}");
        let main = read(&dir.0.join("snapshot.1"));
        for name in subcommands() {
            assert!(
                main.contains(&format!("snapshot\\-{name}(1)")),
                "snapshot.1 does not list `{name}`:\n{main}"
            );
            read(&dir.0.join(format!("snapshot-{name}.1")));
        }
        assert!(
            !main.contains("generate"),
            "the hidden subcommand leaks:\n{main}"
        );
        let record = read(&dir.0.join("snapshot-record.1"));
        for option in ["\\-\\-trigger", "\\-\\-quiet", "\\-\\-probe", "\\-\\-json"] {
            assert!(record.contains(option), "snapshot-record.1 lacks {option}");
        }
        let files: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
        assert_eq!(files.len(), pages.len(), "only the pages reported");
    }

    #[test]
    fn completions_for_each_shell_know_the_subcommands() {
        let dir = TempDir::new("completions");
        let files = completions(&dir.0).unwrap();
        let names: Vec<_> = files
            .iter()
            .filter_map(|f| f.file_name()?.to_str())
            .collect();
        assert_eq!(names, ["snapshot.bash", "_snapshot", "snapshot.fish"]);
        for file in &files {
            let text = read(file);
            for name in subcommands() {
                assert!(text.contains(&name), "{} lacks `{name}`", file.display());
            }
            assert!(
                !text.contains("__generate"),
                "{} offers the hidden subcommand",
                file.display()
            );
        }
        assert!(read(&files[0]).contains("record"));
        assert!(read(&files[0]).contains("--trigger"));
    }

    #[test]
    fn generate_needs_a_directory() {
        let err = Cli::try_parse_from(["snapshot", "__generate"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
