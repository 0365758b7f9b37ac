//! Entry/return pairs (kprobe+kretprobe, fentry+fexit, uprobe+uretprobe on one function):
//! the entry stores its time per thread, the return takes it and carries the call's duration.
//! Keyed by `tid << 32 | pair` in an LRU hash, so threads that never return (or recursion
//! deeper than one level) cannot fill it up.

use crate::{
    maps::{ENTRY_TS, pair_of},
    record::Role,
};

/// Bookkeeping for probe `id`'s pair; returns the duration for a return with a known entry.
#[inline(always)]
pub fn track(id: u32, role: Role, pid_tgid: u64, ts: u64) -> Option<u64> {
    let pair = pair_of(id);
    if pair == 0 {
        return None;
    }
    let key = (pid_tgid << 32) | u64::from(pair);
    match role {
        Role::Entry => {
            let _ = ENTRY_TS.insert(&key, &ts, 0);
            None
        }
        Role::Return => {
            // SAFETY: the value is a plain u64, copied out before the entry is removed.
            let start = unsafe { ENTRY_TS.get(&key) }.copied()?;
            let _ = ENTRY_TS.remove(&key);
            Some(ts.saturating_sub(start))
        }
        Role::Plain => None,
    }
}
