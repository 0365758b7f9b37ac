//! What the running kernel's BPF offers, found by probing, never by version number (RHEL's
//! 5.14 carries BPF from 6.x; a tool deciding by `uname -r` gets it wrong).
//!
//! Each probe is cheap: a map created and closed, or a program of a few instructions loaded
//! into the verifier and closed (never attached), a few milliseconds for all of them, done once
//! per process ([`Features::get`]). What the recorder does with each answer (a fallback, or a
//! clear error naming the feature, what needs it, the oldest kernel with it and the way out)
//! is in [`Feature`]'s table; `snapshot check` prints it all.

use std::{path::Path, sync::OnceLock};

use snapshot_common::kfeature;

use super::{btf::Btf, kernel::KernelSupport, tracefs};
use crate::sys::bpf::{self, Insn, ProgSpec};

/// Test switch: a comma-separated list of [`Feature`] names (`atomics`, `func_ip`,
/// `func_args`, `stack_ids`) to treat as missing, so that the fallbacks of old kernels run on
/// any kernel.
pub const HIDE_ENV: &str = "SNAPSHOT_HIDE_FEATURES";

/// A kernel feature the recorder uses or reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// BPF atomic exchange (`BPF_XCHG`).
    AtomicXchg,
    /// BPF atomic compare-and-exchange (`BPF_CMPXCHG`).
    AtomicCmpxchg,
    /// BPF atomic fetch-and-add (`BPF_ADD | BPF_FETCH`).
    AtomicFetchAdd,
    /// `bpf_get_func_ip` in kprobes.
    FuncIp,
    /// `bpf_get_func_arg` / `bpf_get_func_ret` in fentry/fexit.
    FuncArgs,
    /// `bpf_ktime_get_boot_ns`.
    BootClock,
    /// `BPF_MAP_TYPE_RINGBUF`.
    RingBuf,
    /// `BPF_F_MMAPABLE` arrays.
    MmapArrays,
    /// `BPF_MAP_TYPE_QUEUE`.
    QueueMaps,
    /// `bpf_get_stackid`.
    StackIds,
    /// Stack trace maps of build ids (`BPF_F_STACK_BUILD_ID`).
    StackBuildId,
    /// `bpf_get_current_task_btf`.
    TaskBtf,
    /// Kernel BTF (`/sys/kernel/btf/vmlinux`).
    Btf,
    /// Loading fentry/fexit programs (BPF trampolines).
    Trampolines,
    /// kprobes (`CONFIG_KPROBES`).
    Kprobes,
    /// tracefs (tracepoint formats).
    Tracefs,
}

/// What the recorder does about a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Recording cannot work without it.
    Required,
    /// A fallback takes its place (described).
    Fallback(&'static str),
    /// Probe kinds that need it are unavailable or fall back (see the probe kinds).
    ProbeKinds,
    /// Reported only.
    Unused,
}

/// The facts about a feature: its name in `--json` and [`HIDE_ENV`], what it is, the oldest
/// mainline kernel with it, what the recorder uses it for, and what happens without it.
pub struct Info {
    /// Short name.
    pub name: &'static str,
    /// What it is.
    pub what: &'static str,
    /// Oldest mainline kernel that has it.
    pub since: &'static str,
    /// What the recorder needs it for.
    pub used_for: &'static str,
    /// What happens without it.
    pub need: Need,
}

impl Feature {
    /// Every feature, in report order.
    pub const ALL: [Self; 16] = [
        Self::AtomicXchg,
        Self::AtomicCmpxchg,
        Self::AtomicFetchAdd,
        Self::FuncIp,
        Self::FuncArgs,
        Self::BootClock,
        Self::RingBuf,
        Self::MmapArrays,
        Self::QueueMaps,
        Self::StackIds,
        Self::StackBuildId,
        Self::TaskBtf,
        Self::Btf,
        Self::Trampolines,
        Self::Kprobes,
        Self::Tracefs,
    ];

