//! What `snapshot record` prints while it records: the status line on stderr (an `indicatif`
//! spinner), the per-snapshot lines, the log and the summary, without one garbling another.
//! [`Ui`] is the controller's [`Reporter`].
//!
//! While the status line is shown, every other line (log records included, through
//! [`init_logging`]) is printed inside [`ProgressBar::suspend`]: the line is cleared, the text
//! printed, the line drawn again below it. `--json` lines go to stdout (or `--json-out FILE`)
//! and the status line to stderr only, so a pipe reading stdout sees JSON lines and nothing
//! else.

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    sync::{Mutex, PoisonError},
    time::Instant,
};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use super::{Mode, Rate, line};
use crate::{
    controller::{Live, Reporter, StopReason, Totals, WriteStatus, Written},
    sys,
};

/// The status line being shown, if any, for the logger to print around.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn shown() -> Option<ProgressBar> {
    SHOWN.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn set_shown(bar: Option<ProgressBar>) {
    *SHOWN.lock().unwrap_or_else(PoisonError::into_inner) = bar;
}

/// Runs `f` (which prints) with the status line out of the way, if one is shown.
fn around_status<R>(f: impl FnOnce() -> R) -> R {
    match shown() {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// `env_logger`, printing around the status line.
struct Logger(env_logger::Logger);

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.0.matches(record) {
            around_status(|| self.0.log(record));
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Installs `env_logger` (`RUST_LOG`, default `info`) as the logger, printing its records
/// around the status line.
pub fn init_logging() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let level = inner.filter();
    if log::set_boxed_logger(Box::new(Logger(inner))).is_ok() {
        log::set_max_level(level);
    }
}

/// A stderr that is not a terminal, for [`Mode::Always`]: each redraw becomes one plain line
/// (no cursor movement), so a log or a test sees every state the status line went through.
#[derive(Debug, Default)]
struct PlainStderr {
    line: Mutex<String>,
    /// Unit tests: the lines, kept here instead of printed.
    captured: Option<std::sync::Arc<Mutex<Vec<String>>>>,
}

impl PlainStderr {
    fn pending(&self) -> std::sync::MutexGuard<'_, String> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TermLike for PlainStderr {
    fn width(&self) -> u16 {
        // Wide enough that the line is never cut; the padding is trimmed on flush.
        1000
    }

    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)?;
        self.flush()
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.pending().push_str(s.trim_start_matches('\r'));
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.pending().clear();
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        let text = std::mem::take(&mut *self.pending());
        let text = text.trim_end();
        if text.is_empty() {
            return Ok(());
        }
        if let Some(captured) = &self.captured {
            captured
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(text.to_owned());
            return Ok(());
        }
        let mut err = std::io::stderr().lock();
        writeln!(err, "{text}")?;
        err.flush()
    }
}

/// Shows `message` as the status line: one draw per refresh.
fn show(bar: &ProgressBar, terminal: bool, message: String) {
    bar.set_message(message);
    if terminal {
        // Advances the spinner. Without a terminal each draw is a line of its own, and
        // setting the message has drawn it already.
        bar.tick();
    }
}

/// Where JSON lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonOut {
    /// Standard output (`--json`, `--json-out -`).
    Stdout,
    /// A file (`--json-out FILE`), appended to.
    File(PathBuf),
}

/// An open JSON line sink.
enum JsonSink {
    Stdout,
    File(std::fs::File),
}

/// The output of one recording: `--quiet`, `--json` and the status line.
pub struct Ui {
    quiet: bool,
    json: Option<JsonSink>,
    shown: bool,
    terminal: bool,
    bar: Option<ProgressBar>,
    rate: Rate,
    start: Instant,
}

impl Ui {
    /// Output for `--quiet` / `--json`; the status mode comes from `SNAPSHOT_STATUS`. Quiet
    /// also keeps the log to errors. A `--json-out` file is opened now, before anything is
    /// recorded.
    pub fn new(quiet: bool, json: Option<JsonOut>) -> anyhow::Result<Self> {
        let mode = Mode::parse(std::env::var(super::STATUS_ENV).ok().as_deref())?;
        let json = match json {
            None => None,
            Some(JsonOut::Stdout) => Some(JsonSink::Stdout),
            Some(JsonOut::File(path)) => match sys::open_append(&path).context("--json-out")? {
                sys::Output::Stream(f) => Some(JsonSink::File(f)),
                sys::Output::Stdout | sys::Output::File(_) => Some(JsonSink::Stdout),
            },
        };
        if quiet {
            log::set_max_level(log::max_level().min(log::LevelFilter::Error));
        }
        let terminal = std::io::stderr().is_terminal();
        Ok(Self {
            quiet,
            json,
            shown: mode.shown(terminal, quiet),
            terminal,
            bar: None,
            rate: Rate::default(),
            start: Instant::now(),
        })
    }

