//! The trigger language: parsed, type-checked and compiled into the [`TriggerProgram`] the
//! probes evaluate in the kernel.
//!
//! ```text
//! expr    := and ('||' and)*
//! and     := unary ('&&' unary)*
//! trigger := expr | expr 'then' expr 'within' DURATION   (see `sequence.rs`)
//! unary   := '!' unary | '(' expr ')' | 'max' '(' field ')' | 'changed' '(' field ')'
//!          | 'crash' | 'oom' | 'signal' '(' SIGNAME | number ')'   (built-ins: [`builtin`])
//!          | operand OP operand          OP: == != < <= > >= & (bit test)
//!          | string ('~' | '!~') "glob"  (`*` any bytes, `?` one byte, `\*` a star)
//!          | PROBE                       (any event of that probe)
//! operand := field | literal
//! field   := PROBE '.' (argN | ret | latency | TRACEPOINT_FIELD) | pid | tid | cpu | comm
//! literal := 12 | 0x1f | -3 | -ENOENT | 10ms (ns us ms s) | 4K (K M G) | "text"
//! string  := a captured string field (`PROBE.filename`, or `filename` when one probe has it)
//!          | comm
//! ```
//!
//! Numbers compare signed 64-bit. Strings compare with `==`, `!=`, `~`, `!~`, in the kernel,
//! on the bytes captured (the first `--string-size`). A field of another probe than the
//! event's, or a string the event could not read, makes its comparison false. Limits: 32
//! instructions, stack depth 8, 8 constants, 4 `max`/`changed`, 4 string comparisons with
//! patterns of at most 63 characters; windows of sequences up to an hour (a sequence of two
//! simple comparisons takes 8 instructions: three fit).

pub mod builtin;
#[cfg(test)]
mod builtin_tests;
mod compile;
mod eval;
mod lex;
mod parse;
mod sequence;
#[cfg(test)]
mod sequence_tests;
mod strings;
#[cfg(test)]
mod tests;
mod tree;

use std::{fmt, str::FromStr};

pub use compile::{FieldRef, compile, compile_sized, glob_pattern};
pub use eval::{EventCtx, SeqState, evaluate, evaluate_at};
pub use parse::{Ast, Operand, parse};
pub use sequence::History;
pub use tree::{evaluate_tree, evaluate_tree_at};

/// A trigger expression that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ExprError {
    /// The expression.
    pub expr: String,
    /// Byte offset of the fault.
    pub pos: usize,
    /// What is wrong.
    pub msg: String,
    /// How to fix it.
    pub hint: String,
}

/// Longest expression quoted whole under an error; a longer one is shown around the fault.
const QUOTED: usize = 100;

impl ExprError {
    /// The message, the expression (around the fault when it is long) with a caret under the
    /// fault, and the hint.
    fn render(&self) -> String {
        let (mut start, mut end) = (0, self.expr.len());
        if end > QUOTED {
            start = self.pos.saturating_sub(QUOTED / 2).min(end);
            end = (start + QUOTED).min(end);
            while !self.expr.is_char_boundary(start) {
                start -= 1;
            }
            while !self.expr.is_char_boundary(end) {
                end += 1;
            }
        }
        let (before, after) = (
            if start > 0 { "…" } else { "" },
            if end < self.expr.len() { "…" } else { "" },
        );
        let caret =
            self.expr[start..self.pos.clamp(start, end)].chars().count() + before.chars().count();
        format!(
            "{}\n    {before}{}{after}\n    {}^\n  hint: {}",
            self.msg,
            &self.expr[start..end],
            " ".repeat(caret),
            self.hint
        )
    }

    pub(crate) fn new(
        expr: &str,
        pos: usize,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            expr: expr.to_owned(),
            pos,
            msg: msg.into(),
            hint: hint.into(),
        }
    }
}

/// One `--trigger`, parsed once: `manual` (snapshots on request only), or a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `manual`: SIGUSR1 or `snapshot trigger` only.
    Manual,
    /// A condition checked in the kernel on every recorded event.
    Condition {
        /// The expression as written.
        text: String,
        /// Its syntax tree (names are resolved against the probes when compiled).
        ast: Ast,
    },
    /// `A then B within T`: B on a thread at most T after A on the same thread, checked in
    /// the kernel (see `sequence.rs`).
    Sequence {
        /// The expression as written.
        text: String,
        /// A.
        first: Ast,
        /// B.
        then: Ast,
        /// T, ns.
        within_ns: u64,
        /// Offset of `then`.
        pos: usize,
    },
}

impl FromStr for Trigger {
    type Err = ExprError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "manual" {
            return Ok(Self::Manual);
        }
        Ok(match parse::parse_trigger(text)? {
            (ast, None) => Self::Condition {
                text: text.to_owned(),
                ast,
            },
            (first, Some(then)) => Self::Sequence {
                text: text.to_owned(),
                first,
                then: then.ast,
                within_ns: then.within_ns,
                pos: then.pos,
            },
        })
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manual => f.write_str("manual"),
            Self::Condition { text, .. } | Self::Sequence { text, .. } => f.write_str(text),
        }
    }
}

/// The triggers as a snapshot header shows them: `a || b`.
#[must_use]
pub fn describe(triggers: &[Trigger]) -> String {
    triggers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" || ")
}

/// The sequences among `triggers`, in the order the compiled program numbers them (a
/// notice's `sequence` is one more than the index).
#[must_use]
pub fn sequences(triggers: &[Trigger]) -> Vec<String> {
    triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Sequence { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}