    /// Its facts.
    #[must_use]
    pub const fn info(self) -> Info {
        const NO_ATOMICS: &str = "a counting lock per CPU, queue-map tokens for the one flip per arming and the stop, queued --post tickets";
        let (name, what, since, used_for, need) = match self {
            Self::AtomicXchg => (
                "atomic_xchg",
                "BPF atomic exchange",
                "5.12",
                "writer exclusion per CPU, one flip per arming",
                Need::Fallback(NO_ATOMICS),
            ),
            Self::AtomicCmpxchg => (
                "atomic_cmpxchg",
                "BPF atomic compare-and-exchange",
                "5.12",
                "nothing (reported)",
                Need::Unused,
            ),
            Self::AtomicFetchAdd => (
                "atomic_fetch_add",
                "BPF atomic fetch-and-add",
                "5.12",
                "--post N tickets",
                Need::Fallback(NO_ATOMICS),
            ),
            Self::FuncIp => (
                "func_ip",
                "bpf_get_func_ip in kprobes",
                "5.15",
                "naming each glob event's function",
                Need::Fallback(
                    "kprobes: the saved instruction pointer; kretprobes: the entry's address noted by a kprobe on the same functions, found by the return's stack slot",
                ),
            ),
            Self::FuncArgs => (
                "func_args",
                "bpf_get_func_arg/bpf_get_func_ret in fentry/fexit",
                "5.17",
                "fentry/fexit arguments and return values",
                Need::Fallback("the context words, counted from the function's BTF at load"),
            ),
            Self::BootClock => (
                "boot_clock",
                "bpf_ktime_get_boot_ns",
                "5.8",
                "event timestamps (CLOCK_BOOTTIME, which keeps counting in suspend)",
                Need::Required,
            ),
            Self::RingBuf => (
                "ringbuf",
                "BPF ring buffer maps",
                "5.8",
                "flip and stop notices to userspace",
                Need::Required,
            ),
            Self::MmapArrays => (
                "mmap_arrays",
                "mmap-able BPF arrays (BPF_F_MMAPABLE)",
                "5.5",
                "the buffer halves and control words, read without copies",
                Need::Required,
            ),
            Self::QueueMaps => (
                "queue_maps",
                "BPF queue maps",
                "4.20",
                "the tokens and tickets that replace atomics on kernels without them",
                Need::Fallback("none needed where BPF atomics exist"),
            ),
            Self::StackIds => (
                "stack_ids",
                "bpf_get_stackid",
                "4.6",
                "kernel and user stacks at the trigger",
                Need::Fallback("snapshots carry no stacks"),
            ),
            Self::StackBuildId => (
                "stack_build_id",
                "stack trace maps of build ids (BPF_F_STACK_BUILD_ID)",
                "4.17",
                "user stacks at the trigger as build id + file offset, resolved without the process's memory map (a crash right after exec, --comm and system-wide targets)",
                Need::Fallback(
                    "user stacks resolve only through a memory map read at the trigger or cached while the process ran",
                ),
            ),
            Self::TaskBtf => (
                "task_btf",
                "bpf_get_current_task_btf",
                "5.11",
                "nothing (measured: not cheaper than bpf_get_current_pid_tgid)",
                Need::Unused,
            ),
            Self::Btf => (
                "btf",
                "kernel BTF (/sys/kernel/btf/vmlinux)",
                "5.4",
                "fentry/fexit (the traced function's type)",
                Need::ProbeKinds,
            ),
            Self::Trampolines => (
                "trampolines",
                "fentry/fexit programs (BPF trampolines)",
                "5.5",
                "fentry and fexit probes",
                Need::ProbeKinds,
            ),
            Self::Kprobes => (
                "kprobes",
                "kprobes (CONFIG_KPROBES)",
                "4.1",
                "kprobe and kretprobe probes",
                Need::ProbeKinds,
            ),
            Self::Tracefs => (
                "tracefs",
                "tracefs (tracepoint formats)",
                "4.1",
                "tracepoint probes (field layout), --follow-forks",
                Need::ProbeKinds,
            ),
        };
        Info {
            name,
            what,
            since,
            used_for,
            need,
        }
    }
}

/// The answer for one feature: present, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probed {
    /// The feature.
    pub feature: Feature,
    /// Whether the kernel has it (after [`HIDE_ENV`]).
    pub present: bool,
    /// Why not (the kernel's words, or "hidden by …").
    pub detail: String,
    /// False when the probe could not tell (`func_args` where fentry programs do not load).
    pub known: bool,
}

