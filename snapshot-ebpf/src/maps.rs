//! Maps and read-only globals shared with userspace. Names and value types come from
//! `snapshot-common`; sizes here are placeholders that userspace overrides at load time.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, Queue, RingBuf, StackTrace},
};
use snapshot_common::{
    COMM_LEN, Control, CpuState, Event, MAX_INSNS, MAX_PROBES, Notice, ProbeConfig, STACK_DEPTH,
    TriggerProgram, TriggerState, shape,
};

/// The two halves of the flight recorder: `2 × ncpu × capacity` records; userspace mmaps it.
#[map]
pub static EVENTS: Array<Event> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Writer state per CPU (`CpuState`), mmapped by userspace.
#[map]
pub static CPU_STATE: Array<CpuState> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Controller state: active half, armed spare, stop flags, counters; mmapped by userspace.
#[map]
pub static CONTROL: Array<Control> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// The trigger program.
#[map]
pub static TRIGGERS: Array<TriggerProgram> = Array::with_max_entries(1, 0);

/// `max()` / `changed()` state of the trigger program.
#[map]
pub static TRIGGER_STATE: Array<TriggerState> = Array::with_max_entries(1, 0);

/// Sequence triggers' per-thread state (`sequence.rs`): (thread, sequence) → time of its last A.
#[map]
pub static SEQ_STATE: LruHashMap<u64, u64> =
    LruHashMap::with_max_entries(snapshot_common::sequence::SEQ_THREADS, 0);

/// The trigger program's evaluation stack (values, valid flags), per CPU.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Evaluation state of the trigger program, kept in memory (not registers) so the verifier
/// sees one state per instruction slot instead of one per path: stack values, valid flags,
/// stack pointer, the first field value (the one reported) and whether it is set.
pub struct Scratch {
    /// Stack values.
    pub vals: [u64; STACK_DEPTH],
    /// Stack valid flags.
    pub oks: [u64; STACK_DEPTH],
    /// Stack pointer.
    pub sp: u64,
    /// First valid field value.
    pub value: u64,
    /// 1 once `value` is set.
    pub have: u64,
    /// The sequence that completed on this event (1-based; 0: none).
    pub seq: u64,
    /// When that sequence's A held (boot-time ns).
    pub seq_start: u64,
}

/// Flip and stop notices for userspace (at most one flip per arming, so a few KiB suffice).
#[map]
pub static NOTIFY: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);

/// Kernel and user stacks taken when a trigger fires (ids travel in the notice; userspace
/// reads and deletes them). A new stack replaces an old one in its hash bucket.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(256, 0);

/// The user stack taken when a trigger fires, as build id + file offset per frame
/// (`snapshot_common::BuildIdFrame`), for the frames no memory map symbolizes later (a
/// process gone before userspace reads its maps). Declared here as a plain stack map;
/// userspace patches its value size and `BPF_F_STACK_BUILD_ID` in at load when the kernel
/// has build-id stack maps (`kfeature::STACK_BUILD_ID`), else leaves it unused.
#[map]
pub static USTACKS_BUILD_ID: StackTrace = StackTrace::with_max_entries(64, 0);

/// The notice of a trigger whose `--post` window is open, sent when the window closes.
#[map]
pub static PENDING: Array<Notice> = Array::with_max_entries(1, 0);

/// Kernels without BPF atomics (see `atomic.rs`): one token while the spare is armed. A trigger
/// that pops it is the one winner of the arming.
#[map]
pub static ARM_TOKEN: Queue<u64> = Queue::with_max_entries(1, 0);

/// Kernels without BPF atomics: one token, popped by the one trigger that applies the stop
/// policy (userspace puts it there at load).
#[map]
pub static STOP_TOKEN: Queue<u64> = Queue::with_max_entries(1, 0);

/// Kernels without BPF atomics: the `--post` tickets N..=1 (userspace refills it at each
/// arming; sized to N at load).
#[map]
pub static POST_TICKETS: Queue<u64> = Queue::with_max_entries(1, 0);

/// Kernels without `bpf_get_func_ip`: the function of each glob kretprobe call in flight, by
/// the kernel stack slot of its return address (see `funcs.rs`).
#[map]
pub static CALL_SITES: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

/// Processes (tgids) recorded when filtering by target.
#[map]
pub static TARGETS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Entry time per (thread, pair): `tid << 32 | pair` → boot-time ns (see `pairs.rs`).
#[map]
pub static ENTRY_TS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16384, 0);

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

/// Pair number of each probe slot (0: not paired), set by userspace at load.
#[unsafe(no_mangle)]
static SNAPSHOT_PAIRS: [u32; MAX_PROBES] = [0; MAX_PROBES];

/// Bit `id` set: probe `id`'s events record the function address (globs), set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_FUNC_IP: u32 = 0;

/// `kfeature` bits: what this kernel offers, found by userspace by probing, set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_FEATURES: u32 = 0;

/// Per probe slot, the context words of the traced function's arguments (fentry/fexit
/// without `bpf_get_func_arg`), set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_FUNC_WORDS: [u32; MAX_PROBES] = [0; MAX_PROBES];

/// Per probe slot, how the return register is widened (a `snapshot_common::widen` code from
/// the function's BTF return type; kretprobe and fexit), set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_RET_WIDEN: [u32; MAX_PROBES] = [0; MAX_PROBES];

/// Per probe slot, 1 + the offset in the tracepoint record of a 4-byte field holding the pid
/// of the task the event is about (0: none), set at load (see `filter::wanted_event`).
#[unsafe(no_mangle)]
static SNAPSHOT_SUBJECT_PID: [u32; MAX_PROBES] = [0; MAX_PROBES];

