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
/// and a value in `values`, and string comparisons `STRING OP "TEXT"` (`==`, `!=`, `~`, `!~`)
/// with a string field (or `comm`) from `strings` and a literal or glob from `texts`.
#[derive(Clone, Copy, Debug)]
pub struct Leaves<'a> {
    /// Field names (`f.arg0`, `pid`, …).
    pub fields: &'a [&'a str],
    /// Smallest and largest value compared with.
    pub values: (i64, i64),
    /// String fields (`o.filename`, `comm`); none: numeric leaves only.
    pub strings: &'a [&'a str],
    /// Literals and globs they compare with (without quotes).
    pub texts: &'a [&'a str],
}

/// A random expression of at most `depth` levels of `&&`, `||` and `!` over `leaves`.
pub fn random_expr(rng: &mut Rng, leaves: Leaves<'_>, depth: u32) -> String {
    if depth == 0 || rng.next_u64().is_multiple_of(3) {
        if !leaves.strings.is_empty()
            && !leaves.texts.is_empty()
            && rng.next_u64().is_multiple_of(2)
        {
            let field = rng.pick(leaves.strings);
            let op = rng.pick(&["==", "!=", "~", "!~"]);
            let text = rng.pick(leaves.texts);
            return format!("{field} {op} \"{text}\"");
        }
        let field = rng.pick(leaves.fields);
        let op = rng.pick(&["==", "!=", "<", "<=", ">", ">=", "&"]);
        let v = rng.between(leaves.values.0, leaves.values.1);
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
