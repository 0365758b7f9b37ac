//! The shape of a trigger program: how many instructions it has and which operations it uses.
//! Fixed at load time as `.rodata` constants, it bounds the in-kernel interpreter
//! (`snapshot-ebpf/src/trigger.rs`): the verifier, which knows those constants, walks only the
//! iterations the trigger has instead of all [`MAX_INSNS`], and the string comparisons only
//! when it has some. That was most of a probe program's verification: a tracepoint program
//! with `ret == -ENOENT` verifies in 19 ms instead of 550 ms.
//!
//! A program installed later must fit the shape loaded ([`TriggerShape::admits`]): the
//! interpreter stops at the loaded length and skips string comparisons the shape has not, so
//! a program that does not fit would be evaluated wrongly, and userspace refuses it instead.
//! Operations are checked as a whole set, so that guards on others can be added without
//! changing what fits. [`TriggerShape::FULL`] admits every program.

use crate::{MAX_INSNS, TriggerProgram, op};

/// What the trigger programs of one load may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TriggerShape {
    /// Most instructions.
    pub len: u32,
    /// The operations used: bit `op::X` for each (`op::STR` also for string comparisons).
    pub ops: u32,
}

impl TriggerShape {
    /// Every program fits.
    pub const FULL: Self = Self {
        len: MAX_INSNS as u32,
        ops: u32::MAX,
    };

    /// No program but the empty one (`manual`): the evaluator is not loaded at all.
    pub const EMPTY: Self = Self { len: 0, ops: 0 };

    /// The smallest shape `prog` fits.
    #[must_use]
    pub fn of(prog: &TriggerProgram) -> Self {
        let len = prog.len.min(MAX_INSNS as u32);
        let mut ops = 0u32;
        for insn in &prog.insns[..len as usize] {
            ops |= bit(insn.op);
        }
        if prog.nstr != 0 {
            ops |= bit(op::STR);
        }
        Self { len, ops }
    }

    /// True when `prog` fits this shape: a program that may be installed in this load.
    #[must_use]
    pub fn admits(&self, prog: &TriggerProgram) -> bool {
        let s = Self::of(prog);
        prog.len as usize <= MAX_INSNS && s.len <= self.len && s.ops & !self.ops == 0
    }
}

/// The bit of an operation (codes of 32 and above share the top bit, which only makes a shape
/// admit more).
#[must_use]
pub const fn bit(code: u8) -> u32 {
    1 << if code < 32 { code } else { 31 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FIELD_PID, FIELD_RET, Insn};

    fn prog(insns: &[(u8, u8)]) -> TriggerProgram {
        let mut p = TriggerProgram {
            len: insns.len() as u32,
            ..TriggerProgram::default()
        };
        for (slot, &(op, a)) in p.insns.iter_mut().zip(insns) {
            *slot = Insn {
                op,
                a,
                ..Insn::default()
            };
        }
        p
    }

    #[test]
    fn the_shape_of_a_program_is_its_length_and_operations() {
        let p = prog(&[(op::FIELD, FIELD_RET), (op::CONST, 0), (op::CMP, 2)]);
        let s = TriggerShape::of(&p);
        assert_eq!(s.len, 3);
        assert_eq!(s.ops, bit(op::FIELD) | bit(op::CONST) | bit(op::CMP));
        assert!(s.admits(&p));
        assert_eq!(TriggerShape::of(&TriggerProgram::default()).len, 0);
    }

    #[test]
    fn a_program_outside_the_shape_is_not_admitted() {
        let small = TriggerShape::of(&prog(&[
            (op::FIELD, FIELD_RET),
            (op::CONST, 0),
            (op::CMP, 2),
        ]));
        // Longer, another operation, string comparisons.
        let longer = prog(&[
            (op::FIELD, FIELD_RET),
            (op::CONST, 0),
            (op::CMP, 2),
            (op::NOT, 0),
        ]);
        assert!(!small.admits(&longer));
        assert!(!small.admits(&prog(&[
            (op::FIELD, FIELD_RET),
            (op::CONST, 0),
            (op::BITAND, 0)
        ])));
        // Another field is the same operations.
        assert!(small.admits(&prog(&[
            (op::FIELD, FIELD_PID),
            (op::CONST, 0),
            (op::CMP, 2)
        ])));
        let mut strings = prog(&[(op::FIELD, FIELD_RET), (op::CONST, 0), (op::CMP, 2)]);
        strings.nstr = 1;
        assert!(!small.admits(&strings));
        // Shorter and a subset fits; everything fits the full shape.
        assert!(small.admits(&prog(&[(op::FIELD, FIELD_RET)])));
        assert!(small.admits(&TriggerProgram::default()));
        assert!(TriggerShape::FULL.admits(&longer) && TriggerShape::FULL.admits(&strings));
        let mut corrupt = longer;
        corrupt.len = MAX_INSNS as u32 + 1;
        assert!(!TriggerShape::FULL.admits(&corrupt));
    }
}
