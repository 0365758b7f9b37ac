//! The architectures the project builds for: `x86_64` (this machine's) and aarch64 (cross-built,
//! tested in QEMU on Debian's arm64 kernels). A build for an architecture named with `--arch` is
//! static (musl), so it runs on any Linux of that architecture, and inside the arm64 guest,
//! whose root is a busybox initramfs with no C library.

use std::path::Path;

use anyhow::{Context as _, bail};

/// A CPU architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// `x86_64` (Debian's amd64).
    #[value(name = "x86_64", alias = "amd64")]
    X86_64,
    /// aarch64 (Debian's arm64).
    #[value(name = "aarch64", alias = "arm64")]
    Aarch64,
}

impl Arch {
    /// Every architecture, this machine's first.
    pub const ALL: [Self; 2] = [Self::X86_64, Self::Aarch64];

    /// The architecture xtask runs on (the one whose kernels QEMU runs fastest).
    #[must_use]
    pub const fn host() -> Self {
        if cfg!(target_arch = "aarch64") {
            Self::Aarch64
        } else {
            Self::X86_64
        }
    }

    /// Rust's name (`x86_64`, `aarch64`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    /// Debian's name (`amd64`, `arm64`): kernel packages, `.deb` architecture.
    #[must_use]
    pub const fn debian(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Aarch64 => "arm64",
        }
    }

    /// The static (musl) Rust target.
    #[must_use]
    pub const fn musl_target(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-unknown-linux-musl",
            Self::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The linker cargo needs for [`Self::musl_target`] on an `x86_64` machine (`None`: the host's
    /// `cc`, which links musl's self-contained objects that rustup ships with the target).
    #[must_use]
    pub const fn cross_linker(self) -> Option<&'static str> {
        match self {
            Self::X86_64 => None,
            Self::Aarch64 => Some("aarch64-linux-gnu-gcc"),
        }
    }

    /// `CARGO_TARGET_<TRIPLE>_LINKER`, cargo's variable for [`Self::cross_linker`].
    #[must_use]
    pub fn linker_env(self) -> String {
        format!(
            "CARGO_TARGET_{}_LINKER",
            self.musl_target().to_uppercase().replace('-', "_")
        )
    }

    /// ELF `e_machine`.
    #[must_use]
    pub const fn elf_machine(self) -> u16 {
        match self {
            Self::X86_64 => 62,
            Self::Aarch64 => 183,
        }
    }

    /// The architecture of an ELF `e_machine`.
    #[must_use]
    pub fn from_elf_machine(machine: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.elf_machine() == machine)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an ELF executable is, read from its headers.
#[derive(Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_machine`.
    pub machine: u16,
    /// No program interpreter (`PT_INTERP`): statically linked.
    pub is_static: bool,
}

/// `EM_BPF`: the machine of the eBPF object the userspace binary embeds.
pub const EM_BPF: u16 = 247;

/// Reads the ELF header and program headers of `data` (64-bit little-endian only: every target
/// here is).
#[must_use]
pub fn elf_info(data: &[u8]) -> Option<ElfInfo> {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?));
    // Magic, ELFCLASS64, ELFDATA2LSB.
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let machine = u16_at(18)?;
    let phoff = usize::try_from(u64_at(32)?).ok()?;
    let (phentsize, phnum) = (usize::from(u16_at(54)?), usize::from(u16_at(56)?));
    let mut is_static = true;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            is_static = false;
        }
    }
    Some(ElfInfo { machine, is_static })
}

/// The eBPF objects (ELF files of machine [`EM_BPF`]) embedded in `data`, as byte ranges'
/// starts. The userspace binary carries its eBPF object as bytes (`include_bytes_aligned!`).
#[must_use]
pub fn embedded_bpf_objects(data: &[u8]) -> Vec<usize> {
    let magic = b"\x7fELF\x02\x01";
    let mut found = Vec::new();
    let mut at = 1;
    while let Some(i) = data
        .get(at..)
        .and_then(|d| d.windows(magic.len()).position(|w| w == magic))
    {
        let start = at + i;
        if data
            .get(start + 18..start + 20)
            .is_some_and(|m| u16::from_le_bytes([m[0], m[1]]) == EM_BPF)
        {
            found.push(start);
        }
        at = start + 1;
    }
    found
}

