//! Reference programs for `cargo xtask bench`, measured on the same hook as the recorder: an
//! empty program (the cost of running any program), a BPF ring buffer writer of the same
//! record (the usual way to stream events), with or without a wakeup per event, and the
//! "floors": programs that make only the helper calls a recorder cannot avoid (the pid for the
//! filter, the timestamp, and for a string the read of it) and nothing else.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id,
        bpf_ktime_get_boot_ns, generated::bpf_probe_read_user_str,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{PerCpuArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
};
use snapshot_common::{COMM_LEN, EVENT_HAS_ARGS, Event};

use crate::filter;

/// The comparison ring buffer (sized by the benchmark at load; a page otherwise).
#[map]
static BENCH_RING: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Flags for `bpf_ringbuf_submit`: 1 = `BPF_RB_NO_WAKEUP`, 2 = `BPF_RB_FORCE_WAKEUP`.
#[unsafe(no_mangle)]
static SNAPSHOT_BENCH_RB_FLAGS: u64 = 0;

/// Does nothing: the floor of any program on the hook.
#[raw_tracepoint]
pub fn bench_empty(_ctx: RawTracePointContext) -> u32 {
    0
}

/// Filters like the recorder, then writes the same record into a BPF ring buffer.
#[raw_tracepoint]
pub fn bench_ringbuf(ctx: RawTracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !filter::wanted(pid_tgid) {
        return 0;
    }
    if let Some(mut entry) = BENCH_RING.reserve::<Event>(0) {
        entry.write(Event {
            seq: 0,
            // SAFETY: helper without preconditions.
            ts_ns: unsafe { bpf_ktime_get_boot_ns() },
            pid_tgid,
            args: [ctx.arg::<u64>(0), ctx.arg::<u64>(1), 0, 0, 0, 0],
            ret: 0,
            ip: 0,
            duration_ns: 0,
            comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
            // SAFETY: helper without preconditions.
            cpu: unsafe { bpf_get_smp_processor_id() },
            probe_id: 0,
            flags: EVENT_HAS_ARGS,
            pad: 0,
        });
        // SAFETY: the static is a plain u64 patched by userspace before load.
        let flags = unsafe { core::ptr::read_volatile(&raw const SNAPSHOT_BENCH_RB_FLAGS) };
        entry.submit(flags);
    }
    0
}

/// Where the floor programs put what they read, so that nothing is optimized away.
pub struct Sink {
    /// The timestamp.
    pub ts: u64,
    /// The string.
    pub text: [u8; 72],
}

/// The floors' sink, per CPU.
#[map]
static BENCH_SINK: PerCpuArray<Sink> = PerCpuArray::with_max_entries(1, 0);

/// The floor of an event: the pid (for the filter) and the timestamp, the two helper calls
/// every recorded event makes, and nothing else.
#[raw_tracepoint]
pub fn bench_floor(_ctx: RawTracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !filter::wanted(pid_tgid) {
        return 0;
    }
    // SAFETY: helper without preconditions.
    let ts = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(sink) = BENCH_SINK.get_ptr_mut(0) {
        // SAFETY: this CPU's sink.
        unsafe { core::ptr::write_volatile(&raw mut (*sink).ts, ts) };
    }
    0
}

/// The floor of an event with one string (`syscalls:sys_enter_openat`'s filename, a user
/// pointer at offset 24 of the record): the two calls of [`bench_floor`] and the string's read
/// (`--string-size 64`: 66 bytes at most).
#[tracepoint]
pub fn bench_floor_str(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !filter::wanted(pid_tgid) {
        return 0;
    }
    // SAFETY: helper without preconditions.
    let ts = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: offset 24 of a sys_enter_openat record is the filename pointer; a constant
    // offset from the context is a direct load.
    let name = unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().add(24).cast::<u64>()) };
    if let Some(sink) = BENCH_SINK.get_ptr_mut(0) {
        // SAFETY: this CPU's sink, 72 bytes of text.
        unsafe {
            core::ptr::write_volatile(&raw mut (*sink).ts, ts);
            let _ = bpf_probe_read_user_str((&raw mut (*sink).text).cast(), 66, name as *const _);
        }
    }
    0
}
