//! Buffer sizes: `1M` (bytes per CPU per half) or `65536ev` (events per CPU per half);
//! durations (`10ms`); `--post` windows (`100` events or a duration).

use snapshot_common::Event;

use crate::recorder::Post;

/// Largest capacity accepted, in events per CPU per half (keeps the map under 4 GiB).
pub const MAX_EVENTS: u64 = 1 << 22;

/// Why a `--buffer-size` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number with a known suffix.
    #[error(
        "bad buffer size `{0}`: write bytes with an optional K/M/G suffix (`1M`) or an event count (`65536ev`)"
    )]
    Syntax(String),
    /// Too small or too large.
    #[error("buffer size `{text}` is {events} events per CPU; it must be between 16 and {max}")]
    Range {
        /// What the user wrote.
        text: String,
        /// Events it amounts to.
        events: u64,
        /// The upper bound.
        max: u64,
    },
}

/// Parses a per-CPU buffer size into a number of events.
pub fn parse_events(text: &str) -> Result<u32, SizeError> {
    let syntax = || SizeError::Syntax(text.to_owned());
    let t = text.trim();
    let events = if let Some(n) = t.strip_suffix("ev") {
        n.parse::<u64>().map_err(|_| syntax())?
    } else {
        let (digits, mult) = match t.char_indices().last() {
            Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
            Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
            Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
            _ => (t, 1),
        };
        let bytes = digits
            .parse::<u64>()
            .map_err(|_| syntax())?
            .checked_mul(mult)
            .ok_or_else(syntax)?;
        bytes / size_of::<Event>() as u64
    };
    if !(16..=MAX_EVENTS).contains(&events) {
        return Err(SizeError::Range {
            text: text.to_owned(),
            events,
            max: MAX_EVENTS,
        });
    }
    Ok(events as u32)
}

/// Parses a duration (`250us`, `10ms`, `2s`, `500ns`) into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let mult = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => {
            return Err(format!(
                "bad duration `{text}`: write a number with ns, us, ms or s, e.g. `10ms`"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            format!("bad duration `{text}`: write a number with ns, us, ms or s, e.g. `10ms`")
        })
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

/// Parses `--post`: an event count (`100`, `100ev`) or a duration (`10ms`).
pub fn parse_post(text: &str) -> Result<Post, String> {
    let t = text.trim();
    let count = t.strip_suffix("ev").unwrap_or(t);
    if let Ok(n) = count.parse::<u64>() {
        return Ok(if n == 0 { Post::None } else { Post::Events(n) });
    }
    match parse_duration(t) {
        Ok(0) => Ok(Post::None),
        Ok(ns) => Ok(Post::Nanos(ns)),
        Err(_) => Err(format!(
            "bad --post `{text}`: give a number of events (`100`) or a duration with ns, us, ms or s (`10ms`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_windows() {
        assert_eq!(parse_post("100"), Ok(Post::Events(100)));
        assert_eq!(parse_post("7ev"), Ok(Post::Events(7)));
        assert_eq!(parse_post("10ms"), Ok(Post::Nanos(10_000_000)));
        assert_eq!(parse_post("0"), Ok(Post::None));
        let e = parse_post("10 parsecs").unwrap_err();
        assert!(e.contains("`10 parsecs`") && e.contains("`10ms`"), "{e}");
        assert_eq!(format_duration(10_000_000), "10ms");
        assert_eq!(format_duration(1_500_000), "1500us");
        assert_eq!(format_duration(7), "7ns");
        assert_eq!(Post::Nanos(2_000_000_000).describe().as_deref(), Some("2s"));
        assert_eq!(Post::Events(3).describe().as_deref(), Some("3 events"));
        assert_eq!(Post::None.describe(), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms"), Ok(10_000_000));
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert!(
            parse_duration("10")
                .unwrap_err()
                .contains("ns, us, ms or s")
        );
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_events("65536ev").unwrap(), 65536);
        assert_eq!(parse_events("1M").unwrap(), (1 << 20) / 128);
        assert_eq!(parse_events("128K").unwrap(), 1024);
        assert!(matches!(parse_events("1X"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_events("8ev"), Err(SizeError::Range { .. })));
        assert!(matches!(parse_events("64G"), Err(SizeError::Range { .. })));
        assert!(matches!(
            parse_events("99999999999999999999G"),
            Err(SizeError::Syntax(_))
        ));
    }
}
