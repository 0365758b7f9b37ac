//! `snapshot trigger DIR`: ask the recorder writing into DIR for a snapshot now, through its
//! socket (never a signal: nothing but the recorder can answer), and say what it did.

use std::{io::Read as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Args;

use crate::snapshot::dir;

/// Arguments of `snapshot trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The recorder's `--out` directory.
    pub dir: PathBuf,
}

/// How long the recorder may take to answer (it drains a half and writes a file first).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Asks the recorder of `dir` for a snapshot; exit code 0 when one was taken, 1 when the
/// request was counted as a missed trigger.
pub fn run(args: &TriggerArgs) -> anyhow::Result<i32> {
    let stream = dir::connect(&args.dir)?;
    stream.set_read_timeout(Some(ANSWER_WITHIN))?;
    let mut answer = String::new();
    stream
        .take(4096)
        .read_to_string(&mut answer)
        .with_context(|| {
            format!(
                "the recorder of {} did not answer within {} s",
                args.dir.display(),
                ANSWER_WITHIN.as_secs()
            )
        })?;
    // Only what the recorder writes is shown (no control characters from elsewhere).
    let answer: String = answer.trim().chars().filter(|c| !c.is_control()).collect();
    if let Some(rest) = answer.strip_prefix("snapshot ") {
        let (seq, path) = rest.split_once(' ').unwrap_or((rest, ""));
        eprintln!("snapshot: the recorder took snapshot {seq}: {path}");
        return Ok(0);
    }
    if let Some(why) = answer.strip_prefix("missed ") {
        eprintln!("snapshot: the recorder took no snapshot: {why}; it counts as a missed trigger");
        return Ok(1);
    }
    anyhow::bail!(
        "the recorder of {} closed the connection without an answer: it is stopping",
        args.dir.display()
    )
}
