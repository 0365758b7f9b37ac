//! The userspace reference of the kernel's evaluator: runs a compiled program on an event
//! exactly as `snapshot-ebpf/src/trigger.rs` does.

use snapshot_common::{
    ANY_PROBE, CmpOp, FIELD_CPU, FIELD_LATENCY, FIELD_PID, FIELD_RET, FIELD_TID, MAX_SLOTS,
    MAX_STR_OPS, MAX_STRINGS, TriggerProgram, op,
    strings::{MATCH_MAX, STR_SRC_COMM},
};

use std::collections::HashMap;

use snapshot_common::{
    MAX_CONSTS,
    sequence::{MAX_SEQS, seq_key},
};

use super::strings::run;

/// What the evaluator sees of an event (the userspace reference of the kernel's evaluator).
#[derive(Clone, Debug, Default)]
pub struct EventCtx {
    /// Probe id.
    pub probe: u32,
    /// Arguments.
    pub args: [u64; 6],
    /// Return value, if any.
    pub ret: Option<u64>,
    /// Duration, if any.
    pub latency: Option<u64>,
    /// pid, tid, cpu.
    pub pid: u64,
    /// Thread id.
    pub tid: u64,
    /// CPU.
    pub cpu: u64,
    /// Command name.
    pub comm: [u8; 16],
    /// The captured strings as the kernel compares them (the first `--string-size` bytes;
    /// `None`: unreadable or NULL).
    pub strings: [Option<Vec<u8>>; MAX_STRINGS],
}

/// The string comparisons' results on `ctx`, as the kernel computes them before the program
/// runs: 0 (no such string), 2 (no match), 3 (match).
fn string_results(prog: &TriggerProgram, ctx: &EventCtx) -> [u64; MAX_STR_OPS] {
    let mut res = [0; MAX_STR_OPS];
    for (k, r) in res.iter_mut().enumerate().take(prog.nstr as usize) {
        let sop = prog.str_ops[k];
        if sop.probe != ANY_PROBE && sop.probe != ctx.probe {
            continue;
        }
        let comm_len = ctx.comm.iter().position(|&b| b == 0).unwrap_or(15);
        let text = if sop.src == STR_SRC_COMM {
            Some(&ctx.comm[..comm_len])
        } else {
            ctx.strings.get(sop.src as usize).and_then(|s| s.as_deref())
        };
        if let Some(text) = text {
            // The kernel compares the first MATCH_MAX bytes.
            let text = &text[..text.len().min(MATCH_MAX as usize)];
            *r = 2 | u64::from(run(&prog.patterns[k], text));
        }
    }
    res
}

/// Runs a program on an event exactly as `snapshot-ebpf/src/trigger.rs` does; `state` holds
/// the `max()`/`changed()` slots (value, seen). Sequences see no earlier event here: see
/// [`evaluate_at`].
#[must_use]
pub fn evaluate(
    prog: &TriggerProgram,
    ctx: &EventCtx,
    state: &mut [(u64, bool); MAX_SLOTS],
) -> bool {
    evaluate_at(prog, (ctx, 0), state, &mut SeqState::new())
}

/// The kernel's `SEQ_STATE` map: [`seq_key`] → boot-time ns of the thread's last A (unbounded
/// here; the kernel's LRU forgets the least recently used past `SEQ_THREADS`).
pub type SeqState = HashMap<u64, u64>;

