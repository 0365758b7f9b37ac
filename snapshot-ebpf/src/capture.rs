//! Strings and byte buffers captured at the event and stored with it.
//!
//! Storage (see `snapshot_common::strings`): `PAYLOADS` has one slot per `EVENTS` slot, at the
//! same index. [`capture`] is called by `record::write` while it holds its CPU's `busy` word,
//! after the record's fields and before its commit word: the slot is written by the writer
//! that owns the event slot, and a reader that takes the event (its `seq` matches) takes the
//! strings written with it (the slot repeats the `seq`). An unreadable or NULL pointer only
//! sets a negative status: the event is recorded either way.
//!
//! What each probe captures is a read-only global patched in at load ([`StringSpec`]s, up to
//! `MAX_STRINGS` per probe slot), so each program's list is a constant to the verifier: a probe
//! without strings keeps none of this code, and one with strings only the reads it makes.
//! Each string is one helper call (`bpf_probe_read_{user,kernel}_str` or `_{user,kernel}`,
//! kernel 5.5+).

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    helpers::generated::{
        bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str,
    },
    macros::map,
    maps::Array,
};
use core::ptr::{read_volatile as rd, write_volatile as wr};
use snapshot_common::{
    MAX_ARGS, MAX_PROBES, MAX_STRINGS, PayloadHeader, StringSpec,
    strings::{LEN_FIXED, SRC_RET, kind, mem},
};

use crate::record::Payload;

/// One payload slot per event slot; the value size (header + strings) is set at load.
#[map]
pub static PAYLOADS: Array<PayloadHeader> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// What each probe slot captures, `MAX_STRINGS` per slot (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_STRINGS: [StringSpec; MAX_PROBES * MAX_STRINGS] = [StringSpec {
    kind: 0,
    mem: 0,
    src: 0,
    len_src: 0,
    len: 0,
    offset: 0,
}; MAX_PROBES * MAX_STRINGS];

/// `--string-size`: bytes kept per string (set by userspace at load).
#[unsafe(no_mangle)]
static SNAPSHOT_STRING_SIZE: u32 = 0;

/// `--string-size` (a load-time constant).
#[inline(always)]
pub fn string_size() -> u32 {
    // SAFETY: a plain u32 static; volatile only stops constant folding of the placeholder.
    unsafe { rd(&raw const SNAPSHOT_STRING_SIZE) }
}

/// Bytes per string in a slot (`snapshot_common::strings::string_stride`).
#[inline(always)]
pub fn stride() -> u32 {
    (string_size() + 2 + 7) & !7
}

/// String spec `s` of probe `id`, field by field (each a load-time constant).
#[inline(always)]
pub fn spec(id: u32, s: usize) -> StringSpec {
    let i = id as usize;
    if i >= MAX_PROBES || s >= MAX_STRINGS {
        return StringSpec::default();
    }
    // SAFETY: in bounds of the static array; volatile only stops constant folding.
    unsafe {
        let p = (&raw const SNAPSHOT_STRINGS)
            .cast::<StringSpec>()
            .add(i * MAX_STRINGS + s);
        StringSpec {
            kind: rd(&raw const (*p).kind),
            mem: rd(&raw const (*p).mem),
            src: rd(&raw const (*p).src),
            len_src: rd(&raw const (*p).len_src),
            len: rd(&raw const (*p).len),
            offset: rd(&raw const (*p).offset),
        }
    }
}

/// True when probe `id` captures strings (a load-time constant).
#[inline(always)]
pub fn wanted(id: u32) -> bool {
    spec(id, 0).kind != kind::NONE
}

/// Number of strings probe `id` captures (a load-time constant).
#[inline(always)]
pub fn count(id: u32) -> usize {
    let mut n = 0;
    for s in 0..MAX_STRINGS {
        if spec(id, s).kind == kind::NONE {
            break;
        }
        n += 1;
    }
    n
}

/// The event word `src` (an argument, or the return value). One arm per word, not an index:
/// an indexed read would keep the arguments in memory (on the 512-byte stack) for every probe.
#[inline(always)]
fn word(p: &Payload, src: u8) -> u64 {
    const _: () = assert!(MAX_ARGS == 6 && SRC_RET == 6);
    match src {
        0 => p.args[0],
        1 => p.args[1],
        2 => p.args[2],
        3 => p.args[3],
        4 => p.args[4],
        5 => p.args[5],
        SRC_RET => p.ret,
        _ => 0,
    }
}

