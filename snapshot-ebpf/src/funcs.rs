//! What a kernel-function probe learns about its function, on every kernel: the function's
//! address (a glob's events name their function by it) and, for fentry/fexit, its arguments
//! and return value. Each takes the helper where the kernel has it, chosen by a `kfeature`
//! bit the verifier sees as a constant, and otherwise reads what the context holds:
//!
//! * **kprobe address without `bpf_get_func_ip`** (before 5.15): the saved instruction pointer.
//!   A kprobe on a function's first instruction, by breakpoint or through ftrace, runs its
//!   handler with `regs->ip` just past the one-byte breakpoint: the probe's address + 1.
//! * **kretprobe address without it**: at the return, `regs->ip` is the kretprobe trampoline,
//!   and nothing in the registers names the function. [`note_call`] (the `glob_entry` kprobe,
//!   attached to the same functions) notes each call's address under the stack slot of its
//!   return address (`regs->sp` at the entry); the return finds it at `regs->sp - 8`: the
//!   function's `ret` popped that slot, and the trampoline saves the stack pointer as it found
//!   it. On arm64 (return address in the link register, `pc` on the probed instruction) the
//!   key is `regs->sp` at both ends: the function gives its caller's stack pointer back. The slot is unique among calls in flight (each has its own frame), so recursion and
//!   nesting pair up; a call whose return never fires leaves an entry that the next call on
//!   that slot replaces, or the LRU map forgets.
//! * **fentry/fexit arguments without `bpf_get_func_arg`** (before 5.17): the context is the
//!   array of argument words, then the return value. How many words the function's arguments
//!   take comes from its BTF at load (`SNAPSHOT_FUNC_WORDS`); they are copied with
//!   `bpf_probe_read_kernel` (see [`words`]).

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_func_arg, bpf_get_func_ip, bpf_probe_read_kernel},
    },
    macros::kprobe,
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use snapshot_common::{MAX_ARGS, kfeature};

use crate::{
    filter,
    maps::{CALL_SITES, func_words, has, wants_ip, widen_ret},
};

/// The kprobe's function address from the registers: on `x86_64` the breakpoint's address + 1;
/// on arm64 the program counter, which a `BRK` leaves on the probed instruction.
#[inline(always)]
fn entry_ip(ctx: &ProbeContext) -> u64 {
    // SAFETY: `regs` is the program's context (`pt_regs`), readable directly.
    #[cfg(bpf_target_arch = "x86_64")]
    let ip = unsafe { (*ctx.regs).rip }.wrapping_sub(1);
    // SAFETY: as above.
    #[cfg(bpf_target_arch = "aarch64")]
    let ip = unsafe { (*ctx.regs).pc };
    ip
}

/// The key of a call in flight at its entry: on `x86_64` the stack slot of its return address
/// (`sp`); arm64 keeps the return address in the link register, and the key is the stack
/// pointer the function must give back to its caller (`sp` at the entry).
#[inline(always)]
fn entry_slot(regs: *const aya_ebpf::bindings::pt_regs) -> u64 {
    // SAFETY: `regs` is the program's context (`pt_regs`), readable directly.
    #[cfg(bpf_target_arch = "x86_64")]
    let sp = unsafe { (*regs).rsp };
    // SAFETY: as above.
    #[cfg(bpf_target_arch = "aarch64")]
    let sp = unsafe { (*regs).sp };
    sp
}

/// The same key at the call's return: on `x86_64` the `ret` popped the slot (`sp - 8`); on
/// arm64 the stack pointer is back to what it was at the entry.
#[inline(always)]
fn return_slot(regs: *const aya_ebpf::bindings::pt_regs) -> u64 {
    #[cfg(bpf_target_arch = "x86_64")]
    let slot = entry_slot(regs).wrapping_sub(8);
    #[cfg(bpf_target_arch = "aarch64")]
    let slot = entry_slot(regs);
    slot
}

/// The function address of a kprobe event, for probes that asked for it (globs); 0 otherwise.
#[inline(always)]
pub fn kprobe_ip(ctx: &ProbeContext, probe_id: u32) -> u64 {
    if !wants_ip(probe_id) {
        return 0;
    }
    if has(kfeature::FUNC_IP) {
        // SAFETY: `ctx` is the program's context.
        return unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    }
    entry_ip(ctx)
}

