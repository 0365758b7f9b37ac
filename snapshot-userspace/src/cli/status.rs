//! The live status line of `snapshot record`: what it says (pure, tested here) and, in
//! [`ui`], how it is shown on stderr next to the per-snapshot lines and the log.
//!
//! ```text
//! ⠙ [0:12] 2.66M events/s | snapshots 3 | overwritten 12.1k | dropped 0 | missed triggers 0 | spare armed
//! ```

pub mod ui;

use std::{collections::VecDeque, time::Duration};

use crate::controller::Live;

/// The rate is measured over about this long, so one quiet refresh does not show 0.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Environment variable that decides when the status line is shown (see [`Mode`]).
pub const STATUS_ENV: &str = "SNAPSHOT_STATUS";

/// Events per second from successive samples of an ever-growing event count, over the last
/// [`RATE_WINDOW`].
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Duration, u64)>,
}

impl Rate {
    /// Adds the count `total` seen at `at` (time since any fixed origin, non-decreasing) and
    /// returns the rate, or `None` until two samples some time apart are known.
    pub fn push(&mut self, at: Duration, total: u64) -> Option<f64> {
        self.samples.push_back((at, total));
        // Keep one sample at or before the window's start, so the window is always covered.
        while self.samples.len() > 2 && at.saturating_sub(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
        let (t0, n0) = *self.samples.front()?;
        let span = at.saturating_sub(t0).as_secs_f64();
        (span > 0.0).then(|| total.saturating_sub(n0) as f64 / span)
    }
}

/// `950`, `12.1k`, `2.66M`, `1.20G`: a count for a glance.
#[must_use]
pub fn human(n: f64) -> String {
    let n = n.max(0.0);
    if n < 1e3 {
        format!("{n:.0}")
    } else if n < 1e6 {
        format!("{:.1}k", n / 1e3)
    } else if n < 1e9 {
        format!("{:.2}M", n / 1e6)
    } else {
        format!("{:.2}G", n / 1e9)
    }
}

/// `0:07`, `12:34`, `1:02:03`.
#[must_use]
pub fn clock(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The status line (without the spinner); `rate` is `None` until it can be measured.
#[must_use]
pub fn line(elapsed: Duration, live: &Live, rate: Option<f64>) -> String {
    let rate = rate.map_or_else(|| "-".to_owned(), human);
    format!(
        "[{}] {rate} events/s | snapshots {} | overwritten {} | dropped {} | missed triggers {} | spare {}",
        clock(elapsed),
        live.snapshots,
        human(live.overwritten as f64),
        human(live.dropped as f64),
        live.missed_triggers,
        live.spare
    )
}

/// When the status line is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// When stderr is a terminal (the default).
    Auto,
    /// Always, one plain line per refresh where stderr is not a terminal (tests, logs).
    Always,
    /// Never.
    Never,
}

/// A [`STATUS_ENV`] value that names no mode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{STATUS_ENV}={0} is not a status mode: use auto, always or never")]
pub struct ModeError(String);

impl Mode {
    /// The mode named by the value of [`STATUS_ENV`] (unset or empty: [`Mode::Auto`]).
    pub fn parse(value: Option<&str>) -> Result<Self, ModeError> {
        match value.map(str::trim) {
            None | Some("" | "auto") => Ok(Self::Auto),
            Some("always") => Ok(Self::Always),
            Some("never") => Ok(Self::Never),
            Some(other) => Err(ModeError(other.to_owned())),
        }
    }

    /// Whether the status line is shown, given whether stderr is a terminal and `--quiet`.
    #[must_use]
    pub const fn shown(self, stderr_is_terminal: bool, quiet: bool) -> bool {
        !quiet
            && match self {
                Self::Auto => stderr_is_terminal,
                Self::Always => true,
                Self::Never => false,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::Spare;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rate_needs_two_samples_then_follows_the_growth() {
        let mut r = Rate::default();
        assert_eq!(r.push(ms(0), 100), None);
        assert_eq!(r.push(ms(0), 150), None, "no time has passed");
        assert_eq!(r.push(ms(250), 1100), Some(4000.0));
        assert_eq!(r.push(ms(500), 2100), Some(4000.0));
    }

    #[test]
    fn rate_forgets_samples_older_than_the_window() {
        let mut r = Rate::default();
        r.push(ms(0), 0);
        r.push(ms(250), 1_000_000);
        // Nothing more for a while: the rate falls as the burst leaves the window.
        let mut last = None;
        for t in (500..=3000).step_by(250) {
            last = r.push(ms(t), 1_000_000);
        }
        assert_eq!(last, Some(0.0));
        assert!(r.samples.len() <= 6, "{} samples kept", r.samples.len());
        assert_eq!(r.push(ms(3250), 1_000_500), Some(500.0));
    }

    #[test]
    fn rate_never_goes_negative_on_a_smaller_count() {
        let mut r = Rate::default();
        r.push(ms(0), 10);
        assert_eq!(r.push(ms(500), 5), Some(0.0));
    }

    #[test]
    fn human_counts() {
        let cases = [
            (0.0, "0"),
            (999.0, "999"),
            (1000.0, "1.0k"),
            (12_140.0, "12.1k"),
            (2_660_000.0, "2.66M"),
            (1_200_000_000.0, "1.20G"),
            (-3.0, "0"),
        ];
        for (n, text) in cases {
            assert_eq!(human(n), text, "{n}");
        }
    }

    #[test]
    fn clock_shows_minutes_then_hours() {
        assert_eq!(clock(Duration::from_secs(7)), "0:07");
        assert_eq!(clock(Duration::from_secs(754)), "12:34");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn line_has_every_counter_and_the_spare_state() {
        let live = Live {
            events: 9_000_000,
            snapshots: 3,
            overwritten: 12_140,
            dropped: 2,
            missed_triggers: 1,
            spare: Spare::NotArmed,
        };
        assert_eq!(
            line(Duration::from_secs(12), &live, Some(2_660_000.0)),
            "[0:12] 2.66M events/s | snapshots 3 | overwritten 12.1k | dropped 2 | missed triggers 1 | spare not armed"
        );
        let stopped = Live {
            spare: Spare::Stopped,
            ..live
        };
        assert!(line(Duration::ZERO, &stopped, None).starts_with("[0:00] - events/s |"));
        assert!(line(Duration::ZERO, &stopped, None).ends_with("| spare stopped"));
        assert_eq!(Spare::Armed.to_string(), "armed");
        assert_eq!(Spare::Window.to_string(), "taken (--post window open)");
    }

    #[test]
    fn mode_from_the_environment() {
        assert_eq!(Mode::parse(None), Ok(Mode::Auto));
        assert_eq!(Mode::parse(Some("")), Ok(Mode::Auto));
        assert_eq!(Mode::parse(Some("always")), Ok(Mode::Always));
        assert_eq!(Mode::parse(Some(" never ")), Ok(Mode::Never));
        let err = Mode::parse(Some("yes")).unwrap_err().to_string();
        assert!(err.contains("auto, always or never"), "{err}");
    }

    #[test]
    fn quiet_hides_the_status_whatever_the_mode() {
        assert!(Mode::Auto.shown(true, false));
        assert!(!Mode::Auto.shown(false, false));
        assert!(Mode::Always.shown(false, false));
        assert!(!Mode::Never.shown(true, false));
        for mode in [Mode::Auto, Mode::Always, Mode::Never] {
            assert!(!mode.shown(true, true), "{mode:?} with --quiet");
        }
    }
}
