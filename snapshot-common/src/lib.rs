//! Types shared by the eBPF programs (`snapshot-ebpf`) and the userspace controller
//! (`snapshot-userspace`): one definition of every record, map value and map name.
//!
//! Every type is `#[repr(C)]` with explicit padding fields, checked at compile time, so that the
//! byte layout is the same on both sides and no uninitialised padding reaches userspace.
#![no_std]

#[cfg(feature = "user")]
extern crate alloc;

use core::mem::size_of;

pub mod sequence;
pub mod shape;
pub mod strings;
pub mod widen;

pub use strings::{
    EVENT_HAS_STRINGS, MAX_STR_OPS, MAX_STRINGS, Pattern, PayloadHeader, StrOp, StringSpec,
};

/// Number of probe slots: each slot is one program per probe kind in the eBPF object, and the
/// slot number is the probe id carried by every event.
pub const MAX_PROBES: usize = 16;

/// Number of argument words an event carries.
pub const MAX_ARGS: usize = 6;

/// Length of a task's command name, as in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// Names of the maps and globals in the eBPF object, used by userspace to find them.
pub mod names {
    /// The record buffer: `2 halves × ncpu × capacity` events, `BPF_F_MMAPABLE`.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU writer state ([`super::CpuState`]), one element per CPU, `BPF_F_MMAPABLE`.
    pub const CPU_STATE: &str = "CPU_STATE";
    /// Controller state ([`super::Control`]), one element, `BPF_F_MMAPABLE` (userspace maps it
    /// read-write and updates single words atomically).
    pub const CONTROL: &str = "CONTROL";
    /// Trigger program ([`super::TriggerProgram`]), one element.
    pub const TRIGGERS: &str = "TRIGGERS";
    /// `max()` / `changed()` state ([`super::TriggerState`]), one element.
    pub const TRIGGER_STATE: &str = "TRIGGER_STATE";
    /// Sequence triggers' per-thread state (see [`super::sequence`]): LRU hash, key
    /// [`super::sequence::seq_key`], value the boot-time ns of the thread's last A.
    pub const SEQ_STATE: &str = "SEQ_STATE";
    /// Ring buffer of [`super::Notice`]s: flips and stops, for userspace to act on.
    pub const NOTIFY: &str = "NOTIFY";
    /// Target thread-group ids (tgid → 1) when filtering by process.
    pub const TARGETS: &str = "TARGETS";
    /// Per-probe decoding configuration ([`super::ProbeConfig`]), indexed by probe id.
    pub const PROBES: &str = "PROBES";
    /// Captured strings: one payload slot per event slot (see [`super::strings`]),
    /// `BPF_F_MMAPABLE`; its value size is set at load.
    pub const PAYLOADS: &str = "PAYLOADS";
    /// Read-only global: [`super::StringSpec`]s, `MAX_STRINGS` per probe slot.
    pub const GLOBAL_STRINGS: &str = "SNAPSHOT_STRINGS";
    /// Read-only global: `--string-size` (bytes kept per string).
    pub const GLOBAL_STRING_SIZE: &str = "SNAPSHOT_STRING_SIZE";
    /// Read-only global: number of possible CPUs (sizes the buffer).
    pub const GLOBAL_NCPU: &str = "SNAPSHOT_NCPU";
    /// Read-only global: events per CPU per half.
    pub const GLOBAL_CAPACITY: &str = "SNAPSHOT_CAPACITY";
    /// Read-only global: [`super::FilterMode`] as `u32`.
    pub const GLOBAL_FILTER: &str = "SNAPSHOT_FILTER";
    /// Read-only global: the one tgid recorded under `FilterMode::One`.
    pub const GLOBAL_TARGET_TGID: &str = "SNAPSHOT_TARGET_TGID";
    /// Read-only global: the controller's own tgid, never recorded.
    pub const GLOBAL_SELF_TGID: &str = "SNAPSHOT_SELF_TGID";
    /// Read-only global: pair number of each probe slot.
    pub const GLOBAL_PAIRS: &str = "SNAPSHOT_PAIRS";
    /// Read-only global: bit mask of probe slots that record the function address.
    pub const GLOBAL_FUNC_IP: &str = "SNAPSHOT_FUNC_IP";
    /// Read-only global: command name recorded under `FilterMode::Comm`.
    pub const GLOBAL_TARGET_COMM: &str = "SNAPSHOT_TARGET_COMM";
    /// Read-only global: offset of `child_pid` in the `sched_process_fork` record.
    pub const GLOBAL_FORK_CHILD_OFFSET: &str = "SNAPSHOT_FORK_CHILD_OFFSET";
    /// Read-only global: most snapshots the trigger takes (`--count`; 0: no limit).
    pub const GLOBAL_COUNT: &str = "SNAPSHOT_TRIGGER_COUNT";
    /// Read-only global: minimum ns between two trigger snapshots (`--holdoff`).
    pub const GLOBAL_HOLDOFF: &str = "SNAPSHOT_HOLDOFF_NS";
    /// Read-only global: [`super::NoSparePolicy`] as `u32`.
    pub const GLOBAL_POLICY: &str = "SNAPSHOT_POLICY";
    /// Read-only global: events recorded after a trigger before the flip (`--post N`; 0: none).
    pub const GLOBAL_POST_EVENTS: &str = "SNAPSHOT_POST_EVENTS";
    /// Read-only global: ns recorded after a trigger before the flip (`--post DURATION`).
    pub const GLOBAL_POST_NS: &str = "SNAPSHOT_POST_NS";
    /// Stack trace map: kernel and user stacks taken when a trigger fires.
    pub const STACKS: &str = "STACKS";
    /// Stack trace map of [`super::BuildIdFrame`]s (`BPF_F_STACK_BUILD_ID`): the user stack
    /// taken when a trigger fires, as build id + file offset per frame.
    pub const USTACKS_BUILD_ID: &str = "USTACKS_BUILD_ID";
    /// The [`super::Notice`] of a trigger whose `--post` window is still open, one element.
    pub const PENDING: &str = "PENDING";

