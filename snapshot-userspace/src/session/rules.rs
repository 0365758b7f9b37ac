//! How a trigger that fires takes its snapshot: `--count`, `--holdoff`, `--post` and
//! `--on-no-spare`, enforced in the kernel.

use snapshot_common::NoSparePolicy;

use crate::units;

/// How a trigger that fires takes its snapshot, enforced in the kernel (declared once: the
/// command line builds it, the session loads it, the controller and every snapshot header
/// read it back from the session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Most snapshots the trigger takes (`--count`; 0: no limit).
    pub count: u64,
    /// Minimum ns between two trigger snapshots (`--holdoff`).
    pub holdoff_ns: u64,
    /// What to record after a trigger before the flip (`--post`).
    pub post: Post,
    /// What a trigger does without an armed spare (`--on-no-spare`).
    pub on_no_spare: NoSparePolicy,
}

/// `--post`: what a trigger keeps recording into the snapshot before it flips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Post {
    /// Flip at once.
    #[default]
    None,
    /// The next N recorded events.
    Events(u64),
    /// Everything recorded in the next N nanoseconds.
    Nanos(u64),
}

impl Post {
    /// How a snapshot header describes the window (`None` when there is none).
    #[must_use]
    pub fn describe(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Events(n) => Some(format!("{n} events")),
            Self::Nanos(ns) => Some(units::format_duration(ns)),
        }
    }
}

/// A `--post` value that cannot be a window.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PostError {
    /// Neither an event count nor a duration.
    #[error(
        "bad --post `{0}`: give a number of events (`100`) or a duration with ns, us, ms or s (`10ms`)"
    )]
    Syntax(String),
    /// A duration too long to be a window.
    #[error("--post `{0}` is too long: a window lasts at most 86400s (a day)")]
    TooLong(String),
}

impl std::str::FromStr for Post {
    type Err = PostError;

    /// An event count (`100`, `100ev`) or a duration (`10ms`); 0 is no window.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        let count = t.strip_suffix("ev").unwrap_or(t);
        if let Ok(n) = count.parse::<u64>() {
            return Ok(if n == 0 { Self::None } else { Self::Events(n) });
        }
        match units::parse_duration(t) {
            Ok(0) => Ok(Self::None),
            Ok(ns) => Ok(Self::Nanos(ns)),
            Err(units::UnitError::DurationRange(_)) => Err(PostError::TooLong(text.to_owned())),
            Err(_) => Err(PostError::Syntax(text.to_owned())),
        }
    }
}