/// 1 + the offset of probe slot `id`'s subject pid field, or 0 (a load-time constant: the
/// verifier prunes the filter's subject code from every other program).
#[inline(always)]
pub fn subject_pid(id: u32) -> u32 {
    let i = id as usize;
    if i >= MAX_PROBES {
        return 0;
    }
    // SAFETY: in bounds; volatile only stops constant folding of the placeholder.
    unsafe { core::ptr::read_volatile((&raw const SNAPSHOT_SUBJECT_PID).cast::<u32>().add(i)) }
}

/// The loaded trigger's shape (`snapshot_common::shape`): most instructions and the
/// operations it may use. Load-time constants: the verifier walks only what they allow.
#[unsafe(no_mangle)]
static SNAPSHOT_TRIGGER_LEN: u32 = MAX_INSNS as u32;
#[unsafe(no_mangle)]
static SNAPSHOT_TRIGGER_OPS: u32 = u32::MAX;

/// Most instructions of the loaded trigger (a load-time constant).
#[inline(always)]
pub fn trigger_len() -> usize {
    // SAFETY: a plain u32 static; volatile only stops constant folding of the placeholder.
    unsafe { core::ptr::read_volatile(&raw const SNAPSHOT_TRIGGER_LEN) as usize }
}

/// True when the loaded trigger may use operation `op` (a load-time constant for a constant
/// `op`: the verifier prunes what a branch on it guards).
#[inline(always)]
pub fn trigger_uses(op: u8) -> bool {
    // SAFETY: a plain u32 static; volatile only stops constant folding of the placeholder.
    unsafe { core::ptr::read_volatile(&raw const SNAPSHOT_TRIGGER_OPS) & shape::bit(op) != 0 }
}

/// True when the kernel has `feature` (a `kfeature` bit). A load-time constant: the verifier
/// prunes the branch not taken, so a helper or instruction the kernel lacks is never checked.
#[inline(always)]
pub fn has(feature: u32) -> bool {
    // SAFETY: a plain u32 static; volatile only stops constant folding of the placeholder.
    unsafe { core::ptr::read_volatile(&raw const SNAPSHOT_FEATURES) & feature != 0 }
}

/// The argument words of probe slot `id`'s traced function (a load-time constant).
#[inline(always)]
pub fn func_words(id: u32) -> u32 {
    let i = id as usize;
    if i >= MAX_PROBES {
        return 0;
    }
    // SAFETY: in bounds; volatile only stops constant folding of the placeholder.
    unsafe { core::ptr::read_volatile((&raw const SNAPSHOT_FUNC_WORDS).cast::<u32>().add(i)) }
}

/// The return register of probe slot `id`'s function, widened to 64 bits as its return type
/// says (see `snapshot_common::widen`; the code is a load-time constant, read from `.rodata`).
#[inline(always)]
pub fn widen_ret(id: u32, raw: u64) -> u64 {
    let i = id as usize;
    if i >= MAX_PROBES {
        return raw;
    }
    // SAFETY: in bounds; volatile only stops constant folding of the placeholder.
    let code =
        unsafe { core::ptr::read_volatile((&raw const SNAPSHOT_RET_WIDEN).cast::<u32>().add(i)) };
    snapshot_common::widen::apply(raw, code)
}

/// Command name recorded under `FilterMode::Comm`, set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_TARGET_COMM: [u8; COMM_LEN] = [0; COMM_LEN];

/// The pair number of probe slot `id` (a load-time constant: the verifier prunes unpaired
/// programs' pair code).
#[inline(always)]
pub fn pair_of(id: u32) -> u32 {
    let i = id as usize;
    if i >= MAX_PROBES {
        return 0;
    }
    // SAFETY: in bounds; volatile only stops constant folding of the placeholder.
    unsafe { core::ptr::read_volatile((&raw const SNAPSHOT_PAIRS).cast::<u32>().add(i)) }
}

/// True when probe `id` records the function address.
#[inline(always)]
pub fn wants_ip(id: u32) -> bool {
    // SAFETY: a plain u32 static.
    let mask = unsafe { core::ptr::read_volatile(&raw const SNAPSHOT_FUNC_IP) };
    id < 32 && mask & (1 << id) != 0
}

/// The command name recorded under `FilterMode::Comm`.
#[inline(always)]
pub fn target_comm() -> [u8; COMM_LEN] {
    // SAFETY: a plain byte array static.
    unsafe { core::ptr::read_volatile(&raw const SNAPSHOT_TARGET_COMM) }
}

/// Most snapshots the trigger takes (`--count`; 0: no limit), set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_TRIGGER_COUNT: u64 = 0;

/// Minimum ns between two trigger snapshots (`--holdoff`), set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_HOLDOFF_NS: u64 = 0;

/// Events recorded after a trigger before its flip (`--post N`), set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_POST_EVENTS: u64 = 0;

/// Nanoseconds recorded after a trigger before its flip (`--post DURATION`), set at load.
#[unsafe(no_mangle)]
static SNAPSHOT_POST_NS: u64 = 0;

/// `--post`: (events, ns); both 0 when the flip is immediate.
#[inline(always)]
pub fn post() -> (u64, u64) {
    // SAFETY: plain u64 statics patched at load.
    unsafe {
        (
            core::ptr::read_volatile(&raw const SNAPSHOT_POST_EVENTS),
            core::ptr::read_volatile(&raw const SNAPSHOT_POST_NS),
        )
    }
}

/// `--count` and `--holdoff`.
#[inline(always)]
pub fn limits() -> (u64, u64) {
    // SAFETY: plain u64 statics patched at load.
    unsafe {
        (
            core::ptr::read_volatile(&raw const SNAPSHOT_TRIGGER_COUNT),
            core::ptr::read_volatile(&raw const SNAPSHOT_HOLDOFF_NS),
        )
    }
}

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