    /// Program families with one program per probe slot, named `{family}_{slot}`
    /// ([`slot_program`]), in the order of the probe kinds.
    pub const SLOT_FAMILIES: [&str; 8] = [
        "kprobe",
        "kretprobe",
        "fentry",
        "fexit",
        "tracepoint",
        "rawtp",
        "uprobe",
        "uretprobe",
    ];
    /// Program (raw tracepoint): bumps `Control::comm_epoch` where command names change.
    pub const PROG_COMM_CHANGED: &str = "comm_changed";
    /// Raw tracepoints [`PROG_COMM_CHANGED`] attaches to.
    pub const COMM_CHANGE_POINTS: [&str; 2] = ["sched_process_exec", "task_rename"];
    /// Program (`sched:sched_process_fork`): a target's child becomes a target.
    pub const PROG_FOLLOW_FORK: &str = "follow_fork";
    /// Program (raw tracepoint `sched_process_exit`): an exited process leaves the targets.
    pub const PROG_FOLLOW_EXIT: &str = "follow_exit";
    /// Benchmark program: does nothing (the cost of running any program).
    pub const PROG_BENCH_EMPTY: &str = "bench_empty";
    /// Benchmark program: the same record written into a BPF ring buffer.
    pub const PROG_BENCH_RINGBUF: &str = "bench_ringbuf";
    /// Benchmark program: the helper calls every event makes, nothing else.
    pub const PROG_BENCH_FLOOR: &str = "bench_floor";
    /// Benchmark program (`syscalls:sys_enter_openat`): the floor plus one string's read.
    pub const PROG_BENCH_FLOOR_STR: &str = "bench_floor_str";
    /// Benchmark map: the ring buffer of [`PROG_BENCH_RINGBUF`].
    pub const BENCH_RING: &str = "BENCH_RING";
    /// Benchmark global: flags of `bpf_ringbuf_submit` in [`PROG_BENCH_RINGBUF`].
    pub const GLOBAL_BENCH_RB_FLAGS: &str = "SNAPSHOT_BENCH_RB_FLAGS";

