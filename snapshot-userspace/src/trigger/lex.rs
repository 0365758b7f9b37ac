//! Tokens of the trigger language, with their byte offsets (for the caret under a fault).

use super::ExprError;

/// A token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// Identifier (probe, field, `max`, `comm`, …).
    Ident(String),
    /// Integer literal, units and errno names already applied.
    Int(i64),
    /// String literal.
    Str(String),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `.`
    Dot,
    /// `!`
    Not,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `&`
    Amp,
    /// `== != < <= > >=`
    Cmp(&'static str),
    /// `~` (glob match) or `!~` (no match; `true`).
    Glob(bool),
}

/// The multiplier of a literal's unit suffix (`10ms`, `4K`; none for a plain number).
fn multiplier(suffix: &str) -> Option<i64> {
    if suffix.is_empty() {
        return Some(1);
    }
    crate::units::unit(suffix).map(|(_, m)| m as i64)
}

/// Splits `expr` into tokens.
pub fn lex(expr: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, msg: String, hint: &str| ExprError::new(expr, pos, msg, hint);
    while i < b.len() {
        let c = b[i];
        let start = i;
        let two = expr.get(i..i + 2).unwrap_or("");
        let tok = match c {
            b' ' | b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'.' => Tok::Dot,
            _ if two == "&&" => Tok::AndAnd,
            _ if two == "!~" => Tok::Glob(true),
            b'~' => Tok::Glob(false),
            _ if two == "||" => Tok::OrOr,
            _ if ["==", "!=", "<=", ">="].contains(&two) => Tok::Cmp(
                ["==", "!=", "<=", ">="]
                    .into_iter()
                    .find(|o| *o == two)
                    .unwrap_or("=="),
            ),
            b'<' => Tok::Cmp("<"),
            b'>' => Tok::Cmp(">"),
            b'!' => Tok::Not,
            b'&' => Tok::Amp,
            b'=' => return Err(err(i, "`=` is not an operator".into(), "compare with `==`")),
            b'|' => {
                return Err(err(
                    i,
                    "`|` is not an operator".into(),
                    "use `||` for or, `&` for a bit test",
                ));
            }
            b'"' => {
                // The text between the quotes, escapes kept (`\"` does not end it): `==` and
                // globs read them differently (see `compile::unescape`).
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                if j >= b.len() {
                    return Err(err(i, "unterminated string".into(), "close it with `\"`"));
                }
                out.push((Tok::Str(expr[i + 1..j].to_owned()), start));
                i = j + 1;
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let neg = c == b'-';
                let body_start = if neg { i + 1 } else { i };
                let mut j = body_start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let text = &expr[body_start..j];
                let value = if text.starts_with('E') {
                    crate::abi::errno_value(text).ok_or_else(|| {
                        err(
                            body_start,
                            format!("unknown errno name `{text}`"),
                            "write a number, or a name such as ENOENT, EBADF, EINVAL, EAGAIN",
                        )
                    })?
                } else if let Some(hex) =
                    text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))
                {
                    let v = u64::from_str_radix(hex, 16).map_err(|_| {
                        err(
                            body_start,
                            format!("bad hex number `{text}`"),
                            "write 0x followed by hex digits",
                        )
                    })?;
                    v as i64
                } else {
                    let digits = text
                        .find(|ch: char| !ch.is_ascii_digit())
                        .unwrap_or(text.len());
                    if digits == 0 {
                        return Err(err(
                            start,
                            "`-` must be followed by a number or an errno name".into(),
                            "write e.g. -1 or -ENOENT",
                        ));
                    }
                    let n: i64 = text[..digits].parse().map_err(|_| {
                        err(
                            body_start,
                            format!("number `{text}` is too large"),
                            "numbers are signed 64-bit",
                        )
                    })?;
                    let mult = multiplier(&text[digits..]).ok_or_else(|| {
                        err(
                            body_start + digits,
                            format!("unknown unit `{}`", &text[digits..]),
                            "durations take ns, us, ms, s; sizes K, M, G",
                        )
                    })?;
                    n.checked_mul(mult).ok_or_else(|| {
                        err(
                            body_start,
                            format!("`{text}` is too large"),
                            "numbers are signed 64-bit",
                        )
                    })?
                };
                i = j;
                // `-0x8000000000000000` is i64::MIN: negation in two's complement, as the
                // comparison sees the word.
                out.push((
                    Tok::Int(if neg { value.wrapping_neg() } else { value }),
                    start,
                ));
                continue;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                out.push((Tok::Ident(expr[i..j].to_owned()), start));
                i = j;
                continue;
            }
            _ => {
                return Err(err(
                    i,
                    format!(
                        "unexpected character `{}`",
                        expr[i..].chars().next().unwrap_or('?')
                    ),
                    "see `snapshot record --help` for the trigger syntax",
                ));
            }
        };
        i += if matches!(tok, Tok::AndAnd | Tok::OrOr | Tok::Glob(true))
            || matches!(tok, Tok::Cmp(o) if o.len() == 2)
        {
            2
        } else {
            1
        };
        out.push((tok, start));
    }
    Ok(out)
}
