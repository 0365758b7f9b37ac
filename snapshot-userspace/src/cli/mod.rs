//! Command line: one module per subcommand.

pub mod record;

use clap::{Parser, Subcommand};

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
pub enum Command {
    /// Record events of a process (or a command started here) into the flight recorder.
    Record(record::RecordArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Record(args) => record::run(args).await,
    }
}