    /// Read-only global: the kernel features the programs may use ([`super::kfeature`] bits),
    /// found by probing at load.
    pub const GLOBAL_FEATURES: &str = "SNAPSHOT_FEATURES";
    /// Read-only global: per probe slot, the argument words of the traced function (fentry and
    /// fexit without `bpf_get_func_arg`: the context holds them, then the return value).
    pub const GLOBAL_FUNC_WORDS: &str = "SNAPSHOT_FUNC_WORDS";
    /// Read-only global: per probe slot, how the return register is widened to 64 bits
    /// (a [`super::widen`] code; kretprobe and fexit of kernel functions).
    pub const GLOBAL_RET_WIDEN: &str = "SNAPSHOT_RET_WIDEN";
    /// Per probe slot, 1 + the offset of a tracepoint's 4-byte field holding the pid the
    /// target filter tests instead of the current task's (0: none).
    pub const GLOBAL_SUBJECT_PID: &str = "SNAPSHOT_SUBJECT_PID";
    /// The loaded trigger's shape: most instructions (`shape::TriggerShape::len`).
    pub const GLOBAL_TRIGGER_LEN: &str = "SNAPSHOT_TRIGGER_LEN";
    /// The loaded trigger's shape: the operations it may use (`shape::TriggerShape::ops`).
    pub const GLOBAL_TRIGGER_OPS: &str = "SNAPSHOT_TRIGGER_OPS";
    /// Queue of one token: present while the spare is armed (kernels without BPF atomic
    /// exchange; see `snapshot-ebpf/src/atomic.rs`).
    pub const ARM_TOKEN: &str = "ARM_TOKEN";
    /// Queue of one token: taken by the one trigger that applies the stop policy (no atomics).
    pub const STOP_TOKEN: &str = "STOP_TOKEN";
    /// Queue of `--post` tickets N..=1, refilled at each arming (no atomic fetch-add).
    pub const POST_TICKETS: &str = "POST_TICKETS";
    /// Function address per kernel stack slot of a call in flight (glob kretprobes without
    /// `bpf_get_func_ip`).
    pub const CALL_SITES: &str = "CALL_SITES";
    /// Program (kprobe): notes the address of a glob kretprobe's function at its entry, for
    /// kernels without `bpf_get_func_ip`.
    pub const PROG_GLOB_ENTRY: &str = "glob_entry";

    /// The program of probe slot `slot` in `family` (one of [`SLOT_FAMILIES`]), e.g.
    /// `kprobe_3`, as the eBPF side's `slots!` macro names it.
    #[cfg(feature = "user")]
    #[must_use]
    pub fn slot_program(family: &str, slot: usize) -> alloc::string::String {
        alloc::format!("{family}_{slot}")
    }
    /// Log target of the eBPF side's aya-log records (`RUST_LOG=snapshot_ebpf=debug`).
    pub const LOG_TARGET: &str = "snapshot_ebpf";
}

/// Kernel features the eBPF programs choose between at load time (bits of the
/// `SNAPSHOT_FEATURES` global). Userspace finds them by probing the kernel
/// (`snapshot-userspace/src/probe/features.rs`); each branch on a bit is on a frozen read-only
/// global, so the verifier prunes the side not taken and never sees its instructions' helpers.
pub mod kfeature {
    /// BPF atomic exchange and fetch-and-add (Linux 5.12). Without: tokens in queue maps and a
    /// counting `busy` (see `snapshot-ebpf/src/atomic.rs`).
    pub const ATOMICS: u32 = 1 << 0;
    /// `bpf_get_func_ip` in kprobes (Linux 5.15). Without: the address from the registers.
    pub const FUNC_IP: u32 = 1 << 1;
    /// `bpf_get_func_arg` / `bpf_get_func_ret` in fentry/fexit (Linux 5.17). Without: the
    /// context words, counted from the function's BTF at load.
    pub const FUNC_ARGS: u32 = 1 << 2;
    /// `bpf_get_stackid` (stacks at the trigger). Without: snapshots carry no stacks.
    pub const STACK_IDS: u32 = 1 << 3;
    /// Stack trace maps of build ids (`BPF_F_STACK_BUILD_ID`, Linux 4.17): the user stack at
    /// the trigger also as build id + file offset. Without: only the maps symbolize it.
    pub const STACK_BUILD_ID: u32 = 1 << 4;
}

