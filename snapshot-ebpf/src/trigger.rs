//! The trigger condition, checked on every recorded event: a small stack machine compiled by
//! userspace (`snapshot-userspace/src/trigger/`) and kept in the `TRIGGERS` map, so no
//! expression needs an eBPF rebuild. String comparisons are evaluated first (`strmatch.rs`)
//! and pushed as booleans by `op::STR`.
//!
//! Verifier-friendliness: the loop is bounded by `MAX_INSNS` and by the loaded trigger's length,
//! and the string comparisons are there only when the loaded trigger has some (its shape,
//! `snapshot_common::shape`: load-time constants, so the verifier walks only the iterations
//! and the string code this trigger reaches: most of a probe program's verification). Every
//! index is masked, and the machine's state lives in this CPU's `SCRATCH` value, read and
//! written through volatile accesses. Registers then carry nothing that differs between the
//! branches of one instruction, so the verifier's states converge after each instruction
//! instead of multiplying with every path. (Guarding each operation by the shape as well was
//! measured to undo that: constants left in registers kept states apart, and a uretprobe with
//! a broad trigger went past the verifier's million instructions.)

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_smp_processor_id},
    programs::tracing::StackIdContext,
};
use core::ptr::{read_volatile as rd, write_volatile as wr};
use snapshot_common::{
    ANY_PROBE, CmpOp, EVENT_HAS_RET, FIELD_CPU, FIELD_LATENCY, FIELD_PID, FIELD_RET, FIELD_TID,
    MAX_CONSTS, MAX_INSNS, MAX_SLOTS, STACK_DEPTH, op, sequence::fired,
};

use crate::{
    flip,
    maps::{SCRATCH, Scratch, TRIGGER_STATE, TRIGGERS, trigger_len, trigger_uses},
    record::Payload,
    sequence, strmatch,
};

const MASK: u64 = STACK_DEPTH as u64 - 1;
const _: () = assert!(
    STACK_DEPTH.is_power_of_two() && MAX_CONSTS.is_power_of_two() && MAX_SLOTS.is_power_of_two()
);

/// Signed comparison of `lhs OP rhs`.
#[inline(always)]
fn compare(lhs: i64, cmp: u8, rhs: i64) -> bool {
    match cmp {
        x if x == CmpOp::Eq as u8 => lhs == rhs,
        x if x == CmpOp::Ne as u8 => lhs != rhs,
        x if x == CmpOp::Lt as u8 => lhs < rhs,
        x if x == CmpOp::Le as u8 => lhs <= rhs,
        x if x == CmpOp::Gt as u8 => lhs > rhs,
        x if x == CmpOp::Ge as u8 => lhs >= rhs,
        _ => false,
    }
}

/// A field of the current event: (value, valid).
#[inline(always)]
fn field(
    code: u8,
    probe: u32,
    probe_id: u32,
    p: &Payload,
    pid_tgid: u64,
    duration: Option<u64>,
) -> (u64, bool) {
    if probe != ANY_PROBE && probe != probe_id {
        return (0, false);
    }
    match code {
        0 => (p.args[0], true),
        1 => (p.args[1], true),
        2 => (p.args[2], true),
        3 => (p.args[3], true),
        4 => (p.args[4], true),
        5 => (p.args[5], true),
        FIELD_RET => (p.ret, p.flags & EVENT_HAS_RET != 0),
        FIELD_LATENCY => (duration.unwrap_or(0), duration.is_some()),
        FIELD_PID => (pid_tgid >> 32, true),
        FIELD_TID => (pid_tgid & 0xffff_ffff, true),
        // SAFETY: helper without preconditions.
        FIELD_CPU => (u64::from(unsafe { bpf_get_smp_processor_id() }), true),
        _ => (0, false),
    }
}

/// Pushes (value, valid).
///
/// # Safety
/// `s` is this CPU's `SCRATCH` value.
#[inline(always)]
unsafe fn push(s: *mut Scratch, v: u64, ok: bool) {
    // SAFETY: guaranteed by the caller; indices are masked into the arrays.
    unsafe {
        let sp = rd(&raw const (*s).sp);
        wr(&raw mut (*s).vals[(sp & MASK) as usize], v);
        wr(&raw mut (*s).oks[(sp & MASK) as usize], u64::from(ok));
        wr(&raw mut (*s).sp, sp + 1);
    }
}

/// Pops (value, valid).
///
/// # Safety
/// As for [`push`].
#[inline(always)]
unsafe fn pop(s: *mut Scratch) -> (u64, bool) {
    // SAFETY: guaranteed by the caller; indices are masked into the arrays.
    unsafe {
        let sp = rd(&raw const (*s).sp).wrapping_sub(1);
        wr(&raw mut (*s).sp, sp);
        let i = (sp & MASK) as usize;
        (rd(&raw const (*s).vals[i]), rd(&raw const (*s).oks[i]) != 0)
    }
}

