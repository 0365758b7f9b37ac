//! Program entries: thin wrappers that read what their probe kind offers and hand it to
//! `record`. Each kind has `MAX_PROBES` slots; the slot number is the probe id, so an event's
//! probe is known without a map lookup. Userspace loads only the slots it uses.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

mod atomic;
mod bench;
mod capture;
mod comm;
mod diag;
mod entry;
mod filter;
mod flip;
mod follow;
mod funcs;
mod maps;
mod pairs;
mod record;
mod sequence;
mod strmatch;
mod trigger;

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, raw_tracepoint, tracepoint, uprobe, uretprobe},
    programs::{
        FEntryContext, FExitContext, ProbeContext, RawTracePointContext, RetProbeContext,
        TracePointContext,
    },
};

/// Defines one program per slot for a probe kind.
macro_rules! slots {
    ($attr:ident, $ctx:ty, $handler:path; $($name:ident = $id:literal),* $(,)?) => {
        $(
            #[doc = concat!("Probe slot ", stringify!($id), " for `", stringify!($attr), "`.")]
            #[$attr]
            pub fn $name(ctx: $ctx) -> u32 {
                $handler(&ctx, $id)
            }
        )*
    };
}

slots!(kprobe, ProbeContext, entry::probe_entry; kprobe_0 = 0, kprobe_1 = 1, kprobe_2 = 2, kprobe_3 = 3, kprobe_4 = 4, kprobe_5 = 5, kprobe_6 = 6, kprobe_7 = 7, kprobe_8 = 8, kprobe_9 = 9, kprobe_10 = 10, kprobe_11 = 11, kprobe_12 = 12, kprobe_13 = 13, kprobe_14 = 14, kprobe_15 = 15);
slots!(kretprobe, RetProbeContext, entry::probe_return; kretprobe_0 = 0, kretprobe_1 = 1, kretprobe_2 = 2, kretprobe_3 = 3, kretprobe_4 = 4, kretprobe_5 = 5, kretprobe_6 = 6, kretprobe_7 = 7, kretprobe_8 = 8, kretprobe_9 = 9, kretprobe_10 = 10, kretprobe_11 = 11, kretprobe_12 = 12, kretprobe_13 = 13, kretprobe_14 = 14, kretprobe_15 = 15);
slots!(uprobe, ProbeContext, entry::probe_entry; uprobe_0 = 0, uprobe_1 = 1, uprobe_2 = 2, uprobe_3 = 3, uprobe_4 = 4, uprobe_5 = 5, uprobe_6 = 6, uprobe_7 = 7, uprobe_8 = 8, uprobe_9 = 9, uprobe_10 = 10, uprobe_11 = 11, uprobe_12 = 12, uprobe_13 = 13, uprobe_14 = 14, uprobe_15 = 15);
slots!(uretprobe, RetProbeContext, entry::probe_return; uretprobe_0 = 0, uretprobe_1 = 1, uretprobe_2 = 2, uretprobe_3 = 3, uretprobe_4 = 4, uretprobe_5 = 5, uretprobe_6 = 6, uretprobe_7 = 7, uretprobe_8 = 8, uretprobe_9 = 9, uretprobe_10 = 10, uretprobe_11 = 11, uretprobe_12 = 12, uretprobe_13 = 13, uretprobe_14 = 14, uretprobe_15 = 15);
slots!(tracepoint, TracePointContext, entry::tracepoint; tracepoint_0 = 0, tracepoint_1 = 1, tracepoint_2 = 2, tracepoint_3 = 3, tracepoint_4 = 4, tracepoint_5 = 5, tracepoint_6 = 6, tracepoint_7 = 7, tracepoint_8 = 8, tracepoint_9 = 9, tracepoint_10 = 10, tracepoint_11 = 11, tracepoint_12 = 12, tracepoint_13 = 13, tracepoint_14 = 14, tracepoint_15 = 15);
slots!(raw_tracepoint, RawTracePointContext, entry::raw_tracepoint; rawtp_0 = 0, rawtp_1 = 1, rawtp_2 = 2, rawtp_3 = 3, rawtp_4 = 4, rawtp_5 = 5, rawtp_6 = 6, rawtp_7 = 7, rawtp_8 = 8, rawtp_9 = 9, rawtp_10 = 10, rawtp_11 = 11, rawtp_12 = 12, rawtp_13 = 13, rawtp_14 = 14, rawtp_15 = 15);
slots!(fentry, FEntryContext, entry::fentry; fentry_0 = 0, fentry_1 = 1, fentry_2 = 2, fentry_3 = 3, fentry_4 = 4, fentry_5 = 5, fentry_6 = 6, fentry_7 = 7, fentry_8 = 8, fentry_9 = 9, fentry_10 = 10, fentry_11 = 11, fentry_12 = 12, fentry_13 = 13, fentry_14 = 14, fentry_15 = 15);
slots!(fexit, FExitContext, entry::fexit; fexit_0 = 0, fexit_1 = 1, fexit_2 = 2, fexit_3 = 3, fexit_4 = 4, fexit_5 = 5, fexit_6 = 6, fexit_7 = 7, fexit_8 = 8, fexit_9 = 9, fexit_10 = 10, fexit_11 = 11, fexit_12 = 12, fexit_13 = 13, fexit_14 = 14, fexit_15 = 15);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL: `bpf_probe_read_*` and the tracing helpers are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