/// The call instruction that replaces every atomic instruction of the eBPF object on a kernel
/// without BPF atomics: an unknown helper. Those instructions sit only in branches the verifier
/// prunes there; one that were reachable would be refused at load ("invalid func"), never run.
pub const POISON_HELPER: i32 = 0x0bad_a70c;

/// How the eBPF side decides whether the current task is recorded.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FilterMode {
    /// Every task but the controller itself.
    #[default]
    All = 0,
    /// Only tasks whose tgid is a key of the `TARGETS` map.
    Targets = 1,
    /// Only the one tgid in the `SNAPSHOT_TARGET_TGID` global (no map lookup).
    One = 2,
    /// Only the one thread whose tid is in `SNAPSHOT_TARGET_TGID`.
    Tid = 3,
    /// Only tasks whose command name is `SNAPSHOT_TARGET_COMM`.
    Comm = 4,
}

/// What a trigger does when it fires while no spare half is armed (ftrace without
/// `tracing_snapshot_alloc()`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoSparePolicy {
    /// Count the missed trigger; report it in the next snapshot.
    #[default]
    Skip = 0,
    /// Write a marker record into the live half and stop recording (a "permanent snapshot").
    Stop = 1,
}

/// The event carries a return value in [`Event::ret`].
pub const EVENT_HAS_RET: u32 = 1 << 0;
/// The event carries arguments in [`Event::args`].
pub const EVENT_HAS_ARGS: u32 = 1 << 1;

/// The event carries a call duration in [`Event::duration_ns`].
pub const EVENT_HAS_DURATION: u32 = 1 << 3;
/// The record is the "snapshot not allocated" marker written under [`NoSparePolicy::Stop`].
pub const EVENT_MARKER: u32 = 1 << 2;
/// Probe id of marker records.
pub const MARKER_PROBE: u32 = u32::MAX;

/// One fixed-size record, as written by a probe into the live half of the buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Commit word: the record's position in its CPU's ring plus one, written last. A slot
    /// whose `seq` does not match the position the reader expects was torn or never written.
    pub seq: u64,
    /// `bpf_ktime_get_boot_ns()` when the probe fired.
    pub ts_ns: u64,
    /// `tgid << 32 | tid`, as `bpf_get_current_pid_tgid()` returns it.
    pub pid_tgid: u64,
    /// Up to [`MAX_ARGS`] arguments (entry probes, tracepoint fields).
    pub args: [u64; MAX_ARGS],
    /// Return value (return probes, a tracepoint's `ret` field).
    pub ret: u64,
    /// Address of the probed function where the kernel tells it (kprobes: `bpf_get_func_ip`),
    /// which names the function a glob matched; 0 otherwise.
    pub ip: u64,
    /// Return probes of an entry/return pair: time since the matching entry on this thread,
    /// when [`EVENT_HAS_DURATION`] is set.
    pub duration_ns: u64,
    /// The task's command name, NUL padded.
    pub comm: [u8; COMM_LEN],
    /// CPU the probe ran on.
    pub cpu: u32,
    /// Probe id (index of the probe spec on the command line).
    pub probe_id: u32,
    /// `EVENT_*` flags.
    pub flags: u32,
    /// Explicit padding; always zero.
    pub pad: u32,
}

impl Event {
    /// Thread-group id (the process id as userspace sees it).
    #[must_use]
    pub const fn tgid(&self) -> u32 {
        (self.pid_tgid >> 32) as u32
    }

