//! The reference semantics of the trigger language, on the syntax tree: what the kernel's
//! bytecode (and [`super::evaluate`], its userspace twin) must agree with. It walks the tree
//! directly, with the compiler's name resolution but none of its code generation, and does
//! what the stack machine does: every operand is evaluated (no short-circuit, so `max()` and
//! `changed()` see every event), a field of another probe is invalid, a comparison with an
//! invalid operand is false, `!` keeps validity, `&&`/`||` are always valid. A string
//! comparison reads `comm` or a captured string of the event's probe (its first `MATCH_MAX`
//! bytes; not this probe's, or unreadable: invalid); over several probes with that string, the
//! comparisons are or-ed (valid).

use snapshot_common::{
    ANY_PROBE, COMM_LEN, CmpOp, FIELD_CPU, FIELD_LATENCY, FIELD_PID, FIELD_RET, FIELD_TID,
    MAX_SLOTS, StrOp,
    strings::{MATCH_MAX, STR_SRC_COMM},
};

use super::{
    Ast, EventCtx, ExprError, History, Operand, Trigger,
    compile::{probe_ids, resolve},
    strings::{self, PatTok},
};
use crate::probe::ProbeInfo;

struct Walk<'a> {
    expr: &'a str,
    probes: &'a [ProbeInfo],
    ctx: &'a EventCtx,
    state: &'a mut [(u64, bool); MAX_SLOTS],
    slot: usize,
}

impl Walk<'_> {
    /// An operand's value and validity.
    fn operand(&self, o: &Operand, pos: usize) -> Result<(u64, bool), ExprError> {
        Ok(match o {
            Operand::Int(v) => (*v as u64, true),
            Operand::Field { probe, name } => {
                let f = resolve(self.probes, self.expr, pos, probe.as_deref(), name)?;
                if f.probe != ANY_PROBE && f.probe != self.ctx.probe {
                    return Ok((0, false));
                }
                match f.code {
                    i if i < FIELD_RET => (self.ctx.args[i as usize], true),
                    FIELD_RET => (self.ctx.ret.unwrap_or(0), self.ctx.ret.is_some()),
                    FIELD_LATENCY => (self.ctx.latency.unwrap_or(0), self.ctx.latency.is_some()),
                    FIELD_PID => (self.ctx.pid, true),
                    FIELD_TID => (self.ctx.tid, true),
                    FIELD_CPU => (self.ctx.cpu, true),
                    _ => (0, false),
                }
            }
            Operand::Comm | Operand::Str(_) => {
                return Err(ExprError::new(
                    self.expr,
                    pos,
                    "`comm` compares with a string only",
                    "write comm == \"name\"",
                ));
            }
        })
    }

    /// The text string operation `sop` reads on this event (`None`: not this event's string,
    /// or unreadable).
    fn text(&self, sop: StrOp) -> Option<&[u8]> {
        if sop.src == STR_SRC_COMM {
            let n = self
                .ctx
                .comm
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(COMM_LEN);
            return Some(&self.ctx.comm[..n]);
        }
        if sop.probe != ANY_PROBE && sop.probe != self.ctx.probe {
            return None;
        }
        let s = self.ctx.strings.get(sop.src as usize)?.as_deref()?;
        Some(&s[..s.len().min(MATCH_MAX as usize)])
    }

    /// `lhs` (`comm` or a captured string) against `text`, a literal or (`glob`) a pattern.
    fn string_leaf(
        &self,
        lhs: &Operand,
        text: &str,
        glob: bool,
        negate: bool,
        pos: usize,
    ) -> Result<(bool, bool), ExprError> {
        let sops = match lhs {
            Operand::Comm => vec![strings::op_of_comm()],
            Operand::Field { probe, name } => strings::resolve(self.probes, probe.as_deref(), name),
            _ => Vec::new(),
        };
        let toks = strings::tokens(text, glob);
        let (Some(toks), false) = (toks, sops.is_empty()) else {
            return Err(ExprError::new(
                self.expr,
                pos,
                "not a string comparison the compiler accepts",
                "compile the trigger first",
            ));
        };
        let results: Vec<(bool, bool)> = sops
            .iter()
            .map(|sop| {
                self.text(*sop)
                    .map_or((false, false), |t| (glob_matches(&toks, t) != negate, true))
            })
            .collect();
        Ok(match results.as_slice() {
            [one] => *one,
            many => (many.iter().any(|&(v, ok)| v && ok), true),
        })
    }

    /// A condition's truth and validity.
    fn node(&mut self, a: &Ast) -> Result<(bool, bool), ExprError> {
        Ok(match a {
            Ast::Probe(name, pos) => {
                // An event of the probe: one probe's is valid on its events only; several are
                // or-ed (valid).
                let ids = probe_ids(self.probes, self.expr, *pos, name)?;
                let any = ids.contains(&self.ctx.probe);
                (any, any || ids.len() > 1)
            }
            Ast::Or(l, r) | Ast::And(l, r) => {
                let (lv, lok) = self.node(l)?;
                let (rv, rok) = self.node(r)?;
                let (l, r) = (lv && lok, rv && rok);
                (
                    if matches!(a, Ast::Or(..)) {
                        l || r
                    } else {
                        l && r
                    },
                    true,
                )
            }
            Ast::Not(x) => {
                let (v, ok) = self.node(x)?;
                (!v, ok)
            }
            Ast::Cmp { lhs, op, rhs, pos } => match (lhs, rhs) {
                (lhs @ (Operand::Comm | Operand::Field { .. }), Operand::Str(s))
                | (Operand::Str(s), lhs @ (Operand::Comm | Operand::Field { .. })) => {
                    self.string_leaf(lhs, s, false, *op == Some(CmpOp::Ne), *pos)?
                }
                _ => {
                    let (l, lok) = self.operand(lhs, *pos)?;
                    let (r, rok) = self.operand(rhs, *pos)?;
                    let (a, b) = (l as i64, r as i64);
                    let v = match op {
                        None => l & r != 0,
                        Some(CmpOp::Eq) => a == b,
                        Some(CmpOp::Ne) => a != b,
                        Some(CmpOp::Lt) => a < b,
                        Some(CmpOp::Le) => a <= b,
                        Some(CmpOp::Gt) => a > b,
                        Some(CmpOp::Ge) => a >= b,
                    };
                    (v, lok && rok)
                }
            },
            Ast::Glob {
                lhs,
                pattern,
                negate,
                pos,
            } => self.string_leaf(lhs, pattern, true, *negate, *pos)?,
            Ast::Max(o, pos) | Ast::Changed(o, pos) => {
                let (v, ok) = self.operand(o, *pos)?;
                let slot = &mut self.state[self.slot % MAX_SLOTS];
                self.slot += 1;
                let mut fired = false;
                if ok {
                    fired = if matches!(a, Ast::Max(..)) {
                        !slot.1 || (v as i64) > (slot.0 as i64)
                    } else {
                        slot.1 && v != slot.0
                    };
                    if matches!(a, Ast::Changed(..)) || fired {
                        slot.0 = v;
                    }
                    slot.1 = true;
                }
                (fired, true)
            }
        })
    }
}

