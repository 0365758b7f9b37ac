//! Command line: one module per subcommand.

pub mod check;
pub mod config;
pub mod export;
pub mod generate;
pub mod list;
pub mod record;
#[cfg(test)]
mod robustness;
pub mod show;
pub mod status;
pub mod trigger;

use std::{ffi::OsString, path::PathBuf};

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// A flight recorder for the Linux kernel: keeps the last events of a process in eBPF buffers
/// and freezes them when a condition is met, without stopping the trace.
#[derive(Debug, Parser)]
#[command(name = "snapshot", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once, moved once")]
pub enum Command {
    /// Record a process (or a command started here) and take snapshots when the trigger fires.
    Record(record::RecordArgs),
    /// Convert a snapshot for other tools (Perfetto protobuf or Chrome JSON for the Perfetto
    /// UI, text).
    Export(export::ExportArgs),
    /// One line per snapshot in a directory: time, trigger, events, losses.
    List(list::ListArgs),
    /// Print a snapshot file (text, or JSON lines with --json).
    Show(show::ShowArgs),
    /// Ask a running recorder for a snapshot now.
    Trigger(trigger::TriggerArgs),
    /// What this kernel offers (BPF features, found by probing) and what the recorder uses
    /// here for each probe kind; exits 1 when recording cannot work.
    Check(check::CheckArgs),
    /// Write the man pages and shell completions (internal: `cargo xtask docs`).
    #[command(name = "__generate", hide = true)]
    Generate(generate::GenerateArgs),
}

/// Parses the command line `args` (the program name first); `record --config FILE` merges
/// the file's options in (see [`config`]). Usage errors are [`clap::Error`]s.
pub fn parse_from(args: &[OsString]) -> anyhow::Result<Cli> {
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    let matches = match matches.subcommand() {
        Some(("record", sub)) if let Some(file) = sub.get_one::<PathBuf>(config::CONFIG) => {
            let record = cmd
                .find_subcommand("record")
                .context("the record command is missing")?;
            let merged = config::merge(args, file, record, sub)?;
            Cli::command().try_get_matches_from(merged)?
        }
        _ => matches,
    };
    Ok(Cli::from_arg_matches(&matches)?)
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Record(args) => record::run(args).await,
        Command::Show(args) => show::run(&args),
        Command::List(args) => list::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Trigger(args) => trigger::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Generate(args) => generate::run(&args),
    }
}