    /// Refreshes the status line with the counters read now (shows it the first time).
    pub fn tick(&mut self, live: &Live) {
        if !self.shown {
            return;
        }
        let elapsed = self.start.elapsed();
        let rate = self.rate.push(elapsed, live.events);
        let bar = self.bar.get_or_insert_with(|| {
            let (target, style) = if std::io::stderr().is_terminal() {
                let target = ProgressDrawTarget::stderr_with_hz(20);
                (target, ProgressStyle::default_spinner())
            } else {
                let target =
                    ProgressDrawTarget::term_like_with_hz(Box::<PlainStderr>::default(), 20);
                let plain = ProgressStyle::with_template("{msg}");
                (
                    target,
                    plain.unwrap_or_else(|_| ProgressStyle::default_spinner()),
                )
            };
            let bar = ProgressBar::with_draw_target(None, target).with_style(style);
            set_shown(Some(bar.clone()));
            bar
        });
        show(bar, self.terminal, line(elapsed, live, rate));
    }

    /// Prints one snapshot written: a JSON line with `--json`, else a line on stderr unless
    /// `--quiet`.
    pub fn report(&mut self, w: &Written) {
        if let Some(sink) = &mut self.json {
            if let Ok(json) = serde_json::to_string(w) {
                let result = around_status(|| match sink {
                    JsonSink::Stdout => {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{json}").and_then(|()| out.flush())
                    }
                    JsonSink::File(f) => writeln!(f, "{json}"),
                });
                if let Err(e) = result {
                    log::error!("cannot write the JSON line of snapshot {}: {e}", w.seq);
                }
            }
        } else if !self.quiet {
            around_status(|| {
                let status = match w.status {
                    WriteStatus::Written => "",
                    WriteStatus::Pending => " [not written yet: kept in memory and retried]",
                    WriteStatus::Lost => " [lost: the disk refused it and --max-pending is full]",
                };
                eprintln!(
                    "snapshot {}: {} ({} events, {} overwritten, {} dropped, {} missed triggers){status}",
                    w.seq,
                    w.path.display(),
                    w.events,
                    w.overwritten,
                    w.dropped,
                    w.missed_triggers
                );
            });
        }
    }

    /// Removes the status line and prints the totals (unless `--quiet`).
    pub fn summary(&mut self, why: &StopReason, t: &Totals) {
        self.clear();
        if self.quiet {
            return;
        }
        let lost = if t.lost_snapshots == 0 {
            String::new()
        } else {
            format!(
                "; lost {} snapshot(s) ({} events) the disk refused",
                t.lost_snapshots, t.lost_events
            )
        };
        let deleted = if t.deleted_snapshots == 0 {
            String::new()
        } else {
            format!(
                "; deleted {} old snapshot(s) ({} bytes) for --keep/--max-disk",
                t.deleted_snapshots, t.deleted_bytes
            )
        };
        eprintln!(
            "snapshot: stopped: {why}; {} snapshot(s); events: recorded {}, overwritten {}, dropped {}, torn {}, discarded at exit {}; missed triggers {}{lost}{deleted}",
            t.snapshots,
            t.recorded,
            t.overwritten,
            t.dropped,
            t.torn,
            t.discarded_at_exit,
            t.missed_triggers
        );
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            set_shown(None);
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Ui {
    fn written(&mut self, w: &Written) {
        self.report(w);
    }

    fn wants_status(&self) -> bool {
        self.shown
    }

    fn status(&mut self, live: &Live) {
        self.tick(live);
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        // An error return must not leave the line on screen or the logger printing around it.
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_each_refresh_is_one_line() {
        let captured = std::sync::Arc::default();
        let target = ProgressDrawTarget::term_like_with_hz(
            Box::new(PlainStderr {
                captured: Some(std::sync::Arc::clone(&captured)),
                ..PlainStderr::default()
            }),
            20,
        );
        let style = ProgressStyle::with_template("{msg}").unwrap();
        let bar = ProgressBar::with_draw_target(None, target).with_style(style);
        for n in 0..3 {
            show(&bar, false, format!("refresh {n}"));
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
        let lines = captured.lock().unwrap().clone();
        assert_eq!(lines, ["refresh 0", "refresh 1", "refresh 2"]);
    }
}
