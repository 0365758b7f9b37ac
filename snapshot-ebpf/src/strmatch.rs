//! String comparisons of the trigger program (`==`, `!=`, globs) on captured strings and on
//! `comm`, evaluated once per event before the bytecode runs; `op::STR` pushes their results.
//!
//! Each pattern is a bit-parallel NFA compiled by userspace ([`Pattern`]): one table lookup and
//! a few shifts per text byte, no backtracking. The text is copied out of the event's payload
//! slot (or taken from `bpf_get_current_comm`) into this CPU's scratch buffer, then walked
//! eight bytes per iteration, so the verifier walks at most `MATCH_MAX / 8 + 1` iterations per
//! comparison (kernels before 5.17 have no `bpf_loop`), each once (see [`matches`]): a
//! comparison sees the first `MATCH_MAX` (256) bytes of a string. Lengths
//! are laundered through the scratch map so that every path reaches the matcher in the same
//! state.
//!
//! The payload slot is read after the writer released `busy`: only `capacity` more events on
//! this CPU could overwrite it first, and then only the trigger's decision would be wrong.

use aya_ebpf::{
    helpers::generated::{bpf_get_current_comm, bpf_probe_read_kernel},
    macros::map,
    maps::PerCpuArray,
};
use core::ptr::{read_volatile as rd, write_volatile as wr};
use snapshot_common::{
    ANY_PROBE, COMM_LEN, MAX_STR_OPS, MAX_STRINGS, Pattern, PayloadHeader, TriggerProgram,
    strings::{MATCH_MAX, STR_SRC_COMM, STRING_SIZE_MAX, kind},
};

use crate::{capture, record::NO_SLOT};

/// Text buffer size: the largest string, plus a word so an aligned load never leaves it.
const TEXT: usize = STRING_SIZE_MAX as usize + 8;

/// Per-CPU scratch of the string comparisons.
pub struct StrScratch {
    /// The text being matched.
    pub text: [u8; TEXT],
    /// Per comparison: 0 (no such string on this event), 2 (no match) or 3 (match).
    pub res: [u64; MAX_STR_OPS],
    /// The text's length (kept in memory: see the module comment).
    pub len: u64,
    /// Whole words of the text, and the bytes after them (the matcher's loop guards).
    pub words: u64,
    /// See `words`.
    pub rest: u64,
}

/// This CPU's string scratch.
#[map]
static STR_SCRATCH: PerCpuArray<StrScratch> = PerCpuArray::with_max_entries(1, 0);

/// Copies the captured string `src` of this event into `text`; returns whether there is one
/// (its length is stored in the scratch).
///
/// # Safety
/// `sc` is this CPU's scratch.
#[inline(always)]
unsafe fn captured(sc: *mut StrScratch, probe_id: u32, slot: u64, src: u8, kind_: u8) -> bool {
    if !capture::wanted(probe_id) || slot == NO_SLOT || usize::from(src) >= capture::count(probe_id)
    {
        return false;
    }
    let Some(p) = capture::PAYLOADS.get_ptr(slot as u32) else {
        return false;
    };
    let size = u64::from(capture::string_size());
    // The index is masked where the verifier sees it: LLVM would drop a mask it can prove
    // redundant (`src < count <= MAX_STRINGS`), and before 6.x the verifier learns no bound
    // from comparing two registers. A volatile reload hides what LLVM knows.
    let src_word = u64::from(src);
    // SAFETY: a local read back.
    let src = (unsafe { rd(&raw const src_word) } & (MAX_STRINGS as u64 - 1)) as usize;
    // SAFETY: `p` is a payload slot; the status index is masked into the array.
    let status = i64::from(unsafe { rd(&raw const (*p).status[src]) });
    let len = if kind_ == kind::BUF {
        if status < 0 {
            return false;
        }
        status as u64
    } else {
        // Strings count their NUL; `size + 2` means truncated: the first `size` bytes.
        if status <= 0 {
            return false;
        }
        let n = (status - 1) as u64;
        if n > size { size } else { n }
    };
    let len = len & 0x1fff;
    if len > u64::from(STRING_SIZE_MAX) {
        return false;
    }
    // SAFETY: `text` holds `STRING_SIZE_MAX` bytes and `len` is at most that; the source is
    // inside the slot (the helper checks it anyway).
    unsafe {
        // `src` strides past the header, by additions of a known stride: older verifiers
        // (6.1) lose the bounds of a product and refuse the pointer.
        let stride = capture::stride() as usize;
        let mut at = size_of::<PayloadHeader>();
        for n in 1..MAX_STRINGS {
            if src >= n {
                at += stride;
            }
        }
        let from = p.cast::<u8>().add(at);
        if bpf_probe_read_kernel((&raw mut (*sc).text).cast(), len as u32, from.cast()) < 0 {
            return false;
        }
        wr(&raw mut (*sc).len, len);
    }
    true
}

/// The task's command name into `text` (its length into the scratch).
///
/// # Safety
/// `sc` is this CPU's scratch.
#[inline(always)]
unsafe fn comm(sc: *mut StrScratch) -> bool {
    // SAFETY: `text` is larger than a command name; the helper zero-fills on failure.
    unsafe {
        let text = (&raw mut (*sc).text).cast::<u8>();
        if bpf_get_current_comm(text.cast(), COMM_LEN as u32) < 0 {
            return false;
        }
        let mut len = COMM_LEN as u64 - 1;
        for i in 0..COMM_LEN {
            if rd(text.add(i)) == 0 {
                len = i as u64;
                break;
            }
        }
        wr(&raw mut (*sc).len, len);
    }
    true
}

