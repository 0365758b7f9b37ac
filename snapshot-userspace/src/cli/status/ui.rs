//! What `snapshot record` prints while it records: the status line on stderr (an `indicatif`
//! spinner), the per-snapshot lines, the log and the summary, without one garbling another.
//!
//! While the status line is shown, every other line (log records included, through
//! [`init_logging`]) is printed inside [`ProgressBar::suspend`]: the line is cleared, the text
//! printed, the line drawn again below it. `--json` lines go to stdout and the status line to
//! stderr only, so a pipe reading stdout sees JSON lines and nothing else.

use std::{
    io::{IsTerminal as _, Write as _},
    sync::{Mutex, PoisonError},
    time::Instant,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use super::{Live, Mode, Rate, line};
use crate::controller::{Totals, Written};

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
        let mut err = std::io::stderr().lock();
        writeln!(err, "{text}")?;
        err.flush()
    }
}

/// The output of one recording: `--quiet`, `--json` and the status line.
pub struct Ui {
    quiet: bool,
    json: bool,
    shown: bool,
    bar: Option<ProgressBar>,
    rate: Rate,
    start: Instant,
}

impl Ui {
    /// Output for `--quiet` / `--json`; the status mode comes from `SNAPSHOT_STATUS`. Quiet
    /// also keeps the log to errors.
    pub fn new(quiet: bool, json: bool) -> anyhow::Result<Self> {
        let mode = Mode::parse(std::env::var(super::STATUS_ENV).ok().as_deref())
            .map_err(anyhow::Error::msg)?;
        if quiet {
            log::set_max_level(log::max_level().min(log::LevelFilter::Error));
        }
        Ok(Self {
            quiet,
            json,
            shown: mode.shown(std::io::stderr().is_terminal(), quiet),
            bar: None,
            rate: Rate::default(),
            start: Instant::now(),
        })
    }

    /// Whether the status line is (to be) shown.
    #[must_use]
    pub const fn status_shown(&self) -> bool {
        self.shown
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
        bar.set_message(line(elapsed, live, rate));
        bar.tick();
    }

    /// Prints one snapshot written: a JSON line on stdout with `--json`, else a line on
    /// stderr unless `--quiet`.
    pub fn report(&self, w: &Written) {
        if self.json {
            if let Ok(json) = serde_json::to_string(w) {
                around_status(|| {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{json}").and_then(|()| out.flush());
                });
            }
        } else if !self.quiet {
            around_status(|| {
                eprintln!(
                    "snapshot {}: {} ({} events, {} overwritten, {} dropped, {} missed triggers)",
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
    pub fn summary(&mut self, why: &str, t: &Totals) {
        self.clear();
        if self.quiet {
            return;
        }
        eprintln!(
            "snapshot: stopped: {why}; {} snapshot(s); events: recorded {}, overwritten {}, dropped {}, torn {}, discarded at exit {}; missed triggers {}",
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

impl Drop for Ui {
    fn drop(&mut self) {
        // An error return must not leave the line on screen or the logger printing around it.
        self.clear();
    }
}
