//! Debug records of the flip's rare branches (see `flip.rs`), through aya-log under the target
//! [`LOG_TARGET`]: a trigger won or missed, the stop policy engaged, a `--post` window closed.
//!
//! Level: userspace patches aya-log's read-only `AYA_LOG_LEVEL` at load to the most verbose
//! level it prints for that target. Below debug, the verifier sees the constant and removes
//! each record's code, leaving the call and the level check.
//!
//! Each record is a BPF subprogram of its own (`#[inline(never)]`) that reads what it reports
//! from the notice the caller has already built on its stack (or from values the caller keeps
//! anyway): the record's buffer and strings live in the subprogram's frame and nothing stays
//! alive longer in the probe's, so the code around the call sites, the per-event path,
//! compiles almost as it does without them. aya-log does not use the program context, and
//! some callers (a writer closing a window) have none: none is passed.

use aya_log_ebpf::debug;
use core::ptr::read_volatile as rd;
use snapshot_common::{Control, Notice, names::LOG_TARGET};

/// A trigger won the spare and froze snapshot `n.seq`.
#[inline(never)]
pub fn won(n: &Notice) {
    debug!(
        &(),
        target: LOG_TARGET,
        "trigger won on probe {} (pid {}): value {}, snapshot {}",
        n.probe_id,
        (n.pid_tgid >> 32) as u32,
        n.value as i64,
        n.seq
    );
}

/// A trigger won the spare and opened its `--post` window.
#[inline(never)]
pub fn won_post(n: &Notice) {
    debug!(
        &(),
        target: LOG_TARGET,
        "trigger won on probe {} (pid {}): value {}, --post window open",
        n.probe_id,
        (n.pid_tgid >> 32) as u32,
        n.value as i64
    );
}

/// A trigger found no armed spare (already counted in `control`'s `missed`). A trigger storm
/// can make misses as frequent as events: only counts that are powers of two are logged.
#[inline(never)]
pub fn missed(control: *const Control, probe_id: u32, value: u64, pid_tgid: u64) {
    // SAFETY: `control` is the CONTROL map value; volatile as other CPUs count too.
    let missed = unsafe { rd(&raw const (*control).missed) };
    if missed & missed.wrapping_sub(1) != 0 {
        return;
    }
    debug!(
        &(),
        target: LOG_TARGET,
        "trigger missed on probe {} (pid {}): value {}, no armed spare ({} missed so far; logged at powers of two)",
        probe_id,
        (pid_tgid >> 32) as u32,
        value as i64,
        missed
    );
}

/// `--on-no-spare stop`: the trigger of `n` found no armed spare and stopped the recording.
#[inline(never)]
pub fn stopped(n: &Notice) {
    debug!(
        &(),
        target: LOG_TARGET,
        "--on-no-spare stop: the trigger on probe {} (pid {}, value {}) found no armed spare; recording stopped",
        n.probe_id,
        (n.pid_tgid >> 32) as u32,
        n.value as i64
    );
}

/// The writer that took the last ticket closed the `--post` window: snapshot `n.seq` froze.
#[inline(never)]
pub fn post_closed(n: &Notice) {
    debug!(
        &(),
        target: LOG_TARGET,
        "--post window closed: snapshot {} (trigger on probe {}, value {})",
        n.seq,
        n.probe_id,
        n.value as i64
    );
}
