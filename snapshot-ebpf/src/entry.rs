//! Per-kind argument capture: each function reads what its context offers (arguments, return
//! value, tracepoint fields) and calls [`record::record`]. All return 0, the value the kernel
//! expects from tracing programs.

use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{bpf_get_func_arg, bpf_get_func_ip},
    programs::{
        FEntryContext, FExitContext, ProbeContext, RawTracePointContext, RetProbeContext,
        TracePointContext,
    },
};
use snapshot_common::{EVENT_HAS_ARGS, EVENT_HAS_RET, FieldLoc, MAX_ARGS};

use crate::{
    maps::PROBES,
    maps::wants_ip,
    record::{Payload, Role, record},
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

/// The probed function's address, for probes that asked for it (globs); 0 otherwise.
#[inline(always)]
fn func_ip(ctx: *mut core::ffi::c_void, probe_id: u32) -> u64 {
    if wants_ip(probe_id) {
        // SAFETY: `ctx` is the program's context.
        unsafe { bpf_get_func_ip(ctx) }
    } else {
        0
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
    p.ip = func_ip(ctx.as_ptr(), probe_id);
    record(probe_id, &p);
    0
}

/// kretprobe / uretprobe: the return register.
#[inline(always)]
pub fn probe_return(ctx: &RetProbeContext, probe_id: u32) -> u32 {
    record(
        probe_id,
        &Payload {
            ip: func_ip(ctx.as_ptr(), probe_id),
            ..payload([0; MAX_ARGS], ctx.ret::<u64>(), EVENT_HAS_RET, Role::Return)
        },
    );
    0
}

/// Reads one tracepoint field and widens it to 64 bits (sign-extended when signed).
#[inline(always)]
fn read_field(ctx: &TracePointContext, loc: FieldLoc) -> u64 {
    let offset = usize::from(loc.offset);
    let signed = loc.signed != 0;
    // SAFETY: `read_at` is a bpf_probe_read_kernel of the record: a bad offset yields an error,
    // never a fault.
    unsafe {
        match loc.size {
            1 if signed => ctx.read_at::<i8>(offset).map(|v| v as u64),
            1 => ctx.read_at::<u8>(offset).map(u64::from),
            2 if signed => ctx.read_at::<i16>(offset).map(|v| v as u64),
            2 => ctx.read_at::<u16>(offset).map(u64::from),
            4 if signed => ctx.read_at::<i32>(offset).map(|v| v as u64),
            4 => ctx.read_at::<u32>(offset).map(u64::from),
            8 => ctx.read_at::<u64>(offset),
            _ => Ok(0),
        }
    }
    .unwrap_or(0)
}

/// Classic tracepoint: the fields userspace located in the tracepoint's format.
#[inline(always)]
pub fn tracepoint(ctx: &TracePointContext, probe_id: u32) -> u32 {
    let Some(config) = PROBES.get(probe_id) else {
        return 0;
    };
    let mut args = [0u64; MAX_ARGS];
    let mut flags = EVENT_HAS_ARGS;
    for (n, arg) in args.iter_mut().enumerate() {
        if (n as u32) < config.nargs {
            *arg = read_field(ctx, config.args[n]);
        }
    }
    let mut ret = 0;
    if config.ret.size != 0 {
        ret = read_field(ctx, config.ret);
        flags |= EVENT_HAS_RET;
    }
    record(probe_id, &payload(args, ret, flags, Role::Plain));
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
    record(probe_id, &payload(args, 0, EVENT_HAS_ARGS, Role::Plain));
    0
}

/// Arguments of an fentry/fexit program, through `bpf_get_func_arg`, which checks the index
/// against the traced function's real argument count at run time (absent ones read as 0).
#[inline(always)]
fn func_args(ctx: *mut core::ffi::c_void) -> [u64; MAX_ARGS] {
    let mut args = [0u64; MAX_ARGS];
    for (n, arg) in args.iter_mut().enumerate() {
        let mut value = 0u64;
        // SAFETY: `ctx` is the program's context and `value` a valid u64 on the stack.
        if unsafe { bpf_get_func_arg(ctx, n as u32, &raw mut value) } == 0 {
            *arg = value;
        }
    }
    args
}

/// fentry: the traced function's arguments.
#[inline(always)]
pub fn fentry(ctx: &FEntryContext, probe_id: u32) -> u32 {
    record(
        probe_id,
        &payload(func_args(ctx.as_ptr()), 0, EVENT_HAS_ARGS, Role::Entry),
    );
    0
}

/// fexit: arguments and return value.
#[inline(always)]
pub fn fexit(ctx: &FExitContext, probe_id: u32) -> u32 {
    let ret = ctx.ret::<u64>().unwrap_or(0);
    record(
        probe_id,
        &payload(
            func_args(ctx.as_ptr()),
            ret,
            EVENT_HAS_ARGS | EVENT_HAS_RET,
            Role::Return,
        ),
    );
    0
}