    /// Thread id.
    #[must_use]
    pub const fn tid(&self) -> u32 {
        self.pid_tgid as u32
    }
}

/// Per-CPU writer state, padded to two cache lines. Lives in an mmap-able array indexed by CPU so
/// that userspace reads heads without a syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// 1 while a probe on this CPU is writing a record (taken with an atomic exchange).
    pub busy: u64,
    /// Completed writes on this CPU; lets a reader see that an in-flight writer finished.
    pub generation: u64,
    /// Records ever written into each half on this CPU (the ring head, not wrapped).
    pub head: [u64; 2],
    /// Events dropped because a writer was already busy on this CPU (nesting, preemption).
    pub dropped: u64,
    /// Slot of the next record in each half: `head % capacity`, kept so the writer does not
    /// divide.
    pub slot: [u64; 2],
    /// Comm cache: the `pid_tgid` whose command name is in `comm`.
    pub comm_key: u64,
    /// Comm cache: the `Control::comm_epoch` when `comm` was read.
    pub comm_epoch: u64,
    /// Comm cache: the command name (saves a helper call per event).
    pub comm: [u8; COMM_LEN],
    /// Explicit padding to 128 bytes.
    pub pad: [u64; 5],
}

/// Controller state shared with the eBPF side (one element, mmapped by userspace). Every word
/// has one writer at a time, or is changed only with atomic operations.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// The half probes write into (0 or 1). Changed only by the flipper that won `armed`.
    pub active: u64,
    /// 1 when the other half is drained and may be flipped to (the spare is "allocated").
    /// Set by userspace; a trigger takes it with an atomic exchange, so one trigger flips.
    pub armed: u64,
    /// Non-zero: probes return at once (userspace at exit, or the stop policy).
    pub stopped: u64,
    /// The decision word, taken with an exchange 0 → 1: held by the winner of `armed` while it
    /// flips (or opens a `--post` window) and sends its notice, then released; taken for good
    /// by the one trigger that applies the stop policy. A flip and a stop are so never
    /// interleaved (issue 11, finding 8).
    pub stopping: u64,
    /// Flips so far; written only by the flipper holding `armed`.
    pub flips: u64,
    /// Triggers that found no armed spare (atomic add).
    pub missed: u64,
    /// Bumped (atomic add) whenever a task's command name may change (exec, rename), which
    /// invalidates every CPU's comm cache.
    pub comm_epoch: u64,
    /// Snapshots taken by the trigger (not manual ones), for `--count`; written by the winner.
    pub fired: u64,
    /// When the trigger last took a snapshot (boot-time ns), for `--holdoff`.
    pub last_fire_ns: u64,
    /// Non-zero while a `--post` window runs: a trigger fired and took the spare, the flip
    /// waits for the events after it. Set (exchange) by the trigger, cleared by the completer.
    pub pending: u64,
    /// `--post`: tickets left, as a signed count. Each event recorded while `pending` takes one
    /// (atomic fetch-add of -1): tickets 1..=N go into the frozen-to-be half, the one that
    /// takes ticket 1 completes the flip, later ones (≤ 0) go into the new half. Under
    /// `--post DURATION` it is 1 and events take a ticket only once the window is over.
    /// Userspace completes a window no event closes by exchanging it with 0.
    pub post_left: u64,
    /// `--post`: the half that freezes when the window closes (the live half at the trigger).
    pub post_half: u64,
    /// `--post DURATION`: end of the window (boot-time ns); 0 under `--post N`.
    pub post_until: u64,
    /// Explicit padding to 128 bytes.
    pub pad: [u64; 3],
}

/// Comparison operator of a trigger.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq = 0,
    /// `!=`
    Ne = 1,
    /// `<` (signed)
    Lt = 2,
    /// `<=` (signed)
    Le = 3,
    /// `>` (signed)
    Gt = 4,
    /// `>=` (signed)
    Ge = 5,
}

