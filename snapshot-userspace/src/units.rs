//! Quantities as people write them, in one table for the command line and the trigger
//! language: durations (`250us`, `10ms`, `2s`), sizes (`4K`, `1M`), buffer sizes in bytes or
//! events (`1M`, `65536ev`), and wall-clock times (`2026-11-26T06:22:42.617Z`).
//!
//! Case rules: time units are lower case (`ns us ms s`); size units take either case
//! (`K k M m G g`).

use snapshot_common::Event;

/// What a unit measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// Nanoseconds.
    Time,
    /// Bytes.
    Size,
}

/// Every unit suffix, its dimension and how many base units (ns, bytes) it is.
const UNITS: [(&str, Dimension, u64); 10] = [
    ("ns", Dimension::Time, 1),
    ("us", Dimension::Time, 1_000),
    ("ms", Dimension::Time, 1_000_000),
    ("s", Dimension::Time, 1_000_000_000),
    ("K", Dimension::Size, 1 << 10),
    ("k", Dimension::Size, 1 << 10),
    ("M", Dimension::Size, 1 << 20),
    ("m", Dimension::Size, 1 << 20),
    ("G", Dimension::Size, 1 << 30),
    ("g", Dimension::Size, 1 << 30),
];

/// The dimension and multiplier of a unit suffix (`ms`, `K`), or `None` for an unknown one.
#[must_use]
pub fn unit(suffix: &str) -> Option<(Dimension, u64)> {
    UNITS
        .iter()
        .find(|(s, _, _)| *s == suffix)
        .map(|&(_, d, m)| (d, m))
}

/// Largest capacity accepted, in events per CPU per half (keeps the map under 4 GiB).
pub const MAX_EVENTS: u64 = 1 << 22;

/// Smallest capacity accepted, in events per CPU per half.
pub const MIN_EVENTS: u64 = 16;

/// Why a quantity was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    /// A buffer size that is not a number with a known suffix.
    #[error(
        "bad buffer size `{0}`: write bytes with an optional K/M/G suffix (`1M`) or an event count (`65536ev`)"
    )]
    Size(String),
    /// A buffer size too small or too large.
    #[error(
        "buffer size `{text}` is {events} events per CPU; it must be between {MIN_EVENTS} and {max}"
    )]
    SizeRange {
        /// What the user wrote.
        text: String,
        /// Events it amounts to.
        events: u64,
        /// The upper bound.
        max: u64,
    },
    /// A duration that is not a number with a time unit.
    #[error("bad duration `{0}`: write a number with ns, us, ms or s, e.g. `10ms`")]
    Duration(String),
    /// A duration longer than any window or hold-off can be.
    #[error("duration `{0}` is too long: at most 86400s (a day)")]
    DurationRange(String),
    /// A byte count that is not a number with an optional K/M/G suffix, or is 0.
    #[error(
        "bad size `{0}`: write a number of bytes above 0 with an optional K, M or G suffix, e.g. `64M`"
    )]
    Bytes(String),
}

/// Longest duration accepted (`--post`, `--holdoff`): a day, so that boot-time arithmetic
/// (`now + duration`, in the kernel too) cannot overflow.
pub const MAX_DURATION_NS: u64 = 86_400 * 1_000_000_000;

/// Splits `text` into its leading digits and the rest (the suffix).
fn split_number(text: &str) -> (&str, &str) {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(split)
}

/// Parses a per-CPU buffer size (`1M` bytes, `65536ev` events) into a number of events.
pub fn parse_events(text: &str) -> Result<u32, UnitError> {
    let syntax = || UnitError::Size(text.to_owned());
    let t = text.trim();
    let events = if let Some(n) = t.strip_suffix("ev") {
        n.parse::<u64>().map_err(|_| syntax())?
    } else {
        let (digits, suffix) = split_number(t);
        let mult = match suffix {
            "" => 1,
            s => match unit(s) {
                Some((Dimension::Size, m)) => m,
                _ => return Err(syntax()),
            },
        };
        let bytes = digits
            .parse::<u64>()
            .map_err(|_| syntax())?
            .checked_mul(mult)
            .ok_or_else(syntax)?;
        bytes / size_of::<Event>() as u64
    };
    if !(MIN_EVENTS..=MAX_EVENTS).contains(&events) {
        return Err(UnitError::SizeRange {
            text: text.to_owned(),
            events,
            max: MAX_EVENTS,
        });
    }
    Ok(events as u32)
}