/// Every probed feature of the running kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// `uname -r`.
    pub release: String,
    /// `/sys/kernel/security/lockdown`'s active mode (`none`, `integrity`, `confidentiality`),
    /// or `None` when the kernel has no lockdown LSM.
    pub lockdown: Option<String>,
    /// One answer per [`Feature::ALL`] entry.
    pub probed: Vec<Probed>,
}

/// Instructions used by the probes.
mod asm {
    use super::Insn;

    /// `r0 = 0; exit`.
    pub const RETURN_0: [Insn; 2] = [mov(0, 0), Insn::new(0x95, 0, 0, 0, 0)];

    /// `rdst = imm` (64-bit).
    pub const fn mov(dst: u8, imm: i32) -> Insn {
        Insn::new(0xb7, dst, 0, 0, imm)
    }

    /// `rdst = rsrc` (64-bit).
    pub const fn mov_reg(dst: u8, src: u8) -> Insn {
        Insn::new(0xbf, dst, src, 0, 0)
    }

    /// `*(u64 *)(r10 + off) = rsrc`.
    pub const fn stack_store(off: i16, src: u8) -> Insn {
        Insn::new(0x7b, 10, src, off, 0)
    }

    /// `rdst += imm`.
    pub const fn add(dst: u8, imm: i32) -> Insn {
        Insn::new(0x07, dst, 0, 0, imm)
    }

    /// `call helper`.
    pub const fn call(helper: i32) -> Insn {
        Insn::new(0x85, 0, 0, 0, helper)
    }

    /// The 64-bit atomic `op` on `*(u64 *)(r10 - 8)` with `r2` (r0: the compare value).
    pub const fn atomic(op: i32) -> [Insn; 6] {
        [
            mov(1, 0),
            stack_store(-8, 1),
            mov(2, 1),
            mov(0, 0),
            Insn::new(0xdb, 10, 2, -8, op),
            Insn::new(0x95, 0, 0, 0, 0),
        ]
    }

    /// `rdst = map fd` (two instructions).
    pub const fn map_fd(dst: u8, fd: i32) -> [Insn; 2] {
        [Insn::new(0x18, dst, 1, 0, fd), Insn::new(0, 0, 0, 0, 0)]
    }
}

/// `BPF_PROG_TYPE_*`, `BPF_MAP_TYPE_*`, attach types and helper ids used here.
mod ids {
    pub const SOCKET_FILTER: u32 = 1;
    pub const KPROBE: u32 = 2;
    pub const TRACING: u32 = 26;
    pub const TRACE_FENTRY: u32 = 24;
    pub const MAP_ARRAY: u32 = 2;
    pub const MAP_STACK_TRACE: u32 = 7;
    pub const MAP_QUEUE: u32 = 22;
    pub const MAP_RINGBUF: u32 = 27;
    pub const F_MMAPABLE: u32 = 1 << 10;
    pub const XCHG: i32 = 0xe1;
    pub const CMPXCHG: i32 = 0xf1;
    pub const FETCH_ADD: i32 = 0x01;
    pub const HELPER_GET_STACKID: i32 = 27;
    pub const HELPER_BOOT_NS: i32 = 125;
    pub const HELPER_TASK_BTF: i32 = 158;
    pub const HELPER_FUNC_IP: i32 = 173;
    pub const HELPER_FUNC_ARG: i32 = 183;
}

/// Loads `insns` as a `spec` program and closes it: present, or the kernel's reason.
fn loads(spec: ProgSpec, insns: &[Insn]) -> Result<(), String> {
    load(spec, insns).map(drop)
}

/// Loads `insns` as a `spec` program, or says why the kernel refused it.
fn load(spec: ProgSpec, insns: &[Insn]) -> Result<std::os::fd::OwnedFd, String> {
    bpf::prog_load(spec, insns).map_err(|(e, log)| {
        let last = log
            .lines()
            .rev()
            .find(|l| !l.starts_with("processed "))
            .unwrap_or("");
        if last.is_empty() {
            e.to_string()
        } else {
            format!("{e}: {last}")
        }
    })
}

