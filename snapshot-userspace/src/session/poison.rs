//! The eBPF object for a kernel without BPF atomics (before 5.12): every atomic instruction
//! but the plain atomic add (`XADD`, which such kernels have) becomes a call to an unknown
//! helper ([`POISON_HELPER`]).
//!
//! Why: those kernels refuse a program holding an atomic exchange or fetch anywhere, even where
//! the verifier would never go ("`BPF_STX` uses reserved fields", from a pass over every
//! instruction), while an unknown helper is refused only where the verifier reaches it. The
//! programs branch on the frozen `kfeature::ATOMICS` bit (`snapshot-ebpf/src/atomic.rs`), so the
//! verifier prunes every poisoned instruction; one that it reached would make the load fail
//! with "invalid func unknown#195929868", never run wrong. The instruction count and every
//! offset stay the same, so relocations, BTF line and function info still match.

use object::{Object as _, ObjectSection as _, SectionKind};
use snapshot_common::POISON_HELPER;

/// `BPF_STX | BPF_ATOMIC` with `BPF_W` or `BPF_DW`.
const ATOMIC_W: u8 = 0xc3;
const ATOMIC_DW: u8 = 0xdb;
/// `BPF_LD | BPF_IMM | BPF_DW`: takes two instruction slots.
const LD_IMM64: u8 = 0x18;
/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;

/// Poisons the atomic instructions of `insns` (one program section); returns how many.
#[must_use]
pub fn poison_section(insns: &mut [u8]) -> usize {
    let mut count = 0;
    let mut i = 0;
    while i + 8 <= insns.len() {
        let code = insns[i];
        let imm = i32::from_le_bytes(insns[i + 4..i + 8].try_into().unwrap_or_default());
        if (code == ATOMIC_W || code == ATOMIC_DW) && imm != 0 {
            insns[i..i + 8].copy_from_slice(
                &[CALL, 0, 0, 0]
                    .into_iter()
                    .chain(POISON_HELPER.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
            count += 1;
        }
        i += if code == LD_IMM64 { 16 } else { 8 };
    }
    count
}

/// An 8-byte aligned copy of `object` with every program section poisoned, and the number
/// of instructions poisoned (aya parses ELF headers in place, which needs the alignment).
pub fn without_atomics(object: &[u8]) -> anyhow::Result<(Aligned, usize)> {
    let mut out = Aligned::copy(object);
    let file = object::File::parse(object)
        .map_err(|e| anyhow::anyhow!("the eBPF object is not an ELF file ({e}): rebuild"))?;
    let mut count = 0;
    for section in file.sections() {
        // `SHF_EXECINSTR`: the programs, and `.text` for functions they call.
        if section.kind() != SectionKind::Text {
            continue;
        }
        let Some((offset, size)) = section.file_range() else {
            continue;
        };
        let (start, end) = (offset as usize, (offset + size) as usize);
        count += poison_section(&mut out.bytes_mut()[start..end]);
    }
    Ok((out, count))
}

/// Bytes kept 8-byte aligned.
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    fn copy(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        let mut this = Self {
            words: Vec::new(),
            len: bytes.len(),
        };
        // SAFETY: `words` holds at least `bytes.len()` bytes; u64 has no invalid bit patterns.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                words.as_mut_ptr().cast::<u8>(),
                bytes.len(),
            );
        }
        this.words = words;
        this
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the words hold `len` initialised bytes; u8 has alignment 1.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.len) }
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: as for `bytes_mut`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisons_exchanges_and_fetches_but_not_plain_adds() {
        let insn = |code: u8, imm: i32| {
            let mut v = vec![code, 0x2a, 0xf8, 0xff];
            v.extend(imm.to_le_bytes());
            v
        };
        let mut prog = [
            insn(ATOMIC_DW, 0xe1), // xchg
            insn(ATOMIC_DW, 0x00), // add, no fetch: 5.10 has it
            insn(ATOMIC_W, 0x01),  // fetch_add (32-bit)
            insn(LD_IMM64, 0),     // ld_imm64 …
            insn(ATOMIC_DW, 0xf1), // … whose second slot is not an instruction
            insn(ATOMIC_DW, 0xf1), // cmpxchg
        ]
        .concat();
        assert_eq!(poison_section(&mut prog), 3);
        let poisoned = [CALL, 0, 0, 0]
            .into_iter()
            .chain(POISON_HELPER.to_le_bytes())
            .collect::<Vec<u8>>();
        assert_eq!(&prog[0..8], poisoned.as_slice());
        assert_eq!(prog[8], ATOMIC_DW, "the plain add stays");
        assert_eq!(&prog[16..24], poisoned.as_slice());
        assert_eq!(prog[32], ATOMIC_DW, "ld_imm64's second slot is left alone");
        assert_eq!(&prog[40..48], poisoned.as_slice());
    }

    #[test]
    fn the_object_has_atomics_only_where_the_poison_goes() {
        let (aligned, count) = without_atomics(super::super::load::EBPF_OBJECT).unwrap();
        assert!(count > 0, "the object's exchanges were found");
        assert_eq!(aligned.bytes().len(), super::super::load::EBPF_OBJECT.len());
        assert_eq!(aligned.bytes().as_ptr().align_offset(8), 0);
        let (_, again) = without_atomics(aligned.bytes()).unwrap();
        assert_eq!(again, 0, "nothing left to poison");
    }
}
