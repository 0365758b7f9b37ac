//! Per-kind argument capture: each function reads what its context offers (arguments, return
//! value, tracepoint fields) and calls [`record::record`]. All return 0, the value the kernel
//! expects from tracing programs.

use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::bpf_probe_read_kernel,
    programs::{
        FEntryContext, FExitContext, ProbeContext, RawTracePointContext, RetProbeContext,
        TracePointContext,
    },
};
use snapshot_common::{EVENT_HAS_ARGS, EVENT_HAS_RET, FieldLoc, MAX_ARGS};

use crate::{
    funcs,
    maps::{PROBES, widen_ret},
    record::{Payload, Role, record, record_from},
};

const fn payload(args: [u64; MAX_ARGS], ret: u64, flags: u32, role: Role) -> Payload {
    Payload {
        args,
        ret,
        ip: 0,
        flags,
        role,
    }
}

/// kprobe / uprobe: the first six argument registers.
#[inline(always)]
pub fn probe_entry(ctx: &ProbeContext, probe_id: u32) -> u32 {
    let mut args = [0u64; MAX_ARGS];
    for (n, arg) in args.iter_mut().enumerate() {
        *arg = ctx.arg::<u64>(n).unwrap_or(0);
    }
    let mut p = payload(args, 0, EVENT_HAS_ARGS, Role::Entry);
    p.ip = funcs::kprobe_ip(ctx, probe_id);
    record(ctx, probe_id, &p);
    0
}

/// kretprobe / uretprobe: the return register, widened as the function's return type says
/// (an `int` function sets only its low half; uretprobes keep it whole).
#[inline(always)]
pub fn probe_return(ctx: &RetProbeContext, probe_id: u32) -> u32 {
    let ret = widen_ret(probe_id, ctx.ret::<u64>());
    record(
        ctx,
        probe_id,
        &Payload {
            ip: funcs::kretprobe_ip(ctx, probe_id),
            ..payload([0; MAX_ARGS], ret, EVENT_HAS_RET, Role::Return)
        },
    );
    0
}

/// Reads one tracepoint field and widens it to 64 bits (sign-extended when signed), with no
/// branch at all: branches per field would multiply the verifier's paths (6.1 gives up). It
/// reads 8 bytes and keeps `size` of them; the record lives in the kernel's per-CPU perf trace
/// buffer (8 KiB), so reading past a short last field stays inside it. An absent field
/// (size 0) reads as 0; a failed read leaves 0. `raw` is the caller's one stack word for every
/// field (LLVM gives each inlined call a slot of its own otherwise: 56 bytes of a 512-byte
/// stack).
#[inline(always)]
fn read_field(ctx: &TracePointContext, loc: FieldLoc, raw: &mut u64) -> u64 {
    // SAFETY: pointer arithmetic on the context only; the helper checks the source, and a bad
    // offset makes it fail (zeroing `raw`), never fault.
    let raw = unsafe {
        let src = ctx.as_ptr().cast::<u8>().add(usize::from(loc.offset));
        let _ = bpf_probe_read_kernel(core::ptr::from_mut(raw).cast(), 8, src.cast());
        core::ptr::read_volatile(raw)
    };
    let size = u64::from(loc.size) & 15;
    let present = 0u64.wrapping_sub(size) >> 63; // 1 when size > 0
    // 1..=8 for the sizes userspace configures (0, 1, 2, 4, 8).
    let size = size + (1 - present);
    let shift = 64u64.wrapping_sub(8 * size) & 63;
    let unsigned = (raw << shift) >> shift;
    let signed = (((raw << shift) as i64) >> shift) as u64;
    let pick_signed = 0u64.wrapping_sub(u64::from(loc.signed & 1));
    (unsigned ^ ((signed ^ unsigned) & pick_signed)) * present
}

/// Classic tracepoint: the fields userspace located in the tracepoint's format.
#[inline(always)]
pub fn tracepoint(ctx: &TracePointContext, probe_id: u32) -> u32 {
    let Some(config) = PROBES.get(probe_id) else {
        return 0;
    };
    // Unconfigured fields have size 0 and read as 0: no branch per field (see `read_field`).
    let mut args = [0u64; MAX_ARGS];
    let mut raw = 0u64;
    for (arg, loc) in args.iter_mut().zip(config.args) {
        *arg = read_field(ctx, loc, &mut raw);
    }
    let ret = read_field(ctx, config.ret, &mut raw);
    let has_ret = (0u32.wrapping_sub(u32::from(config.ret.size)) >> 31) * EVENT_HAS_RET;
    // The record's address: `__data_loc` strings are inside it.
    record_from(
        ctx,
        probe_id,
        &payload(args, ret, EVENT_HAS_ARGS | has_ret, Role::Plain),
        ctx.as_ptr() as u64,
    );
    0
}

/// Raw tracepoint: its first two arguments. The kernel refuses to attach a program that reads
/// more arguments than the tracepoint has, so two is the most every multi-argument tracepoint
/// (`sys_enter`: regs, id) accepts.
#[inline(always)]
pub fn raw_tracepoint(ctx: &RawTracePointContext, probe_id: u32) -> u32 {
    let mut args = [0u64; MAX_ARGS];
    args[0] = ctx.arg::<u64>(0);
    args[1] = ctx.arg::<u64>(1);
    record(
        ctx,
        probe_id,
        &payload(args, 0, EVENT_HAS_ARGS, Role::Plain),
    );
    0
}

/// fentry: the traced function's arguments.
#[inline(always)]
pub fn fentry(ctx: &FEntryContext, probe_id: u32) -> u32 {
    record(
        ctx,
        probe_id,
        &payload(
            funcs::args(ctx.as_ptr(), probe_id),
            0,
            EVENT_HAS_ARGS,
            Role::Entry,
        ),
    );
    0
}

/// fexit: arguments and return value.
#[inline(always)]
pub fn fexit(ctx: &FExitContext, probe_id: u32) -> u32 {
    let ret = funcs::ret(ctx, probe_id);
    record(
        ctx,
        probe_id,
        &payload(
            funcs::args(ctx.as_ptr(), probe_id),
            ret,
            EVENT_HAS_ARGS | EVENT_HAS_RET,
            Role::Return,
        ),
    );
    0
}
