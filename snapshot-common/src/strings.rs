//! Strings and byte buffers captured with an event (`--string-size`), and the string
//! operations of the trigger program.
//!
//! Storage: the `PAYLOADS` map has one payload slot per event slot of `EVENTS`, at the same
//! index (`(half * ncpu + cpu) * capacity + position`), written by the same writer under the
//! same per-CPU `busy` word and before the event's commit word, so a payload is drained with its
//! event or not at all. A slot is a [`PayloadHeader`] followed by up to [`MAX_STRINGS`] strings
//! of [`string_stride`] bytes each; events that carry one have [`EVENT_HAS_STRINGS`] set.
//!
//! Each string reads `size + 2` bytes at most (`size` = `--string-size`): a NUL-terminated
//! string that fills them (status `size + 2`) had more than `size` bytes and is shown
//! truncated to `size`; one that fits is complete, even at exactly `size` bytes.

/// Most strings (or buffers) one event captures.
pub const MAX_STRINGS: usize = 4;
/// Default `--string-size` (bytes kept per string, as bpftrace's default).
pub const STRING_SIZE_DEFAULT: u32 = 64;
/// Largest `--string-size` (`PATH_MAX`).
pub const STRING_SIZE_MAX: u32 = 4096;

/// The event's strings are in the payload slot of the same index.
pub const EVENT_HAS_STRINGS: u32 = 1 << 4;

/// What a [`StringSpec`] captures (`StringSpec::kind`).
pub mod kind {
    /// Nothing (the end of a probe's list).
    pub const NONE: u8 = 0;
    /// A NUL-terminated string at the address in the source word.
    pub const STR: u8 = 1;
    /// A byte buffer at the address in the source word; its length comes from
    /// `StringSpec::len_src` (or is `StringSpec::len`).
    pub const BUF: u8 = 2;
    /// A tracepoint `__data_loc char[]` field: the source word is `len << 16 | offset` of a
    /// string inside the tracepoint record.
    pub const DATA_LOC: u8 = 3;
    /// A tracepoint `__rel_loc char[]` field: as `DATA_LOC`, the offset counted from
    /// `StringSpec::offset` (the end of the field).
    pub const REL_LOC: u8 = 4;
}

/// Which memory a string is read from (`StringSpec::mem`).
pub mod mem {
    /// By address: kernel when the top bit is set, user otherwise (x86-64 and arm64 split
    /// the address space that way).
    pub const AUTO: u8 = 0;
    /// User memory (`bpf_probe_read_user_str`).
    pub const USER: u8 = 1;
    /// Kernel memory (`bpf_probe_read_kernel_str`).
    pub const KERNEL: u8 = 2;
}

/// `StringSpec::src` / `len_src` of the return value (0..6 are argument words).
pub const SRC_RET: u8 = 6;
/// `StringSpec::len_src` of a fixed length (`StringSpec::len`).
pub const LEN_FIXED: u8 = 0xff;

/// One string a probe captures: where its address (or location word) is, and how to read it.
/// Userspace patches the list of every probe into a read-only global before load, so the
/// verifier sees each program's list as constants and keeps only the code it needs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StringSpec {
    /// `kind::*`.
    pub kind: u8,
    /// `mem::*`.
    pub mem: u8,
    /// The event word holding the address: an argument index, or [`SRC_RET`].
    pub src: u8,
    /// `kind::BUF`: the event word holding the length (an argument index, [`SRC_RET`]), or
    /// [`LEN_FIXED`].
    pub len_src: u8,
    /// `kind::BUF` with [`LEN_FIXED`]: the length.
    pub len: u16,
    /// `kind::REL_LOC`: the end of the field in the record.
    pub offset: u16,
}

/// The start of a payload slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadHeader {
    /// The commit word of the event it belongs to (`Event::seq`).
    pub seq: u64,
    /// CPU of that event (with `seq`, names the event within a snapshot).
    pub cpu: u32,
    /// Explicit padding; always zero.
    pub pad: u32,
    /// Per string: the helper's result. Strings: bytes copied with the NUL, or a negative
    /// errno (an unreadable or NULL pointer). Buffers: bytes copied, or a negative errno.
    pub status: [i32; MAX_STRINGS],
}

/// Bytes of one string in a payload slot for `--string-size size`: `size + 2`, rounded up
/// to 8.
#[must_use]
pub const fn string_stride(size: u32) -> u32 {
    (size + 2).next_multiple_of(8)
}

/// Bytes of a payload slot holding `strings` strings of `--string-size size`.
#[must_use]
pub const fn payload_size(size: u32, strings: u32) -> u32 {
    size_of::<PayloadHeader>() as u32 + strings * string_stride(size)
}

/// String comparisons look at the first this-many bytes of a string (all of it up to
/// `--string-size`): the verifier walks the matcher once per 8 bytes, and 6.1 gives a program
/// a million instructions in all.
pub const MATCH_MAX: u32 = 256;

/// Most string comparisons in a trigger program.
pub const MAX_STR_OPS: usize = 4;
/// Longest string pattern (after `**` collapses to `*`): one state bit per character.
pub const PATTERN_MAX: usize = 63;
/// `StrOp::src` of the task's command name.
pub const STR_SRC_COMM: u8 = 0xff;

/// A string comparison of the trigger program, evaluated once per event before the program
/// runs (`op::STR` pushes its result).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrOp {
    /// The probe whose events have the string, or `ANY_PROBE` (comm).
    pub probe: u32,
    /// Captured string index, or [`STR_SRC_COMM`].
    pub src: u8,
    /// The capture's `kind::*` (a string's status counts its NUL, a buffer's does not).
    pub kind: u8,
    /// Explicit padding.
    pub pad: [u8; 2],
}

/// A glob (`*`, `?`, literal bytes; `==` is a glob without wildcards) as a bit-parallel NFA:
/// state bit `j` means "the first `j` pattern characters matched". For each text byte `c`:
/// `s = ((s & lit[c]) << 1) | (s & star)`, then `s |= (s & star) << 1` (a star matches
/// nothing too). The text matches when `s & accept != 0` at its end.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Per byte value: the positions whose pattern character accepts it (itself or `?`).
    pub lit: [u64; 256],
    /// Positions holding `*`.
    pub star: u64,
    /// The state before any byte (position 0, and past leading stars).
    pub init: u64,
    /// The final position (`1 << len`).
    pub accept: u64,
}

impl Default for Pattern {
    fn default() -> Self {
        Self {
            lit: [0; 256],
            star: 0,
            init: 1,
            accept: 1,
        }
    }
}

impl Pattern {
    /// One NFA step over byte `c` (the kernel's and the userspace reference's step).
    #[must_use]
    #[inline]
    pub const fn step(&self, s: u64, c: u8) -> u64 {
        let s = ((s & self.lit[c as usize]) << 1) | (s & self.star);
        s | ((s & self.star) << 1)
    }
}

const _: () = assert!(size_of::<StringSpec>() == 8);
const _: () = assert!(size_of::<PayloadHeader>() == 16 + 4 * MAX_STRINGS);
const _: () = assert!(size_of::<StrOp>() == 8);
const _: () = assert!(size_of::<Pattern>() == 8 * 259);
const _: () = assert!(PATTERN_MAX < 64);