/// Runs `pattern` over the scratch text: its whole words (eight NFA steps each), then the
/// last `len % 8` bytes.
///
/// No `break`: every iteration up to the bound runs, the ones past the text doing nothing. An
/// early exit would leave the loop with a different text index at each iteration, and the
/// verifier would then walk the rest of the program once per exit (1M instructions at a
/// `--string-size` of 1024); a guard that rejoins keeps one state per iteration, so the walk
/// grows with `--string-size / 8`, not with its square. The guards read their bound from
/// memory so that LLVM does not turn them back into an exit.
///
/// # Safety
/// `sc` is this CPU's scratch, `pat` a pattern of the trigger program.
#[inline(always)]
unsafe fn matches(sc: *mut StrScratch, pat: *const Pattern) -> bool {
    // SAFETY: guaranteed by the caller; text indices are masked into the buffer and byte
    // values index the 256-entry table. Few values stay in registers (the pattern's words are
    // read where they are used): spilled registers would take stack the recorder lacks.
    unsafe {
        let len = rd(&raw const (*sc).len) & 0x1fff;
        let len = if len > u64::from(MATCH_MAX) {
            u64::from(MATCH_MAX)
        } else {
            len
        };
        wr(&raw mut (*sc).words, len / 8);
        wr(&raw mut (*sc).rest, len & 7);
        let mut s = rd(&raw const (*pat).init);
        let words = u64::from(capture::string_size().clamp(COMM_LEN as u32, MATCH_MAX)) / 8 + 1;
        for w in 0..words {
            if w < rd(&raw const (*sc).words) {
                let at = ((w * 8) & (STRING_SIZE_MAX as u64 - 8)) as usize;
                let word = rd((&raw const (*sc).text).cast::<u8>().add(at).cast::<u64>());
                for i in 0..8 {
                    s = step(pat, s, (word >> (8 * i)) & 0xff);
                }
            }
        }
        for i in 0..8u64 {
            if i < rd(&raw const (*sc).rest) {
                let at =
                    ((rd(&raw const (*sc).words) * 8 + i) & (STRING_SIZE_MAX as u64 - 1)) as usize;
                let c = rd((&raw const (*sc).text).cast::<u8>().add(at));
                s = step(pat, s, u64::from(c));
            }
        }
        s & rd(&raw const (*pat).accept) != 0
    }
}

/// One NFA step (see [`Pattern`]) over byte `c` (below 256).
///
/// # Safety
/// `pat` is a pattern of the trigger program.
#[inline(always)]
unsafe fn step(pat: *const Pattern, s: u64, c: u64) -> u64 {
    // SAFETY: guaranteed by the caller; `c` is masked into the table.
    unsafe {
        let star = rd(&raw const (*pat).star);
        let s = ((s & rd(&raw const (*pat).lit[(c & 0xff) as usize])) << 1) | (s & star);
        s | ((s & star) << 1)
    }
}

/// Evaluates the string comparisons of `prog` on this event (`slot` is its payload slot, or
/// `NO_SLOT`) into this CPU's scratch, for [`result`].
///
/// # Safety
/// `prog` is the TRIGGERS value.
#[inline(always)]
pub unsafe fn evaluate(prog: *const TriggerProgram, probe_id: u32, slot: u64) {
    let Some(sc) = STR_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: guaranteed by the caller; `sc` is this CPU's scratch; indices are masked.
    unsafe {
        // A loop LLVM cannot unroll (its trip count is read at run time): one copy of the
        // matcher per program, not four.
        let n = (rd(&raw const (*prog).nstr) as usize).min(MAX_STR_OPS);
        let mut k = 0;
        while k < n {
            let op = &raw const (*prog).str_ops[k & (MAX_STR_OPS - 1)];
            let probe = rd(&raw const (*op).probe);
            let src = rd(&raw const (*op).src);
            let mut res = 0;
            if probe == ANY_PROBE || probe == probe_id {
                let have = if src == STR_SRC_COMM {
                    comm(sc)
                } else {
                    captured(sc, probe_id, slot, src, rd(&raw const (*op).kind))
                };
                if have {
                    let pattern = &raw const (*prog).patterns[k & (MAX_STR_OPS - 1)];
                    res = 2 | u64::from(matches(sc, pattern));
                }
            }
            wr(&raw mut (*sc).res[k & (MAX_STR_OPS - 1)], res);
            k += 1;
        }
    }
}

/// The result of string comparison `k` on this event, as [`evaluate`] left it: bit 0 the
/// match, bit 1 whether the event has the string at all.
#[inline(always)]
pub fn result(k: u32) -> u64 {
    match STR_SCRATCH.get_ptr(0) {
        // SAFETY: this CPU's scratch; the index is masked into the array.
        Some(sc) => unsafe { rd(&raw const (*sc).res[(k as usize) & (MAX_STR_OPS - 1)]) },
        None => 0,
    }
}
