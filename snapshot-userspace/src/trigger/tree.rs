//! The reference semantics of the trigger language, on the syntax tree: what the kernel's
//! bytecode (and [`super::evaluate`], its userspace twin) must agree with. It walks the tree
//! directly, with the compiler's name resolution but none of its code generation, and does
//! what the stack machine does: every operand is evaluated (no short-circuit, so `max()` and
//! `changed()` see every event), a field of another probe is invalid, a comparison with an
//! invalid operand is false, `!` keeps validity, `&&`/`||` are always valid.

use snapshot_common::{
    ANY_PROBE, COMM_LEN, CmpOp, FIELD_CPU, FIELD_LATENCY, FIELD_PID, FIELD_RET, FIELD_TID,
    MAX_SLOTS,
};

use super::{Ast, EventCtx, ExprError, Operand, Trigger, compile::resolve};
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

    /// A condition's truth and validity.
    fn node(&mut self, a: &Ast) -> Result<(bool, bool), ExprError> {
        Ok(match a {
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
                (Operand::Comm, Operand::Str(s)) | (Operand::Str(s), Operand::Comm) => {
                    let mut want = [0u8; COMM_LEN];
                    let n = s.len().min(COMM_LEN);
                    want[..n].copy_from_slice(&s.as_bytes()[..n]);
                    let eq = s.len() < COMM_LEN && self.ctx.comm == want;
                    (if *op == Some(CmpOp::Ne) { !eq } else { eq }, true)
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

/// Whether the triggers fire on the event `ctx` (any one of them; `manual` never), by the
/// reference semantics above; `state` holds the `max()`/`changed()` slots, numbered in the
/// order they appear.
pub fn evaluate_tree(
    triggers: &[Trigger],
    probes: &[ProbeInfo],
    ctx: &EventCtx,
    state: &mut [(u64, bool); MAX_SLOTS],
) -> Result<bool, ExprError> {
    let mut walk = Walk {
        expr: "",
        probes,
        ctx,
        state,
        slot: 0,
    };
    let mut any = false;
    for t in triggers {
        if let Trigger::Condition { text, ast } = t {
            walk.expr = text;
            let (v, ok) = walk.node(ast)?;
            any |= v && ok;
        }
    }
    Ok(any)
}
