//! How the return register of a kernel function becomes an event's 64-bit `ret`.
//!
//! At a kretprobe or an fexit the return register is read whole, but a function returning a
//! narrower type sets only its low bits: on `x86_64` an `int` function writes `eax`, and the
//! upper half of `rax` is whatever was there (zero, mostly), so `-ENOTDIR` reads as
//! `0xffff_ffec`. Userspace finds each probe slot's return type in the kernel's BTF and
//! gives it a [`code`] in the `SNAPSHOT_RET_WIDEN` global (one `u32` per slot, a frozen
//! read-only global, so the verifier sees a constant); the eBPF side [`apply`]s it where it
//! reads the return, with no branch, so the stored `ret` and the trigger see the value the
//! function returned. Code 0 keeps the register as it is (64-bit and pointer returns, and
//! whatever BTF cannot name).

/// Bits of a code holding the shift: `64 − 8 × size` of the return type.
pub const SHIFT: u32 = 0x3f;
/// Bit of a code set for a signed type: sign-extend rather than zero-extend.
pub const SIGNED: u32 = 1 << 6;

/// The code of an integer return type of `bytes` bytes (1, 2 or 4; any other size keeps the
/// register as it is).
#[must_use]
pub const fn code(signed: bool, bytes: u32) -> u32 {
    match bytes {
        1 | 2 | 4 => (64 - 8 * bytes) | if signed { SIGNED } else { 0 },
        _ => 0,
    }
}

/// The register `raw` widened by `code`: its low bits, sign- or zero-extended. Branch-free: a
/// shift up, then an arithmetic and a logical shift down, one of them picked by a mask.
#[must_use]
#[inline]
pub const fn apply(raw: u64, code: u32) -> u64 {
    let shift = code & SHIFT;
    let up = raw << shift;
    let unsigned = up >> shift;
    let signed = ((up as i64) >> shift) as u64;
    let pick = 0u64.wrapping_sub(((code & SIGNED) >> 6) as u64);
    unsigned ^ ((signed ^ unsigned) & pick)
}

#[cfg(test)]
mod tests {
    use super::{apply, code};

    #[test]
    fn narrow_returns_widen_by_their_sign() {
        // An `int` -ENOTDIR with the upper half zero, or with garbage there.
        for raw in [0xffff_ffecu64, 0x1234_5678_ffff_ffec] {
            assert_eq!(apply(raw, code(true, 4)) as i64, -20);
            assert_eq!(apply(raw, code(false, 4)), 0xffff_ffec);
        }
        assert_eq!(apply(0x7fff_ffff, code(true, 4)), 0x7fff_ffff);
        assert_eq!(apply(0xdead_00ff, code(true, 1)) as i64, -1);
        assert_eq!(apply(0xdead_00ff, code(false, 1)), 0xff);
        assert_eq!(apply(0xdead_8000, code(true, 2)) as i64, -32768);
        assert_eq!(apply(0xdead_8000, code(false, 2)), 0x8000);
        // 64-bit, pointers, unknown: the register as it is.
        for bytes in [0, 3, 8, 16] {
            assert_eq!(code(true, bytes), 0);
        }
        assert_eq!(apply(0xffff_ffff_ffff_ffec, 0), 0xffff_ffff_ffff_ffec);
        assert_eq!(apply(0xffff_ffec, 0), 0xffff_ffec);
    }
}
