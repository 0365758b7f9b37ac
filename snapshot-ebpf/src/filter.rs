//! Which tasks are recorded: applied in the kernel before any record is written.

use snapshot_common::FilterMode;

use crate::maps::{TARGETS, filter_mode, self_tgid, target_tgid};

/// True when events of the process `tgid` should be recorded.
#[inline(always)]
pub fn wanted(tgid: u32) -> bool {
    // The mode is a load-time constant: the verifier prunes the branches not taken.
    let mode = filter_mode();
    if mode == FilterMode::One as u32 {
        return tgid == target_tgid();
    }
    if tgid == self_tgid() {
        return false;
    }
    if mode == FilterMode::All as u32 {
        return true;
    }
    // SAFETY: the value is a plain u8 and is only tested for presence.
    unsafe { TARGETS.get(&tgid).is_some() }
}
