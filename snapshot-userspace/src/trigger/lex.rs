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
}

/// errno names accepted as `-ENAME`.
const ERRNOS: [(&str, i64); 44] = [
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("ENXIO", 6),
    ("E2BIG", 7),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("ECHILD", 10),
    ("EAGAIN", 11),
    ("EWOULDBLOCK", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ENOTTY", 25),
    ("EFBIG", 27),
    ("ENOSPC", 28),
    ("ESPIPE", 29),
    ("EROFS", 30),
    ("EMLINK", 31),
    ("EPIPE", 32),
    ("ERANGE", 34),
    ("EDEADLK", 35),
    ("ENAMETOOLONG", 36),
    ("ENOSYS", 38),
    ("ENOTEMPTY", 39),
    ("ELOOP", 40),
    ("ENOTSOCK", 88),
    ("EOPNOTSUPP", 95),
    ("EADDRINUSE", 98),
    ("ECONNRESET", 104),
    ("ENOTCONN", 107),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
];

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
                let end = expr[i + 1..]
                    .find('"')
                    .ok_or_else(|| err(i, "unterminated string".into(), "close it with `\"`"))?;
                let s = expr[i + 1..i + 1 + end].to_owned();
                i += end + 2;
                out.push((Tok::Str(s), start));
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
                    ERRNOS
                        .iter()
                        .find(|(n, _)| *n == text)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| {
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
        i += if matches!(tok, Tok::AndAnd | Tok::OrOr) || matches!(tok, Tok::Cmp(o) if o.len() == 2)
        {
            2
        } else {
            1
        };
        out.push((tok, start));
    }
    Ok(out)
}