/// As [`evaluate`] for the event `ctx` recorded at boot-time `ts`, with the sequences'
/// per-thread state `seqs`, as `snapshot-ebpf/src/sequence.rs` keeps it.
#[must_use]
pub fn evaluate_at(
    prog: &TriggerProgram,
    (ctx, ts): (&EventCtx, u64),
    state: &mut [(u64, bool); MAX_SLOTS],
    seqs: &mut SeqState,
) -> bool {
    let mut stack: Vec<(u64, bool)> = Vec::new();
    let strings = string_results(prog, ctx);
    for insn in &prog.insns[..prog.len as usize] {
        match insn.op {
            op::FIELD => {
                let ok_probe = insn.b == ANY_PROBE || insn.b == ctx.probe;
                let (v, ok) = match insn.a {
                    i if i < FIELD_RET => (ctx.args[i as usize], true),
                    FIELD_RET => (ctx.ret.unwrap_or(0), ctx.ret.is_some()),
                    FIELD_LATENCY => (ctx.latency.unwrap_or(0), ctx.latency.is_some()),
                    FIELD_PID => (ctx.pid, true),
                    FIELD_TID => (ctx.tid, true),
                    FIELD_CPU => (ctx.cpu, true),
                    _ => (0, false),
                };
                stack.push(if ok_probe { (v, ok) } else { (0, false) });
            }
            op::CONST => stack.push((prog.consts[insn.b as usize], true)),
            op::COMM_EQ => stack.push((u64::from(ctx.comm == prog.comm), true)),
            op::STR => {
                let r = strings[insn.b as usize % MAX_STR_OPS];
                stack.push((r & 1, r & 2 != 0));
            }
            op::CMP | op::BITAND => {
                let (r, l) = (
                    stack.pop().unwrap_or_default(),
                    stack.pop().unwrap_or_default(),
                );
                let v = if insn.op == op::BITAND {
                    l.0 & r.0 != 0
                } else {
                    let (a, b) = (l.0 as i64, r.0 as i64);
                    match insn.a {
                        x if x == CmpOp::Eq as u8 => a == b,
                        x if x == CmpOp::Ne as u8 => a != b,
                        x if x == CmpOp::Lt as u8 => a < b,
                        x if x == CmpOp::Le as u8 => a <= b,
                        x if x == CmpOp::Gt as u8 => a > b,
                        _ => a >= b,
                    }
                };
                stack.push((u64::from(v), l.1 && r.1));
            }
            op::NOT => {
                if let Some(t) = stack.last_mut() {
                    t.0 = u64::from(t.0 == 0);
                }
            }
            op::AND | op::OR => {
                let (r, l) = (
                    stack.pop().unwrap_or_default(),
                    stack.pop().unwrap_or_default(),
                );
                let (l, r) = (l.1 && l.0 != 0, r.1 && r.0 != 0);
                stack.push((
                    u64::from(if insn.op == op::AND { l && r } else { l || r }),
                    true,
                ));
            }
            op::MAX | op::CHANGED => {
                let (v, ok) = stack.pop().unwrap_or_default();
                let mut result = false;
                if ok {
                    let slot = &mut state[insn.b as usize % MAX_SLOTS];
                    result = if insn.op == op::MAX {
                        !slot.1 || (v as i64) > (slot.0 as i64)
                    } else {
                        slot.1 && v != slot.0
                    };
                    if insn.op == op::CHANGED || result {
                        slot.0 = v;
                    }
                    slot.1 = true;
                }
                stack.push((u64::from(result), true));
            }
            op::SEQ_MATCH => {
                let (v, ok) = stack.pop().unwrap_or_default();
                let mut hit = false;
                if ok && v != 0 {
                    let key = seq_key(ctx.tid as u32, insn.a % MAX_SEQS as u8);
                    if let Some(start) = seqs.remove(&key) {
                        let window = prog.consts[insn.b as usize % MAX_CONSTS];
                        hit = start <= ts && ts - start <= window;
                    }
                }
                stack.push((u64::from(hit), true));
            }
            op::SEQ_ARM => {
                let (v, ok) = stack.pop().unwrap_or_default();
                if ok && v != 0 {
                    seqs.insert(seq_key(ctx.tid as u32, insn.a % MAX_SEQS as u8), ts);
                }
            }
            _ => return false,
        }
    }
    stack.len() == 1 && stack[0].1 && stack[0].0 != 0
}