fn kprobe_calls(helper: i32) -> Result<(), String> {
    let insns = [asm::call(helper), asm::RETURN_0[0], asm::RETURN_0[1]];
    loads(
        ProgSpec {
            prog_type: ids::KPROBE,
            ..ProgSpec::default()
        },
        &insns,
    )
}

fn atomic(op: i32) -> Result<(), String> {
    loads(
        ProgSpec {
            prog_type: ids::SOCKET_FILTER,
            ..ProgSpec::default()
        },
        &asm::atomic(op),
    )
}

fn stack_ids() -> Result<(), String> {
    let map = bpf::map_create(ids::MAP_STACK_TRACE, 4, 8 * 127, 1, 0)
        .map_err(|e| format!("cannot create a stack trace map: {e}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&map);
    let [ld0, ld1] = asm::map_fd(2, fd);
    let insns = [
        asm::mov(3, 0),
        ld0,
        ld1,
        asm::call(ids::HELPER_GET_STACKID),
        asm::RETURN_0[0],
        asm::RETURN_0[1],
    ];
    loads(
        ProgSpec {
            prog_type: ids::KPROBE,
            ..ProgSpec::default()
        },
        &insns,
    )
}

/// A build-id stack map can be created (the size and flag `session::patch` gives
/// `USTACKS_BUILD_ID`).
fn build_id_stacks() -> Result<(), String> {
    use snapshot_common::{BUILD_ID_STACK_VALUE, F_STACK_BUILD_ID};
    bpf::map_create(
        ids::MAP_STACK_TRACE,
        4,
        BUILD_ID_STACK_VALUE,
        1,
        F_STACK_BUILD_ID,
    )
    .map(drop)
    .map_err(|e| format!("cannot create a build-id stack trace map: {e}"))
}

/// A function to load the tracing probes against: one of the kernel's BPF self-test
/// functions (called by nothing else), else `vfs_read`.
fn tracing_target(btf: &Btf) -> Option<u32> {
    ["bpf_fentry_test1", "vfs_read"]
        .iter()
        .find_map(|f| btf.func_id(f))
}

fn tracing_spec(target: Option<u32>) -> Result<ProgSpec, String> {
    let id = target.ok_or("no kernel BTF to find a function in")?;
    Ok(ProgSpec {
        prog_type: ids::TRACING,
        expected_attach_type: ids::TRACE_FENTRY,
        attach_btf_id: id,
    })
}

fn tracing(target: Option<u32>, body: &[Insn]) -> Result<(), String> {
    loads(tracing_spec(target)?, body)
}

/// An fentry program loads and attaches (arm64 before 6.4 loads it but cannot build the
/// trampoline: error 524), detached again at once.
fn trampoline_attaches(target: Option<u32>) -> Result<(), String> {
    let prog = load(tracing_spec(target)?, &asm::RETURN_0)?;
    bpf::tracing_attach(std::os::fd::AsFd::as_fd(&prog))
        .map(drop)
        .map_err(|e| match e.raw_os_error() {
            Some(524) => "attaching fails with error 524 (ENOTSUPP): the kernel cannot build a BPF trampoline here".to_owned(),
            _ => format!("attaching fails: {e}"),
        })
}

fn mmap_array() -> Result<(), String> {
    let map =
        bpf::map_create(ids::MAP_ARRAY, 4, 8, 1, ids::F_MMAPABLE).map_err(|e| e.to_string())?;
    // SAFETY: mapping one page of a fresh array map's descriptor, unmapped right away.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&map),
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        libc::munmap(p, 4096);
    }
    Ok(())
}

/// The active lockdown mode, mounting securityfs where nothing mounted it (minimal systems,
/// the VM): `None` when the kernel has no lockdown LSM.
fn lockdown(root: &Path) -> Option<String> {
    let dir = root.join("sys/kernel/security");
    let file = dir.join("lockdown");
    if !file.exists() && dir.is_dir() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "securityfs", "securityfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status();
    }
    let text = std::fs::read_to_string(file).ok()?;
    let active = text.split_whitespace().find(|w| w.starts_with('['))?;
    Some(active.trim_matches(['[', ']']).to_owned())
}

