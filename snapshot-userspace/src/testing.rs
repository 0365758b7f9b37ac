//! What the unit and integration tests share: a deterministic random source and the random
//! trigger expressions the property tests draw (the kernel's and userspace's evaluators are
//! checked against each other on them).

/// Deterministic pseudo-random source (xorshift), so failures reproduce from the seed.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One of `xs` (which must not be empty).
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next_u64() % xs.len() as u64) as usize]
    }

    /// A value in `lo..=hi`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1).unsigned_abs()) as i64
    }
}

/// The leaves random expressions are made of: `FIELD OP VALUE` with a field from `fields`
/// and a literal from `values`; `comm == "NAME"` / `comm != "NAME"` with a name from `comms`;
/// with `stateful`, `max(FIELD)` and `changed(FIELD)`; string comparisons `STRING OP "TEXT"`
/// (`==`, `!=`, `~`, `!~`) with a string field (or `comm`) from `strings` and a literal or glob
/// from `texts`.
#[derive(Clone, Copy, Debug)]
pub struct Leaves<'a> {
    /// Field names (`f.arg0`, `f.ret`, `pid`, …).
    pub fields: &'a [&'a str],
    /// Literals compared with (`-2`, `0x8000000000000000`, `-EAGAIN`, `10ms`, …).
    pub values: &'a [&'a str],
    /// Command names for `comm` leaves (none when empty).
    pub comms: &'a [&'a str],
    /// Whether `max()` and `changed()` leaves are drawn.
    pub stateful: bool,
    /// String fields (`o.filename`, `comm`); none: no string comparisons.
    pub strings: &'a [&'a str],
    /// Literals and globs they compare with (without quotes).
    pub texts: &'a [&'a str],
}

/// Literals around every sign boundary of a signed 64-bit comparison, small values, and
/// literal forms (hex, errno names, units).
pub const BOUNDARY_VALUES: [&str; 16] = [
    "-9223372036854775807",
    "0x8000000000000000",
    "0xffffffffffffffff",
    "-1",
    "0",
    "1",
    "2",
    "5",
    "-2",
    "-EAGAIN",
    "-EBADF",
    "9223372036854775807",
    "0x7fffffffffffffff",
    "0xffffffff",
    "4K",
    "1ms",
];

/// Argument values that reach those boundaries, as unsigned words.
pub const BOUNDARY_ARGS: [u64; 12] = [
    0,
    1,
    2,
    5,
    u64::MAX,
    u64::MAX - 1,
    1 << 63,
    (1 << 63) - 1,
    (-11i64) as u64,
    0xffff_ffff,
    4096,
    1_000_000,
];

/// A random expression of at most `depth` levels of `&&`, `||` and `!` over `leaves`.
pub fn random_expr(rng: &mut Rng, leaves: Leaves<'_>, depth: u32) -> String {
    if depth == 0 || rng.next_u64().is_multiple_of(3) {
        let kind = rng.next_u64() % 10;
        if kind >= 7 && !leaves.strings.is_empty() && !leaves.texts.is_empty() {
            let field = rng.pick(leaves.strings);
            let op = rng.pick(&["==", "!=", "~", "!~"]);
            let text = rng.pick(leaves.texts);
            return format!("{field} {op} \"{text}\"");
        }
        if kind == 0 && !leaves.comms.is_empty() {
            let op = rng.pick(&["==", "!="]);
            return format!("comm {op} \"{}\"", rng.pick(leaves.comms));
        }
        let field = rng.pick(leaves.fields);
        if kind == 1 && leaves.stateful {
            return format!("max({field})");
        }
        if kind == 2 && leaves.stateful {
            return format!("changed({field})");
        }
        let op = rng.pick(&["==", "!=", "<", "<=", ">", ">=", "&"]);
        let v = rng.pick(leaves.values);
        return format!("{field} {op} {v}");
    }
    match rng.next_u64() % 3 {
        0 => format!(
            "({} && {})",
            random_expr(rng, leaves, depth - 1),
            random_expr(rng, leaves, depth - 1)
        ),
        1 => format!(
            "({} || {})",
            random_expr(rng, leaves, depth - 1),
            random_expr(rng, leaves, depth - 1)
        ),
        _ => format!("!{}", random_expr(rng, leaves, depth - 1)),
    }
}