/// Most instructions in a trigger program.
pub const MAX_INSNS: usize = 32;
/// Deepest evaluation stack of a trigger program.
pub const STACK_DEPTH: usize = 8;
/// Most constants in a trigger program.
pub const MAX_CONSTS: usize = 8;
/// Most `max()` / `changed()` state slots in a trigger program.
pub const MAX_SLOTS: usize = 4;

/// Trigger program operations (`Insn::op`): a stack machine over (value, valid) pairs. A
/// field of another probe than the event's is invalid; comparisons with an invalid operand
/// are false.
pub mod op {
    /// Push field `a` (`FIELD_*`) of probe `b` (or of any probe when `b` is `ANY_PROBE`).
    pub const FIELD: u8 = 1;
    /// Push constant `b`.
    pub const CONST: u8 = 2;
    /// Push `comm == TriggerProgram::comm`.
    pub const COMM_EQ: u8 = 3;
    /// Pop rhs, lhs; push `lhs OP rhs` (`a` is a `CmpOp`, signed).
    pub const CMP: u8 = 4;
    /// Pop rhs, lhs; push `(lhs & rhs) != 0`.
    pub const BITAND: u8 = 5;
    /// Negate the top.
    pub const NOT: u8 = 6;
    /// Pop two booleans, push both.
    pub const AND: u8 = 7;
    /// Pop two booleans, push either.
    pub const OR: u8 = 8;
    /// Pop v; push true when v is a new maximum in slot `b` (ftrace's `onmax`).
    pub const MAX: u8 = 9;
    /// Pop v; push true when v differs from the last value seen in slot `b`.
    pub const CHANGED: u8 = 10;
    /// Push the result of string comparison `b` (`TriggerProgram::str_ops`), computed before
    /// the program runs.
    pub const STR: u8 = 11;
    /// Pop B; push whether sequence `a`'s last A on this thread is at most constant `b` ns
    /// old, and forget that A (see [`super::sequence`]).
    pub const SEQ_MATCH: u8 = 12;
    /// Pop A; when it holds, remember now as sequence `a`'s last A on this thread.
    pub const SEQ_ARM: u8 = 13;
}

/// `Insn::b` of a field that any probe's events have (pid, tid, cpu).
pub const ANY_PROBE: u32 = u32::MAX;
/// Field codes (`Insn::a` of `op::FIELD`): 0..6 are arguments.
pub const FIELD_RET: u8 = MAX_ARGS as u8;
/// Call duration of a return probe of a pair.
pub const FIELD_LATENCY: u8 = FIELD_RET + 1;
/// Process id.
pub const FIELD_PID: u8 = FIELD_RET + 2;
/// Thread id.
pub const FIELD_TID: u8 = FIELD_RET + 3;
/// CPU.
pub const FIELD_CPU: u8 = FIELD_RET + 4;

/// One trigger program instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    /// `op::*`.
    pub op: u8,
    /// First operand (field code, comparison).
    pub a: u8,
    /// Explicit padding.
    pub pad: [u8; 2],
    /// Second operand (probe id, constant index, state slot).
    pub b: u32,
}

/// A compiled trigger condition, evaluated by the probes on every recorded event (see
/// `snapshot-ebpf/src/trigger.rs`); `len == 0` disables it (`manual`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriggerProgram {
    /// Instructions used.
    pub len: u32,
    /// String comparisons used (`str_ops`, `patterns`).
    pub nstr: u32,
    /// Constants.
    pub consts: [u64; MAX_CONSTS],
    /// The command name `op::COMM_EQ` compares with, NUL padded.
    pub comm: [u8; COMM_LEN],
    /// Instructions.
    pub insns: [Insn; MAX_INSNS],
    /// String comparisons: which string of which probe.
    pub str_ops: [StrOp; MAX_STR_OPS],
    /// The pattern of each string comparison.
    pub patterns: [Pattern; MAX_STR_OPS],
}

/// State of `max()` / `changed()` slots: per slot the last value and whether one was seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriggerState {
    /// Last (or largest) value per slot.
    pub value: [u64; MAX_SLOTS],
    /// 1 once a slot has seen a value.
    pub seen: [u64; MAX_SLOTS],
}

