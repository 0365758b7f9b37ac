//! Maps and read-only globals shared with userspace. Names and value types come from
//! `snapshot-common`; sizes here are placeholders that userspace overrides at load time.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, RingBuf},
};
use snapshot_common::{Control, CpuState, Event, MAX_PROBES, ProbeConfig, Trigger};

/// The two halves of the flight recorder: `2 × ncpu × capacity` records; userspace mmaps it.
#[map]
pub static EVENTS: Array<Event> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Writer state per CPU (`CpuState`), mmapped by userspace.
#[map]
pub static CPU_STATE: Array<CpuState> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Controller state: active half, armed spare, stop flags, counters; mmapped by userspace.
#[map]
pub static CONTROL: Array<Control> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// The trigger condition.
#[map]
pub static TRIGGERS: Array<Trigger> = Array::with_max_entries(1, 0);

/// Flip and stop notices for userspace (at most one flip per arming, so a few KiB suffice).
#[map]
pub static NOTIFY: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);

/// Processes (tgids) recorded when filtering by target.
#[map]
pub static TARGETS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Tracepoint field layout per probe id.
#[map]
pub static PROBES: Array<ProbeConfig> = Array::with_max_entries(MAX_PROBES as u32, 0);

/// Number of possible CPUs (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_NCPU: u32 = 1;
/// Records per CPU per half (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_CAPACITY: u32 = 1;
/// `FilterMode` as u32 (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_FILTER: u32 = 0;
/// The one tgid recorded under `FilterMode::One` (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_TARGET_TGID: u32 = 0;
/// The controller's own tgid, never recorded (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_SELF_TGID: u32 = 0;

/// `NoSparePolicy` as u32 (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_POLICY: u32 = 0;

/// Reads a global that userspace patches into `.rodata` before loading. A volatile read keeps
/// the compiler from folding the placeholder value into the code.
macro_rules! global {
    ($name:ident, $getter:ident) => {
        #[inline(always)]
        pub fn $getter() -> u32 {
            // SAFETY: the static is a plain u32 that lives for the whole program; volatile only
            // stops constant folding.
            unsafe { core::ptr::read_volatile(&raw const $name) }
        }
    };
}

global!(SNAPSHOT_NCPU, ncpu);
global!(SNAPSHOT_CAPACITY, capacity);
global!(SNAPSHOT_FILTER, filter_mode);
global!(SNAPSHOT_SELF_TGID, self_tgid);
global!(SNAPSHOT_TARGET_TGID, target_tgid);
global!(SNAPSHOT_POLICY, policy);