/// Parses a duration (`250us`, `10ms`, `2s`, `500ns`) into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, UnitError> {
    let (digits, suffix) = split_number(text.trim());
    let Some((Dimension::Time, mult)) = unit(suffix) else {
        return Err(UnitError::Duration(text.to_owned()));
    };
    let ns = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(mult));
    match ns {
        Some(ns) if ns <= MAX_DURATION_NS => Ok(ns),
        _ if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Err(UnitError::DurationRange(text.to_owned()))
        }
        _ => Err(UnitError::Duration(text.to_owned())),
    }
}

/// Parses a byte count (`4096`, `64K`, `1M`, `2G`); 0 is refused.
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let (digits, suffix) = split_number(text.trim());
    let mult = match suffix {
        "" => 1,
        s => match unit(s) {
            Some((Dimension::Size, m)) => m,
            _ => return Err(UnitError::Bytes(text.to_owned())),
        },
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| UnitError::Bytes(text.to_owned()))
}

/// Formats a byte count in the largest unit that keeps it whole (`64M`, `1536K`, `100`).
#[must_use]
pub fn format_bytes(n: u64) -> String {
    for (unit, mult) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if n != 0 && n.is_multiple_of(mult) {
            return format!("{}{unit}", n / mult);
        }
    }
    n.to_string()
}

/// Formats nanoseconds in the largest unit that keeps them whole (`10ms`, `1500us`).
#[must_use]
pub fn format_duration(ns: u64) -> String {
    for (unit, mult) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
        if ns != 0 && ns.is_multiple_of(mult) {
            return format!("{}{unit}", ns / mult);
        }
    }
    format!("{ns}ns")
}

/// Formats a measured span for reading: `812ns`, `3.412us`, `3.412ms`, `1.250s`.
#[must_use]
pub fn format_elapsed(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.3}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.3}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

/// `2026-11-26T06:22:42.617Z` for a wall-clock time in ns (civil-from-days, proleptic
/// Gregorian, UTC).
#[must_use]
pub fn utc(wall_ns: u64) -> String {
    let secs = wall_ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        wall_ns % 1_000_000_000 / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_with_its_case_rules() {
        assert_eq!(unit("ms"), Some((Dimension::Time, 1_000_000)));
        assert_eq!(unit("k"), Some((Dimension::Size, 1024)));
        assert_eq!(unit("m"), Some((Dimension::Size, 1 << 20)));
        assert_eq!(unit("MS"), None, "time units are lower case");
        assert_eq!(unit(""), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms"), Ok(10_000_000));
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration("500ns"), Ok(500));
        let e = parse_duration("10").unwrap_err().to_string();
        assert!(e.contains("ns, us, ms or s"), "{e}");
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("4K").is_err(), "a size is not a duration");
        assert_eq!(parse_duration("86400s"), Ok(MAX_DURATION_NS));
        assert!(matches!(
            parse_duration("86401s"),
            Err(UnitError::DurationRange(_))
        ));
        assert!(matches!(
            parse_duration("18446744073s"),
            Err(UnitError::DurationRange(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(UnitError::DurationRange(_))
        ));
        assert_eq!(format_duration(10_000_000), "10ms");
        assert_eq!(format_duration(1_500_000), "1500us");
        assert_eq!(format_duration(7), "7ns");
        assert_eq!(format_elapsed(812), "812ns");
        assert_eq!(format_elapsed(3_412_345), "3.412ms");
        assert_eq!(format_elapsed(1_250_000_000), "1.250s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_events("65536ev").unwrap(), 65536);
        assert_eq!(parse_events("1M").unwrap(), (1 << 20) / 128);
        assert_eq!(parse_events("1m").unwrap(), (1 << 20) / 128);
        assert_eq!(parse_events("128K").unwrap(), 1024);
        assert!(matches!(parse_events("1X"), Err(UnitError::Size(_))));
        assert!(matches!(parse_events("1ms"), Err(UnitError::Size(_))));
        assert!(matches!(
            parse_events("8ev"),
            Err(UnitError::SizeRange { .. })
        ));
        assert!(matches!(
            parse_events("64G"),
            Err(UnitError::SizeRange { .. })
        ));
        assert!(matches!(
            parse_events("99999999999999999999G"),
            Err(UnitError::Size(_))
        ));
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        for bad in ["0", "", "1ms", "K", "-1", "99999999999999999999G"] {
            assert!(
                matches!(parse_bytes(bad), Err(UnitError::Bytes(_))),
                "{bad}"
            );
        }
        assert_eq!(format_bytes(64 << 20), "64M");
        assert_eq!(format_bytes(1536 << 10), "1536K");
        assert_eq!(format_bytes(100), "100");
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_795_673_962_617_000_000), "2026-11-26T06:19:22.617Z");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