/// Whether an address in `memory` is user memory.
#[inline(always)]
fn is_user(memory: u8, addr: u64) -> bool {
    match memory {
        mem::USER => true,
        mem::KERNEL => false,
        _ => (addr as i64) >= 0,
    }
}

/// A NUL-terminated string of at most `cap` bytes (NUL included) into `dst`: the helper's
/// result (bytes with the NUL, or a negative errno; the helper zeroes `dst` on error).
///
/// # Safety
/// `dst` is valid for `cap` bytes.
#[inline(always)]
unsafe fn read_str(dst: *mut u8, cap: u32, addr: u64, memory: u8) -> i32 {
    // SAFETY: guaranteed by the caller; the helpers check the source.
    let r = unsafe {
        if is_user(memory, addr) {
            bpf_probe_read_user_str(dst.cast(), cap, addr as *const _)
        } else {
            bpf_probe_read_kernel_str(dst.cast(), cap, addr as *const _)
        }
    };
    r as i32
}

/// The first `min(len, size)` bytes of a buffer into `dst` (none for a negative length, e.g. a
/// failed call's return value): the byte count, or a negative errno.
///
/// # Safety
/// `dst` is valid for `size` bytes.
#[inline(always)]
unsafe fn read_buf(dst: *mut u8, size: u32, len: u64, addr: u64, memory: u8) -> i32 {
    let mut n = if (len as i64) < 0 { 0 } else { len };
    if n > u64::from(size) {
        n = u64::from(size);
    }
    let n = n as u32;
    // SAFETY: guaranteed by the caller; `n <= size`; the helpers check the source.
    let r = unsafe {
        if is_user(memory, addr) {
            bpf_probe_read_user(dst.cast(), n, addr as *const _)
        } else {
            bpf_probe_read_kernel(dst.cast(), n, addr as *const _)
        }
    };
    if r < 0 { r as i32 } else { n as i32 }
}

/// Writes the strings probe `id` captures from the event `p` into `slot` (whose `seq` and
/// `cpu` the caller stamped). `base` is the tracepoint record (for `__data_loc` strings), or 0.
///
/// A subprogram of its own (a BPF-to-BPF call, only made by probes that capture strings): its
/// registers and stack stay out of the record writer's frame. The verifier checks it at each
/// call site with the caller's `id`, so the list stays a constant.
///
/// # Safety
/// `slot` is the `PAYLOADS` value of the event's slot, and the caller holds its CPU's `busy`.
#[inline(always)]
pub unsafe fn capture(id: u32, p: &Payload, base: u64, slot: *mut PayloadHeader) {
    let size = string_size();
    let stride = stride() as usize;
    // SAFETY: guaranteed by the caller; each string lies inside the slot, whose value size is
    // the header plus `MAX_STRINGS` (at most) strides, as the load sized it.
    unsafe {
        let strings = slot.cast::<u8>().add(size_of::<PayloadHeader>());
        // A loop LLVM keeps as one (its trip count is read at run time): one copy of the reads
        // per program, not `MAX_STRINGS`; the verifier walks it once per string with `s`
        // known, so each spec is still a constant to it.
        let n = count(id);
        let mut s = 0;
        while s < n {
            let sp = spec(id, s);
            let dst = strings.add(s * stride);
            let src = word(p, sp.src);
            let status = match sp.kind {
                kind::STR => read_str(dst, size + 2, src, sp.mem),
                kind::BUF => {
                    let len = if sp.len_src == LEN_FIXED {
                        u64::from(sp.len)
                    } else {
                        word(p, sp.len_src)
                    };
                    read_buf(dst, size, len, src, sp.mem)
                }
                _ => {
                    // `__data_loc` / `__rel_loc`: `len << 16 | offset` into the record.
                    let rel = if sp.kind == kind::REL_LOC {
                        u64::from(sp.offset)
                    } else {
                        0
                    };
                    read_str(dst, size + 2, base + rel + (src & 0xffff), mem::KERNEL)
                }
            };
            wr(&raw mut (*slot).status[s & (MAX_STRINGS - 1)], status);
            s += 1;
        }
    }
}
