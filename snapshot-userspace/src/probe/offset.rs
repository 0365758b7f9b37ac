//! Kprobe offsets (`kprobe:FUNC+OFF`) per architecture: what an offset into a kernel function
//! must be for a kprobe to work there, checked before attaching so that the error says why and
//! what to use instead.
//!
//! * **The ftrace patch site.** A function the function tracer can trace starts with the
//!   instruction ftrace rewrites to call its trampoline (after `endbr64` on `x86_64` kernels with
//!   IBT, at +0 otherwise; on arm64 the second of two NOPs, +4). tracefs lists where it is
//!   (`available_filter_functions_addrs`, Linux 6.5+). On `x86_64` it is one 5-byte instruction: a
//!   kprobe may sit on it (the kernel uses ftrace for it) but not inside it. On arm64 the kernel
//!   refuses a kprobe on it (EINVAL): +0 (before it) or the instruction after it work.
//! * **Alignment.** arm64 instructions are 4 bytes, 4-byte aligned: any other offset is inside an
//!   instruction. `x86_64` instructions have any length: the kernel refuses an offset that is not
//!   an instruction boundary (EILSEQ), which only the function's disassembly can tell beforehand.

/// An architecture, as far as kprobe offsets go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64`.
    X86_64,
    /// aarch64.
    Aarch64,
    /// Anything else: only the kernel checks.
    Other,
}

impl Arch {
    /// The architecture this binary (and so the kernel it loads programs into) runs on.
    #[must_use]
    pub fn current() -> Self {
        match std::env::consts::ARCH {
            "x86_64" => Self::X86_64,
            "aarch64" => Self::Aarch64,
            _ => Self::Other,
        }
    }

    /// Size of the ftrace patch site (the instruction ftrace rewrites).
    #[must_use]
    pub const fn patch_site_len(self) -> u64 {
        match self {
            Self::X86_64 => 5,
            Self::Aarch64 => 4,
            Self::Other => 1,
        }
    }

    /// Name for messages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "arm64",
            Self::Other => std::env::consts::ARCH,
        }
    }
}

/// Why a kprobe cannot go at an offset.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffsetError {
    /// Not on an instruction boundary where every instruction has the same size.
    #[error(
        "+{offset} is not 4-byte aligned: {arch} instructions are 4 bytes long, so the kprobe would sit inside one; use +{below} or +{above}"
    )]
    Misaligned {
        /// The offset.
        offset: u64,
        /// The architecture.
        arch: &'static str,
        /// The instruction boundary before it.
        below: u64,
        /// The one after it.
        above: u64,
    },
    /// On or inside the ftrace patch site where the architecture refuses kprobes there.
    #[error(
        "+{offset} is inside the ftrace patch site of `{function}` (+{start}..+{end}, the instruction ftrace rewrites to call its trampoline), where {arch} kprobes cannot go; use {instead}"
    )]
    PatchSite {
        /// The offset.
        offset: u64,
        /// The function.
        function: String,
        /// The architecture.
        arch: &'static str,
        /// Start of the site.
        start: u64,
        /// Its end (exclusive).
        end: u64,
        /// What works instead.
        instead: String,
    },
}

/// Checks `offset` into `function` on `arch`, whose ftrace patch site starts at `site` (an
/// offset from the symbol) when known.
pub fn check(
    arch: Arch,
    function: &str,
    offset: u64,
    site: Option<u64>,
) -> Result<(), OffsetError> {
    if offset == 0 {
        return Ok(());
    }
    if arch == Arch::Aarch64 && !offset.is_multiple_of(4) {
        return Err(OffsetError::Misaligned {
            offset,
            arch: arch.name(),
            below: offset / 4 * 4,
            above: offset.div_ceil(4) * 4,
        });
    }
    let Some(start) = site else {
        return Ok(());
    };
    let end = start + arch.patch_site_len();
    let refused = match arch {
        // The kernel puts the kprobe on ftrace there: only the bytes inside the call are out.
        Arch::X86_64 => offset > start && offset < end,
        Arch::Aarch64 => offset >= start && offset < end,
        Arch::Other => false,
    };
    if !refused {
        return Ok(());
    }
    let instead = match arch {
        Arch::X86_64 => format!("+{start} (the call itself) or +{end} (the instruction after it)"),
        _ if start > 0 => format!("+0 (before it) or +{end} (the instruction after it)"),
        _ => format!("+{end} (the instruction after it)"),
    };
    Err(OffsetError::PatchSite {
        offset,
        function: function.to_owned(),
        arch: arch.name(),
        start,
        end,
        instead,
    })
}

/// The patch site an `EINVAL` from attaching an aligned arm64 kprobe most likely hit, when
/// tracefs does not tell where it is (before Linux 6.5): Debian's arm64 kernels start traceable
/// functions with two NOPs, the second being the call site (+4), or with `bti c` first (+8).
#[must_use]
pub fn likely_patch_site(arch: Arch, offset: u64) -> bool {
    arch == Arch::Aarch64 && matches!(offset, 4 | 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_offsets_must_be_aligned() {
        let err = check(Arch::Aarch64, "vfs_write", 6, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "+6 is not 4-byte aligned: arm64 instructions are 4 bytes long, so the kprobe would sit inside one; use +4 or +8"
        );
        assert!(check(Arch::Aarch64, "vfs_write", 8, None).is_ok());
        assert!(check(Arch::Aarch64, "vfs_write", 0, Some(0)).is_ok());
        // x86_64 instructions have any length: only the kernel knows.
        assert!(check(Arch::X86_64, "vfs_write", 6, None).is_ok());
    }

    #[test]
    fn arm64_refuses_the_call_site() {
        let err = check(Arch::Aarch64, "vfs_write", 4, Some(4)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("inside the ftrace patch site of `vfs_write` (+4..+8")
                && text.contains("use +0 (before it) or +8"),
            "{text}"
        );
        assert!(check(Arch::Aarch64, "vfs_write", 8, Some(4)).is_ok());
        assert!(check(Arch::Aarch64, "vfs_write", 4, Some(8)).is_ok());
        assert!(check(Arch::Aarch64, "f", 8, Some(8)).is_err());
    }

    #[test]
    fn x86_refuses_inside_the_call_only() {
        // Debian's 6.12: endbr64 at +0, the 5-byte call at +4.
        for ok in [4, 9, 12] {
            assert!(
                check(Arch::X86_64, "vfs_write", ok, Some(4)).is_ok(),
                "+{ok}"
            );
        }
        for inside in 5..9 {
            let err = check(Arch::X86_64, "vfs_write", inside, Some(4)).unwrap_err();
            assert!(
                err.to_string().contains("use +4 (the call itself) or +9"),
                "{err}"
            );
        }
        // 6.1: the call at +0.
        assert!(check(Arch::X86_64, "f", 2, Some(0)).is_err());
        assert!(check(Arch::X86_64, "f", 5, Some(0)).is_ok());
        assert!(check(Arch::Other, "f", 1, Some(0)).is_ok());
    }

    #[test]
    fn einval_on_arm64_points_at_the_patch_site() {
        assert!(likely_patch_site(Arch::Aarch64, 4));
        assert!(!likely_patch_site(Arch::Aarch64, 12));
        assert!(!likely_patch_site(Arch::X86_64, 4));
    }
}