/// A flip happened: `half` is frozen and holds snapshot `seq`.
pub const NOTICE_FLIP: u32 = 1;
/// The stop policy applied: recording stopped, the live half `half` is the final snapshot.
pub const NOTICE_STOPPED: u32 = 2;
/// A trigger fired and opened a `--post` window: the flip of `half` follows when it closes.
pub const NOTICE_POST: u32 = 3;

/// Deepest stack a [`Notice`] refers to (the kernel's `PERF_MAX_STACK_DEPTH`).
pub const MAX_STACK_DEPTH: usize = 127;

/// Message from a probe to userspace through the `NOTIFY` ring buffer, with the trigger's
/// context stamped at the moment it fired.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    /// `NOTICE_*`.
    pub kind: u32,
    /// The half frozen (flip) or holding the final records (stopped).
    pub half: u32,
    /// Flip sequence number (1, 2, …); 0 for a stop.
    pub seq: u64,
    /// When the trigger fired (`bpf_ktime_get_boot_ns`).
    pub ts_ns: u64,
    /// `tgid << 32 | tid` of the task that fired it.
    pub pid_tgid: u64,
    /// The field value that fired it.
    pub value: u64,
    /// Missed triggers counted so far.
    pub missed: u64,
    /// Command name of the task.
    pub comm: [u8; COMM_LEN],
    /// CPU.
    pub cpu: u32,
    /// Probe whose event fired it.
    pub probe_id: u32,
    /// Id of the kernel stack at the trigger in the `STACKS` map; negative: none (an errno).
    /// Stack ids are below the map's size and errnos small: 32 bits hold both (the probes'
    /// stack is tight: the notice lives on it).
    pub kstack: i32,
    /// Id of the user stack at the trigger in the `STACKS` map; negative: none (a kernel
    /// thread, or the stack could not be walked).
    pub ustack: i32,
    /// Id of the same user stack in the `USTACKS_BUILD_ID` map (build id + file offset per
    /// frame, [`BuildIdFrame`]); negative: none (an errno; -95 when the kernel has no
    /// build-id stack maps).
    pub ustack_build_id: i32,
    /// Explicit padding.
    pub pad: u32,
    /// The sequence trigger that fired and when its A held, packed into one word (the
    /// probes' stack is tight): [`sequence::fired`] and [`sequence::fired_parts`]; 0: none.
    pub sequence: u64,
}

/// `BPF_F_STACK_BUILD_ID`: the flag of a stack trace map whose values are [`BuildIdFrame`]s.
pub const F_STACK_BUILD_ID: u32 = 1 << 5;

/// Value size of a build-id stack map: [`MAX_STACK_DEPTH`] [`BuildIdFrame`]s.
pub const BUILD_ID_STACK_VALUE: u32 = (MAX_STACK_DEPTH * size_of::<BuildIdFrame>()) as u32;

/// Bytes of a build id in a [`BuildIdFrame`] (`BPF_BUILD_ID_SIZE`).
pub const BUILD_ID_SIZE: usize = 20;

/// [`BuildIdFrame::status`]: no frame (past the end of the stack).
pub const BUILD_ID_EMPTY: i32 = 0;
/// [`BuildIdFrame::status`]: `build_id` and the file offset are valid.
pub const BUILD_ID_VALID: i32 = 1;
/// [`BuildIdFrame::status`]: no build id could be read (anonymous memory, a file without
/// one, a page not in memory): `offset_or_ip` is the instruction address.
pub const BUILD_ID_IP: i32 = 2;

/// One frame of a build-id stack, as the kernel's `struct bpf_stack_build_id` (the value of a
/// `BPF_F_STACK_BUILD_ID` stack map is [`MAX_STACK_DEPTH`] of them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildIdFrame {
    /// `BUILD_ID_*`.
    pub status: i32,
    /// The build id of the file mapped at the frame (status [`BUILD_ID_VALID`]).
    pub build_id: [u8; BUILD_ID_SIZE],
    /// The frame's offset in that file ([`BUILD_ID_VALID`]) or its address ([`BUILD_ID_IP`]).
    pub offset_or_ip: u64,
}