/// Evaluates the trigger program on the event (`slot`: its payload slot, for string
/// comparisons) and fires the flip when it holds.
#[inline(always)]
pub fn check<C: StackIdContext>(
    ctx: &C,
    probe_id: u32,
    payload: &Payload,
    pid_tgid: u64,
    ts: u64,
    duration: Option<u64>,
    slot: u64,
) {
    let Some(prog) = TRIGGERS.get_ptr(0) else {
        return;
    };
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `prog` is the TRIGGERS value, `s` this CPU's SCRATCH value. A nested program on
    // this CPU could only overwrite scratch values (a wrong trigger decision, never memory
    // outside the map value).
    unsafe {
        let len = rd(&raw const (*prog).len) as usize;
        if len == 0 {
            return;
        }
        if trigger_uses(op::STR) && rd(&raw const (*prog).nstr) != 0 {
            strmatch::evaluate(prog, probe_id, slot);
        }
        wr(&raw mut (*s).sp, 0);
        wr(&raw mut (*s).have, 0);
        wr(&raw mut (*s).value, 0);
        wr(&raw mut (*s).seq, 0);
        // Bounded by the loaded shape too (a load-time constant), so the verifier walks only
        // the iterations this trigger has.
        for pc in 0..MAX_INSNS {
            if pc >= len || pc >= trigger_len() {
                break;
            }
            let insn = rd(&raw const (*prog).insns[pc]);
            match insn.op {
                op::FIELD => {
                    let (v, ok) = field(insn.a, insn.b, probe_id, payload, pid_tgid, duration);
                    if ok && rd(&raw const (*s).have) == 0 {
                        wr(&raw mut (*s).value, v);
                        wr(&raw mut (*s).have, 1);
                    }
                    push(s, v, ok);
                }
                op::CONST => push(
                    s,
                    rd(&raw const (*prog).consts[(insn.b as usize) & (MAX_CONSTS - 1)]),
                    true,
                ),
                op::STR => {
                    let r = strmatch::result(insn.b);
                    push(s, r & 1, r & 2 != 0);
                }
                op::COMM_EQ => {
                    let comm = bpf_get_current_comm().unwrap_or_default();
                    push(s, u64::from(comm == rd(&raw const (*prog).comm)), true);
                }
                op::CMP | op::BITAND => {
                    let (r, rok) = pop(s);
                    let (l, lok) = pop(s);
                    let v = if insn.op == op::CMP {
                        compare(l as i64, insn.a, r as i64)
                    } else {
                        l & r != 0
                    };
                    push(s, u64::from(v), lok && rok);
                }
                op::NOT => {
                    let (v, ok) = pop(s);
                    push(s, u64::from(v == 0), ok);
                }
                op::AND | op::OR => {
                    let (r, rok) = pop(s);
                    let (l, lok) = pop(s);
                    let (l, r) = (lok && l != 0, rok && r != 0);
                    push(
                        s,
                        u64::from(if insn.op == op::AND { l && r } else { l || r }),
                        true,
                    );
                }
                op::MAX | op::CHANGED => {
                    let (v, ok) = pop(s);
                    let mut result = false;
                    if ok && let Some(state) = TRIGGER_STATE.get_ptr_mut(0) {
                        let slot = (insn.b as usize) & (MAX_SLOTS - 1);
                        let last = rd(&raw const (*state).value[slot]);
                        let seen = rd(&raw const (*state).seen[slot]) != 0;
                        result = if insn.op == op::MAX {
                            !seen || (v as i64) > (last as i64)
                        } else {
                            seen && v != last
                        };
                        if insn.op == op::CHANGED || result {
                            wr(&raw mut (*state).value[slot], v);
                        }
                        wr(&raw mut (*state).seen[slot], 1);
                    }
                    push(s, u64::from(result), true);
                }
                op::SEQ_MATCH => {
                    let (v, ok) = pop(s);
                    let mut hit = false;
                    if ok && v != 0 {
                        let window =
                            rd(&raw const (*prog).consts[(insn.b as usize) & (MAX_CONSTS - 1)]);
                        if let Some(start) = sequence::complete(insn.a, pid_tgid, ts, window) {
                            hit = true;
                            if rd(&raw const (*s).seq) == 0 {
                                wr(&raw mut (*s).seq, u64::from(insn.a) + 1);
                                wr(&raw mut (*s).seq_start, start);
                            }
                        }
                    }
                    push(s, u64::from(hit), true);
                }
                op::SEQ_ARM => {
                    let (v, ok) = pop(s);
                    if ok && v != 0 {
                        sequence::arm(insn.a, pid_tgid, ts);
                    }
                }
                _ => return,
            }
        }
        let (v, ok) = pop(s);
        if rd(&raw const (*s).sp) == 0 && ok && v != 0 {
            let seq = rd(&raw const (*s).seq);
            let sequence = if seq == 0 {
                0
            } else {
                fired(seq as u32, rd(&raw const (*s).seq_start))
            };
            flip::fire(
                ctx,
                probe_id,
                rd(&raw const (*s).value),
                pid_tgid,
                ts,
                sequence,
            );
        }
    }
}
