//! The trigger condition, checked on every recorded event: `probe.field OP value`.

use snapshot_common::{CmpOp, FIELD_RET};

use crate::{flip, maps::TRIGGERS, record::Payload};

/// Signed comparison of `lhs OP rhs`.
#[inline(always)]
fn compare(lhs: i64, op: u32, rhs: i64) -> bool {
    match op {
        x if x == CmpOp::Eq as u32 => lhs == rhs,
        x if x == CmpOp::Ne as u32 => lhs != rhs,
        x if x == CmpOp::Lt as u32 => lhs < rhs,
        x if x == CmpOp::Le as u32 => lhs <= rhs,
        x if x == CmpOp::Gt as u32 => lhs > rhs,
        x if x == CmpOp::Ge as u32 => lhs >= rhs,
        _ => false,
    }
}

/// Fires the trigger (see [`flip::fire`]) when the event matches the condition.
#[inline(always)]
pub fn check(probe_id: u32, payload: &Payload, pid_tgid: u64) {
    let Some(t) = TRIGGERS.get(0) else {
        return;
    };
    if t.enabled == 0 || t.probe_id != probe_id {
        return;
    }
    let value = match t.field {
        0 => payload.args[0],
        1 => payload.args[1],
        2 => payload.args[2],
        3 => payload.args[3],
        4 => payload.args[4],
        5 => payload.args[5],
        FIELD_RET => payload.ret,
        _ => return,
    };
    if compare(value as i64, t.op, t.value as i64) {
        flip::fire(probe_id, value, pid_tgid);
    }
}
