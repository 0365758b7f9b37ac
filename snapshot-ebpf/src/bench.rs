//! Reference programs for `cargo xtask bench`, measured on the same hook as the recorder: an
//! empty program (the cost of running any program), and a BPF ring buffer writer of the same
//! record (the usual way to stream events), with or without a wakeup per event.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id,
        bpf_ktime_get_boot_ns,
    },
    macros::{map, raw_tracepoint},
    maps::RingBuf,
    programs::RawTracePointContext,
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