/// The function address of a kretprobe event, for probes that asked for it (globs); 0
/// otherwise, or when its call's entry was not seen.
#[inline(always)]
pub fn kretprobe_ip(ctx: &RetProbeContext, probe_id: u32) -> u64 {
    if !wants_ip(probe_id) {
        return 0;
    }
    if has(kfeature::FUNC_IP) {
        // SAFETY: `ctx` is the program's context.
        return unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    }
    let slot = return_slot(ctx.regs);
    // SAFETY: the value is a plain u64, copied out before the entry is removed.
    let Some(ip) = (unsafe { CALL_SITES.get(&slot) }).copied() else {
        return 0;
    };
    let _ = CALL_SITES.remove(&slot);
    ip
}

/// Notes a glob kretprobe's call (kernels without `bpf_get_func_ip`): its function's address
/// under the stack slot of its return address. Attached by userspace to every function of
/// such a glob; filtered like the recorder, so other tasks' calls cost a filter only.
#[kprobe]
pub fn glob_entry(ctx: ProbeContext) -> u32 {
    if !filter::wanted(bpf_get_current_pid_tgid()) {
        return 0;
    }
    let slot = entry_slot(ctx.regs);
    let _ = CALL_SITES.insert(&slot, &entry_ip(&ctx), 0);
    0
}

/// Copies `N` context words from `ctx` + `skip` words. Read with `bpf_probe_read_kernel`,
/// not directly: 5.10's verifier refuses a direct read of an argument that points to anything
/// but a struct ("arg3 type INT is not a struct": `vfs_write`'s `loff_t *pos`), and later ones
/// check each offset against the argument count, which a computed offset cannot pass.
#[inline(always)]
fn words<const N: usize>(ctx: *mut core::ffi::c_void, skip: u32) -> [u64; N] {
    let mut out = [0u64; N];
    // SAFETY: the helper checks the source (the trampoline's argument words on the kernel
    // stack) and fails rather than fault; `out` is N writable words.
    let _ = unsafe {
        bpf_probe_read_kernel(
            out.as_mut_ptr().cast(),
            (8 * N) as u32,
            ctx.cast::<u64>().add(skip as usize).cast(),
        )
    };
    out
}

/// The traced function's first arguments (fentry/fexit of probe slot `probe_id`); absent ones
/// are 0.
#[inline(always)]
pub fn args(ctx: *mut core::ffi::c_void, probe_id: u32) -> [u64; MAX_ARGS] {
    let mut args = [0u64; MAX_ARGS];
    if has(kfeature::FUNC_ARGS) {
        // `bpf_get_func_arg` checks the index against the function's real argument count at
        // run time and leaves `value` alone on error, so no branch is needed (branches on each
        // of six results would give the verifier 64 paths to walk through everything after).
        for (n, arg) in args.iter_mut().enumerate() {
            // SAFETY: `ctx` is the program's context and `arg` a valid, zeroed u64.
            let _ = unsafe { bpf_get_func_arg(ctx, n as u32, core::ptr::from_mut(arg)) };
        }
        return args;
    }
    // One copy of six words, then only the function's own kept (a load-time constant): the
    // words past them are other data of the trampoline's frame.
    let n = func_words(probe_id) as usize;
    for (i, (arg, word)) in args.iter_mut().zip(words::<MAX_ARGS>(ctx, 0)).enumerate() {
        if i < n {
            *arg = word;
        }
    }
    args
}

/// The traced function's return value (fexit of probe slot `probe_id`), widened as its
/// return type says: the trampoline saves the whole register, of which an `int` function set
/// only the low half.
#[inline(always)]
pub fn ret(ctx: &FExitContext, probe_id: u32) -> u64 {
    let raw = if has(kfeature::FUNC_ARGS) {
        ctx.ret::<u64>().unwrap_or(0)
    } else {
        // The word after the arguments.
        let [ret] = words::<1>(ctx.as_ptr(), func_words(probe_id));
        ret
    };
    widen_ret(probe_id, raw)
}
