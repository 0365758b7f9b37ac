//! String comparisons of the trigger language: string literals and globs turned into the
//! kernel's NFA tables ([`Pattern`]), and fields resolved to the captured strings of a probe.

use snapshot_common::{
    ANY_PROBE, Pattern, StrOp,
    strings::{PATTERN_MAX, STR_SRC_COMM, kind},
};

use crate::probe::{ProbeInfo, capture::CaptureKind};

/// One pattern position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatTok {
    /// This byte.
    Byte(u8),
    /// Any one byte (`?`).
    Any,
    /// Any bytes (`*`).
    Star,
}

/// The bytes of a string literal as written between quotes: `\\` `\"` `\*` `\?` stand for
/// themselves, `\n` `\t` `\0`, `\xNN` a byte. `None` for an unknown or incomplete escape.
fn escape(text: &str, glob: bool) -> Option<Vec<PatTok>> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        let tok = match b {
            b'\\' => PatTok::Byte(match bytes.next()? {
                c @ (b'\\' | b'"' | b'*' | b'?') => c,
                b'n' => b'\n',
                b't' => b'\t',
                b'0' => 0,
                b'x' => {
                    let hex = [bytes.next()?, bytes.next()?];
                    u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
                }
                _ => return None,
            }),
            b'*' if glob => PatTok::Star,
            b'?' if glob => PatTok::Any,
            c => PatTok::Byte(c),
        };
        // `**` is `*`.
        if !(tok == PatTok::Star && out.last() == Some(&PatTok::Star)) {
            out.push(tok);
        }
    }
    Some(out)
}

/// A literal's bytes (escapes applied).
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    escape(text, false)?
        .into_iter()
        .map(|t| match t {
            PatTok::Byte(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// The pattern tokens of `text` (a glob when `glob`, else a literal).
#[must_use]
pub fn tokens(text: &str, glob: bool) -> Option<Vec<PatTok>> {
    escape(text, glob)
}

/// The NFA tables of a pattern of at most `PATTERN_MAX` positions.
#[must_use]
pub fn glob_pattern(toks: &[PatTok]) -> Pattern {
    let mut p = Pattern::default();
    for (j, t) in toks.iter().enumerate().take(PATTERN_MAX) {
        let bit = 1u64 << j;
        match t {
            PatTok::Byte(b) => p.lit[*b as usize] |= bit,
            PatTok::Any => p.lit.iter_mut().for_each(|l| *l |= bit),
            PatTok::Star => p.star |= bit,
        }
    }
    p.accept = 1 << toks.len().min(PATTERN_MAX);
    p.init = 1 | ((1 & p.star) << 1);
    p
}

/// Runs a pattern over `text` exactly as the kernel does.
#[must_use]
pub fn run(p: &Pattern, text: &[u8]) -> bool {
    let mut s = p.init;
    for &c in text {
        s = p.step(s, c);
        if s == 0 {
            return false;
        }
    }
    s & p.accept != 0
}

/// The string a comparison reads: `comm`, or a probe's captured string.
pub fn op_of_comm() -> StrOp {
    StrOp {
        probe: ANY_PROBE,
        src: STR_SRC_COMM,
        kind: kind::STR,
        pad: [0; 2],
    }
}

/// The captured strings `name` of `probe` (of every probe so named), or of every probe that
/// has one when no probe is named: empty when it is not a captured string (a number, or
/// unknown: the numeric resolution reports that). A comparison on several is true when it is
/// true on the event's own.
#[must_use]
pub fn resolve(probes: &[ProbeInfo], probe: Option<&str>, name: &str) -> Vec<StrOp> {
    probes
        .iter()
        .filter(|p| probe.is_none_or(|n| p.name == n))
        .filter_map(|p| {
            let i = p.captures.iter().position(|c| c.name == name)?;
            Some(StrOp {
                probe: p.id,
                src: i as u8,
                kind: if p.captures[i].kind == CaptureKind::Buf {
                    kind::BUF
                } else {
                    kind::STR
                },
                pad: [0; 2],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree's meaning of a glob, written the slow, obvious way.
    fn reference(p: &[PatTok], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((PatTok::Star, rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((PatTok::Any, rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((PatTok::Byte(b), rest)) => t.first() == Some(b) && reference(rest, &t[1..]),
        }
    }

    #[test]
    fn globs_match_like_the_reference() {
        let texts: [&[u8]; 9] = [
            b"",
            b"/tmp/a.lock",
            b"/tmp/x/y.lock",
            b"/tmp/.lock",
            b"/etc/shadow",
            b"lock",
            b"aaa",
            b"a*b",
            b"\xc3\xa9t\xc3\xa9",
        ];
        let patterns = [
            "/tmp/*.lock",
            "/tmp/*",
            "*",
            "",
            "/etc/shadow",
            "*lock",
            "a*a*a",
            "?",
            "a\\*b",
            "*?*",
            "\\xc3\\xa9t*",
            "**.lock",
        ];
        for pat in patterns {
            let toks = tokens(pat, true).unwrap();
            let p = glob_pattern(&toks);
            for t in texts {
                assert_eq!(run(&p, t), reference(&toks, t), "{pat:?} on {t:?}");
                assert_eq!(
                    crate::trigger::tree::glob_matches(&toks, t),
                    reference(&toks, t),
                    "the tree's glob: {pat:?} on {t:?}"
                );
            }
        }
        assert!(run(
            &glob_pattern(&tokens("/tmp/*", true).unwrap()),
            b"/tmp/x"
        ));
        assert!(
            !run(&glob_pattern(&tokens("a*b", false).unwrap()), b"axb"),
            "literal"
        );
        assert!(run(&glob_pattern(&tokens("a*b", false).unwrap()), b"a*b"));
        assert_eq!(unescape("a\\\"b\\x41"), Some(b"a\"bA".to_vec()));
        assert_eq!(unescape("bad\\q"), None);
    }
}