/// Whether glob tokens `p` match all of `t` (`*` any run, `?` one byte): the obvious
/// dynamic program, independent of the kernel's NFA.
#[must_use]
pub fn glob_matches(p: &[PatTok], t: &[u8]) -> bool {
    // `cur[j]`: the tokens so far match `t[..j]`.
    let mut cur = vec![false; t.len() + 1];
    cur[0] = true;
    for tok in p {
        let mut next = vec![false; t.len() + 1];
        match tok {
            PatTok::Star => {
                let mut any = false;
                for j in 0..=t.len() {
                    any |= cur[j];
                    next[j] = any;
                }
            }
            PatTok::Any => {
                next[1..].copy_from_slice(&cur[..t.len()]);
            }
            PatTok::Byte(b) => {
                for j in 1..=t.len() {
                    next[j] = cur[j - 1] && t[j - 1] == *b;
                }
            }
        }
        cur = next;
    }
    cur[t.len()]
}

/// Whether the triggers fire on the event `ctx` (any one of them; `manual` never), by the
/// reference semantics above; `state` holds the `max()`/`changed()` slots, numbered in the
/// order they appear. Sequences see no earlier event here: see [`evaluate_tree_at`].
pub fn evaluate_tree(
    triggers: &[Trigger],
    probes: &[ProbeInfo],
    ctx: &EventCtx,
    state: &mut [(u64, bool); MAX_SLOTS],
) -> Result<bool, ExprError> {
    evaluate_tree_at(triggers, probes, (ctx, 0), state, &mut History::default())
}

/// As [`evaluate_tree`] for the event `ctx` at boot-time `ts`, with the sequences' `history`
/// (the reference semantics in `sequence.rs`): a sequence walks B, then A, as it compiles.
pub fn evaluate_tree_at(
    triggers: &[Trigger],
    probes: &[ProbeInfo],
    (ctx, ts): (&EventCtx, u64),
    state: &mut [(u64, bool); MAX_SLOTS],
    history: &mut History,
) -> Result<bool, ExprError> {
    let mut walk = Walk {
        expr: "",
        probes,
        ctx,
        state,
        slot: 0,
    };
    let (mut any, mut seqs) = (false, 0);
    for t in triggers {
        match t {
            Trigger::Condition { text, ast } => {
                walk.expr = text;
                let (v, ok) = walk.node(ast)?;
                any |= v && ok;
            }
            Trigger::Sequence {
                text,
                first,
                then,
                within_ns,
                ..
            } => {
                walk.expr = text;
                let (b, bok) = walk.node(then)?;
                let (a, aok) = walk.node(first)?;
                any |= history.step(seqs, ctx.tid, ts, a && aok, b && bok, *within_ns);
                seqs += 1;
            }
            Trigger::Manual => {}
        }
    }
    Ok(any)
}