/// Checks that `binary` is a static executable for `arch` carrying an eBPF object built for
/// `arch` (its BTF names the architecture's register struct: `user_pt_regs` on aarch64,
/// `pt_regs` on `x86_64`). Returns a one-line description.
pub fn check_static_binary(binary: &Path, arch: Arch) -> anyhow::Result<String> {
    let data =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let info = elf_info(&data)
        .with_context(|| format!("{} is not a 64-bit ELF executable", binary.display()))?;
    if info.machine != arch.elf_machine() {
        let is = Arch::from_elf_machine(info.machine)
            .map_or_else(|| format!("machine {}", info.machine), |a| a.to_string());
        bail!("{} is built for {is}, not {arch}", binary.display());
    }
    if !info.is_static {
        bail!(
            "{} is dynamically linked (it has a program interpreter): build it for {}",
            binary.display(),
            arch.musl_target()
        );
    }
    let objects = embedded_bpf_objects(&data);
    let Some(&object) = objects.first() else {
        bail!("{} carries no eBPF object", binary.display());
    };
    // The register struct aya-ebpf's `PtRegs` reads, by `bpf_target_arch`: its name is in the
    // object's BTF strings, which follow the object's start.
    let regs: &[u8] = match arch {
        Arch::Aarch64 => b"\0user_pt_regs\0",
        Arch::X86_64 => b"\0pt_regs\0",
    };
    let tail = &data[object..];
    let names_regs = tail.windows(regs.len()).any(|w| w == regs);
    let other_arch = arch == Arch::X86_64 && tail.windows(14).any(|w| w == b"\0user_pt_regs\0");
    if !names_regs || other_arch {
        bail!(
            "the eBPF object in {} was not built for {arch} (its BTF does not name `{}`)",
            binary.display(),
            String::from_utf8_lossy(&regs[1..regs.len() - 1])
        );
    }
    Ok(format!(
        "{}: static {arch} executable, {:.1} MiB, with the {arch} eBPF object inside",
        binary.display(),
        data.len() as f64 / f64::from(1 << 20)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `ptype`.
    fn elf(machine: u16, ptype: u32) -> Vec<u8> {
        let mut d = vec![0u8; 64 + 56];
        d[..6].copy_from_slice(b"\x7fELF\x02\x01");
        d[18..20].copy_from_slice(&machine.to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes());
        d[54..56].copy_from_slice(&56u16.to_le_bytes());
        d[56..58].copy_from_slice(&1u16.to_le_bytes());
        d[64..68].copy_from_slice(&ptype.to_le_bytes());
        d
    }

    #[test]
    fn elf_headers_tell_machine_and_linking() {
        assert_eq!(
            elf_info(&elf(183, 1)),
            Some(ElfInfo {
                machine: 183,
                is_static: true
            })
        );
        assert!(!elf_info(&elf(62, 3)).unwrap().is_static);
        assert_eq!(elf_info(b"#!/bin/sh\n"), None);
        assert_eq!(elf_info(&elf(62, 1)[..40]), None);
        assert_eq!(Arch::from_elf_machine(183), Some(Arch::Aarch64));
    }

    #[test]
    fn finds_the_embedded_ebpf_object_and_its_architecture() {
        let dir = std::env::temp_dir().join(format!("xtask-arch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("bin");
        let mut data = elf(183, 1);
        assert!(embedded_bpf_objects(&data).is_empty());
        std::fs::write(&bin, &data).unwrap();
        let err = check_static_binary(&bin, Arch::Aarch64).unwrap_err();
        assert!(format!("{err}").contains("carries no eBPF object"), "{err}");
        let at = data.len();
        data.extend(elf(EM_BPF, 1));
        data.extend(b"\0pt_regs\0");
        assert_eq!(embedded_bpf_objects(&data), [at]);
        std::fs::write(&bin, &data).unwrap();
        let err = check_static_binary(&bin, Arch::Aarch64).unwrap_err();
        assert!(format!("{err}").contains("not built for aarch64"), "{err}");
        assert!(
            check_static_binary(&bin, Arch::X86_64).is_err(),
            "wrong machine"
        );
        data.extend(b"\0user_pt_regs\0");
        std::fs::write(&bin, &data).unwrap();
        let ok = check_static_binary(&bin, Arch::Aarch64).unwrap();
        assert!(ok.contains("static aarch64 executable"), "{ok}");
        std::fs::write(&bin, elf(183, 3)).unwrap();
        let err = check_static_binary(&bin, Arch::Aarch64).unwrap_err();
        assert!(format!("{err}").contains("dynamically linked"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cargo_linker_variable() {
        assert_eq!(
            Arch::Aarch64.linker_env(),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"
        );
    }
}