impl Features {
    /// The running kernel's features, probed on first use and kept for the process, with
    /// [`HIDE_ENV`] and the probe kinds hidden by [`super::kernel::HIDE_ENV`] applied.
    pub fn get() -> &'static Self {
        static FEATURES: OnceLock<Features> = OnceLock::new();
        FEATURES.get_or_init(|| {
            let support = KernelSupport::probe(Path::new("/"))
                .hiding(&std::env::var(super::kernel::HIDE_ENV).unwrap_or_default());
            Self::probe(&support).hiding(&std::env::var(HIDE_ENV).unwrap_or_default())
        })
    }

    /// Probes the running kernel (root: loading programs needs `CAP_BPF`).
    #[must_use]
    pub fn probe(support: &KernelSupport) -> Self {
        let btf = Btf::from_sys_fs().ok().and_then(Result::ok);
        let target = btf.as_ref().and_then(tracing_target);
        let func_arg_body = [
            asm::mov(2, 0),
            asm::stack_store(-8, 2),
            asm::mov_reg(3, 10),
            asm::add(3, -8),
            asm::call(ids::HELPER_FUNC_ARG),
            asm::RETURN_0[0],
            asm::RETURN_0[1],
        ];
        let fs = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_owned()) };
        let fentry_loads = if support.trampolines {
            trampoline_attaches(target)
        } else {
            Err(format!("hidden by {}", super::kernel::HIDE_ENV))
        };
        let probed = Feature::ALL
            .iter()
            .map(|&feature| {
                let result = match feature {
                    Feature::AtomicXchg => atomic(ids::XCHG),
                    Feature::AtomicCmpxchg => atomic(ids::CMPXCHG),
                    Feature::AtomicFetchAdd => atomic(ids::FETCH_ADD),
                    Feature::FuncIp => kprobe_calls(ids::HELPER_FUNC_IP),
                    Feature::FuncArgs => fentry_loads
                        .clone()
                        .map_err(|e| format!("cannot tell: fentry programs cannot run here ({e})"))
                        .and_then(|()| tracing(target, &func_arg_body)),
                    Feature::BootClock => kprobe_calls(ids::HELPER_BOOT_NS),
                    Feature::RingBuf => bpf::map_create(ids::MAP_RINGBUF, 0, 0, 4096, 0)
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    Feature::MmapArrays => mmap_array(),
                    Feature::QueueMaps => bpf::map_create(ids::MAP_QUEUE, 0, 8, 1, 0)
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    Feature::StackIds => stack_ids(),
                    Feature::StackBuildId => build_id_stacks(),
                    Feature::TaskBtf => kprobe_calls(ids::HELPER_TASK_BTF),
                    Feature::Btf => fs(btf.is_some(), "no readable /sys/kernel/btf/vmlinux"),
                    Feature::Trampolines => fentry_loads.clone(),
                    Feature::Kprobes => fs(
                        support.kprobes,
                        "/sys/bus/event_source/devices/kprobe/type is missing (CONFIG_KPROBES is off)",
                    ),
                    Feature::Tracefs => tracefs::ensure_mounted().map_err(|e| e.to_string()),
                };
                let known = feature != Feature::FuncArgs || fentry_loads.is_ok();
                Probed {
                    feature,
                    present: result.is_ok(),
                    detail: result.err().unwrap_or_default(),
                    known,
                }
            })
            .collect();
        Self {
            release: support.release.clone(),
            lockdown: lockdown(Path::new("/")),
            probed,
        }
    }

    /// Treats the features named in `hidden` (see [`HIDE_ENV`]) as missing. `atomics` hides
    /// the three atomic operations.
    #[must_use]
    pub fn hiding(mut self, hidden: &str) -> Self {
        for name in hidden.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            for p in &mut self.probed {
                let info = p.feature.info();
                if info.name == name || (name == "atomics" && info.name.starts_with("atomic_")) {
                    p.present = false;
                    p.detail = format!("hidden by {HIDE_ENV}");
                }
            }
        }
        self
    }

    /// Whether the kernel has `feature`.
    #[must_use]
    pub fn has(&self, feature: Feature) -> bool {
        self.probed
            .iter()
            .any(|p| p.feature == feature && p.present)
    }

    /// The answer for `feature`.
    #[must_use]
    pub fn answer(&self, feature: Feature) -> Option<&Probed> {
        self.probed.iter().find(|p| p.feature == feature)
    }

    /// The `kfeature` bits the eBPF programs are loaded with.
    #[must_use]
    pub fn kernel_bits(&self) -> u32 {
        let mut bits = 0;
        if self.has(Feature::AtomicXchg) && self.has(Feature::AtomicFetchAdd) {
            bits |= kfeature::ATOMICS;
        }
        for (feature, bit) in [
            (Feature::FuncIp, kfeature::FUNC_IP),
            (Feature::FuncArgs, kfeature::FUNC_ARGS),
            (Feature::StackIds, kfeature::STACK_IDS),
            (Feature::StackBuildId, kfeature::STACK_BUILD_ID),
        ] {
            if self.has(feature) {
                bits |= bit;
            }
        }
        bits
    }

    /// The first missing feature recording cannot do without, as an error; on a kernel
    /// without atomics, queue maps are required too.
    pub fn check_required(&self) -> Result<(), MissingFeature> {
        let mut required: Vec<Feature> = Feature::ALL
            .iter()
            .copied()
            .filter(|f| f.info().need == Need::Required)
            .collect();
        if self.kernel_bits() & kfeature::ATOMICS == 0 {
            required.push(Feature::QueueMaps);
        }
        match required.into_iter().find(|&f| !self.has(f)) {
            None => Ok(()),
            Some(feature) => Err(MissingFeature {
                feature,
                release: self.release.clone(),
                detail: self
                    .answer(feature)
                    .map(|p| p.detail.clone())
                    .unwrap_or_default(),
            }),
        }
    }
}