/// Where a tracepoint field lives in the raw tracepoint record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldLoc {
    /// Byte offset from the start of the record.
    pub offset: u16,
    /// Size in bytes: 1, 2, 4 or 8; 0 means "absent".
    pub size: u8,
    /// 1 if the field is signed (sign-extended to 64 bits).
    pub signed: u8,
}

/// How the eBPF side decodes a tracepoint probe's fields into an event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Fields copied into [`Event::args`].
    pub args: [FieldLoc; MAX_ARGS],
    /// Field copied into [`Event::ret`] (size 0: none).
    pub ret: FieldLoc,
    /// Number of valid entries in `args`.
    pub nargs: u32,
}

// No implicit padding: every byte of these types is a named field.
const _: () = assert!(size_of::<Event>() == 128);
// The snapshot file format (version 1) stores `Event` as it is in memory: its field offsets
// are part of the format and must never move (a committed v1 file is read back in the tests).
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Event, seq) == 0);
    assert!(offset_of!(Event, ts_ns) == 8);
    assert!(offset_of!(Event, pid_tgid) == 16);
    assert!(offset_of!(Event, args) == 24);
    assert!(offset_of!(Event, ret) == 72);
    assert!(offset_of!(Event, ip) == 80);
    assert!(offset_of!(Event, duration_ns) == 88);
    assert!(offset_of!(Event, comm) == 96);
    assert!(offset_of!(Event, cpu) == 112);
    assert!(offset_of!(Event, probe_id) == 116);
    assert!(offset_of!(Event, flags) == 120);
    assert!(offset_of!(Event, pad) == 124);
    assert!(EVENT_HAS_RET == 1 && EVENT_HAS_ARGS == 2 && EVENT_MARKER == 4);
    assert!(EVENT_HAS_DURATION == 8 && MARKER_PROBE == u32::MAX);
};
const _: () = assert!(size_of::<Event>().is_multiple_of(8));
const _: () = assert!(size_of::<CpuState>() == 128);
const _: () = assert!(size_of::<Control>() == 128);
const _: () = assert!(size_of::<Insn>() == 8);
const _: () = assert!(
    size_of::<TriggerProgram>()
        == 8 + 8 * MAX_CONSTS
            + COMM_LEN
            + 8 * MAX_INSNS
            + (size_of::<StrOp>() + size_of::<Pattern>()) * MAX_STR_OPS
);
const _: () = assert!(size_of::<TriggerState>() == 16 * MAX_SLOTS);
const _: () = assert!(size_of::<Notice>() == 8 * 6 + COMM_LEN + 8 + 16 + 8);
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Notice, kstack) == 72);
    assert!(offset_of!(Notice, ustack) == 76);
    assert!(offset_of!(Notice, ustack_build_id) == 80);
    assert!(offset_of!(Notice, pad) == 84);
    assert!(offset_of!(Notice, sequence) == 88);
    assert!(size_of::<BuildIdFrame>() == 32);
    assert!(BUILD_ID_STACK_VALUE == 4064);
    assert!(offset_of!(BuildIdFrame, build_id) == 4);
    assert!(offset_of!(BuildIdFrame, offset_or_ip) == 24);
    assert!(op::SEQ_MATCH > op::STR && op::SEQ_ARM > op::SEQ_MATCH);
};
const _: () = assert!(size_of::<FieldLoc>() == 4);
const _: () = assert!(size_of::<ProbeConfig>() == 4 * MAX_ARGS + 4 + 4);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all these types are `#[repr(C)]`, `Copy`, made only of integers and integer arrays,
    // and have no implicit padding (asserted above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CpuState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Control {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProbeConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TriggerProgram {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TriggerState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Notice {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::BuildIdFrame {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::StringSpec {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PayloadHeader {}
}
