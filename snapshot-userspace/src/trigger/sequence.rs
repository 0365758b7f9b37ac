//! Sequence triggers, `A then B within T`: B holds on a thread at most T after A held on the
//! same thread. Checked in the kernel (`snapshot-ebpf/src/sequence.rs`, protocol in
//! `snapshot_common::sequence`); here: the errors of the syntax, code generation, and the
//! reference semantics the compiled program is tested against.
//!
//! Semantics, per thread and per sequence:
//! - an event on which B holds fires the sequence when an A held on the same thread since the
//!   last B, at most T before it (`now - t_A <= T`); that B consumes every earlier A, fired or
//!   not (one A pairs with at most one B);
//! - an event on which A holds arms the sequence from then (a later A re-arms it: the window
//!   runs from the most recent A);
//! - B is checked before A, so an event on which both hold completes an earlier A, then arms
//!   a new one: it never pairs with itself.
//!
//! Limits: one `then` per trigger, at its top level (`then` binds loosest: `a && b then c`
//! is `(a && b) then c`); [`MAX_SEQS`] sequences; a window between 1 ns and one hour.

use std::collections::HashMap;

use snapshot_common::sequence::{MAX_SEQS, SEQ_WINDOW_MAX_NS};

use super::ExprError;

/// A `then` inside parentheses, `!` or `&&`/`||`, or a second `then` in `parse`.
pub(super) fn nested(expr: &str, pos: usize) -> ExprError {
    ExprError::new(
        expr,
        pos,
        "a sequence `A then B within T` cannot be nested in a condition",
        "write the sequence as a whole --trigger (A and B may use ( ) && || !); give other conditions their own --trigger",
    )
}

/// `A then B then C`.
pub(super) fn chained(expr: &str, pos: usize) -> ExprError {
    ExprError::new(
        expr,
        pos,
        "a sequence has two steps: `A then B then C` is not supported",
        "write `A then B within T`; for three steps, put the first two in B's probe conditions or use two --trigger options",
    )
}

/// Checks a window literal (the token at `pos`, value `ns`): a duration with a unit,
/// positive, at most [`SEQ_WINDOW_MAX_NS`].
pub(super) fn window(expr: &str, pos: usize, ns: i64) -> Result<u64, ExprError> {
    let text: String = expr[pos..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let suffix = text.trim_start_matches(|c: char| c == '-' || c.is_ascii_digit());
    let is_duration = matches!(
        crate::units::unit(suffix),
        Some((crate::units::Dimension::Time, _))
    );
    let err = |msg: String, hint: &str| ExprError::new(expr, pos, msg, hint);
    if !is_duration {
        return Err(err(
            format!("the window `{text}` is not a duration"),
            "give it a unit: ns, us, ms or s, e.g. `within 10ms`",
        ));
    }
    if ns <= 0 {
        return Err(err(
            format!("the window `{text}` can never be met: it must be longer than 0"),
            "give a positive duration, e.g. `within 10ms`",
        ));
    }
    let ns = ns as u64;
    if ns > SEQ_WINDOW_MAX_NS {
        return Err(err(
            format!(
                "the window `{text}` is longer than the {} s a sequence can check",
                SEQ_WINDOW_MAX_NS / 1_000_000_000
            ),
            "per-thread state is kept at most an hour: shorten the window",
        ));
    }
    Ok(ns)
}

/// The number of sequence `index` in the program's instructions (`Insn::a` of `op::SEQ_MATCH`
/// and `op::SEQ_ARM`), or the error when the program holds [`MAX_SEQS`] already.
pub(super) fn number(expr: &str, pos: usize, index: usize) -> Result<u8, ExprError> {
    if index >= MAX_SEQS {
        return Err(ExprError::new(
            expr,
            pos,
            format!("more than {MAX_SEQS} sequences"),
            "a recording checks at most four `then` triggers: drop one",
        ));
    }
    Ok(index as u8)
}

/// The reference semantics of sequences (module documentation), kept as each thread's list
/// of A times since its last B: independent of the kernel's one-slot state.
#[derive(Clone, Debug, Default)]
pub struct History {
    armed: HashMap<(usize, u64), Vec<u64>>,
}

impl History {
    /// One event of thread `tid` at `ts` for sequence `index`, on which A / B held: whether
    /// the sequence fires.
    pub fn step(&mut self, index: usize, tid: u64, ts: u64, a: bool, b: bool, within: u64) -> bool {
        let mut fired = false;
        if b && let Some(times) = self.armed.remove(&(index, tid)) {
            fired = times.iter().any(|&t| t <= ts && ts - t <= within);
        }
        if a {
            self.armed.entry((index, tid)).or_default().push(ts);
        }
        fired
    }
}