/// A feature recording cannot do without is missing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "this kernel ({release}) lacks {} ({detail}), which the recorder needs for {}; it came with Linux {}. Ways out: run on a newer kernel (`cargo xtask vm --kernel 5.10 -- <this command>` boots the oldest one the recorder supports), or ask your distribution for a kernel with it; `snapshot check` lists what this kernel offers",
    .feature.info().what, .feature.info().used_for, .feature.info().since
)]
pub struct MissingFeature {
    /// The feature.
    pub feature: Feature,
    /// Kernel release.
    pub release: String,
    /// The kernel's words.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_present() -> Features {
        Features {
            release: "6.1.0-test".into(),
            lockdown: None,
            probed: Feature::ALL
                .iter()
                .map(|&feature| Probed {
                    feature,
                    present: true,
                    detail: String::new(),
                    known: true,
                })
                .collect(),
        }
    }

    #[test]
    fn hiding_atomics_clears_the_kernel_bit() {
        let f = all_present();
        assert_eq!(
            f.kernel_bits(),
            kfeature::ATOMICS
                | kfeature::FUNC_IP
                | kfeature::FUNC_ARGS
                | kfeature::STACK_IDS
                | kfeature::STACK_BUILD_ID
        );
        let old = f.hiding("atomics, func_ip, stack_build_id");
        assert_eq!(old.kernel_bits(), kfeature::FUNC_ARGS | kfeature::STACK_IDS);
        assert!(!old.has(Feature::AtomicCmpxchg));
        assert!(
            old.answer(Feature::FuncIp)
                .unwrap()
                .detail
                .contains(HIDE_ENV)
        );
        assert_eq!(old.check_required(), Ok(()));
    }

    #[test]
    fn a_missing_required_feature_is_a_clear_error() {
        let f = all_present().hiding("ringbuf");
        let e = f.check_required().unwrap_err();
        assert_eq!(e.feature, Feature::RingBuf);
        let text = e.to_string();
        for needle in [
            "BPF ring buffer",
            "flip and stop notices",
            "Linux 5.8",
            "Ways out",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let no_queues = all_present().hiding("atomics,queue_maps");
        assert_eq!(
            no_queues.check_required().unwrap_err().feature,
            Feature::QueueMaps,
            "without atomics the queues are required"
        );
        assert_eq!(all_present().hiding("queue_maps").check_required(), Ok(()));
    }

    #[test]
    fn every_feature_has_a_distinct_name() {
        let mut names: Vec<&str> = Feature::ALL.iter().map(|f| f.info().name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Feature::ALL.len());
    }
}
