//! Loading and attaching one program per probe spec, with errors that name the missing kernel
//! support and the way out.

use anyhow::Context as _;
use aya::{
    Btf, Ebpf,
    programs::{
        FEntry, FExit, KProbe, ProgramError, RawTracePoint, TracePoint, UProbe, uprobe::UProbeScope,
    },
};

use crate::{
    kernel::KernelSupport,
    load,
    spec::{Location, ProbeKind, ProbeSpec},
    tracefs,
};

/// A probe kind the running kernel cannot provide.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No kprobes in this kernel.
    #[error(
        "`{spec}` needs kprobes, which this kernel ({release}) lacks (/sys/bus/event_source/devices/kprobe/type is missing: CONFIG_KPROBES is off). Ways out: run inside a kprobe-capable kernel with `cargo xtask vm -- <this command>`, or probe a tracepoint that covers the same call (for example `tracepoint:syscalls:sys_enter_read` instead of `kprobe:vfs_read`)"
    )]
    NoKprobes {
        /// The spec.
        spec: String,
        /// Kernel release.
        release: String,
    },
    /// fentry/fexit refused or impossible.
    #[error(
        "`{spec}` needs BPF trampolines (fentry/fexit), which this kernel ({release}) refuses: {cause}. Ways out: `cargo xtask vm -- <this command>`, a kprobe on the same function where kprobes exist, or a tracepoint that covers the same call"
    )]
    NoTrampolines {
        /// The spec.
        spec: String,
        /// Kernel release.
        release: String,
        /// What failed.
        cause: String,
    },
    /// Attaching a program failed for another reason.
    #[error("cannot attach `{spec}`: {cause}")]
    Failed {
        /// The spec.
        spec: String,
        /// What failed, with the kernel's error.
        cause: String,
    },
}

/// Everything attach needs to know about the session.
pub struct AttachContext<'a> {
    /// Kernel facts.
    pub support: &'a KernelSupport,
    /// Kernel BTF, loaded on first use by fentry/fexit.
    pub btf: Option<Btf>,
}

/// Names of the argument fields of each probe (tracepoints only know them).
pub type ArgNames = Vec<String>;

fn failed(spec: &ProbeSpec, err: &dyn std::fmt::Display) -> AttachError {
    AttachError::Failed {
        spec: spec.text.clone(),
        cause: err.to_string(),
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, spec: &ProbeSpec, id: usize) -> anyhow::Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let name = spec.kind.program_name(id);
    let prog = ebpf.program_mut(&name).with_context(|| {
        format!(
            "program {name} missing from the eBPF object: at most {} probes are supported",
            snapshot_common::MAX_PROBES
        )
    })?;
    Ok(prog.try_into()?)
}

fn is_eperm(err: &ProgramError) -> bool {
    matches!(err, ProgramError::LoadError { io_error, .. } if io_error.raw_os_error() == Some(libc::EPERM))
}

/// Loads and attaches the program for probe `id`; returns the names of its argument fields.
pub fn attach(
    ebpf: &mut Ebpf,
    id: usize,
    spec: &ProbeSpec,
    cx: &mut AttachContext<'_>,
) -> anyhow::Result<ArgNames> {
    let release = cx.support.release.clone();
    match (&spec.location, spec.kind) {
        (Location::Kernel { function, offset }, ProbeKind::Kprobe | ProbeKind::Kretprobe) => {
            if !cx.support.kprobes {
                return Err(AttachError::NoKprobes {
                    spec: spec.text.clone(),
                    release,
                }
                .into());
            }
            let prog: &mut KProbe = program(ebpf, spec, id)?;
            prog.load().map_err(|e| failed(spec, &e))?;
            prog.attach(function, *offset).map_err(|e| {
                failed(
                    spec,
                    &format!("{e} (is `{function}` a kernel function? see /proc/kallsyms)"),
                )
            })?;
            Ok(Vec::new())
        }
        (Location::Kernel { function, .. }, ProbeKind::Fentry | ProbeKind::Fexit) => {
            let no_trampolines = |cause: String| AttachError::NoTrampolines {
                spec: spec.text.clone(),
                release: release.clone(),
                cause,
            };
            if !cx.support.trampolines {
                return Err(
                    no_trampolines(format!("hidden by {}", crate::kernel::HIDE_ENV)).into(),
                );
            }
            if cx.btf.is_none() {
                let btf = Btf::from_sys_fs()
                    .map_err(|e| no_trampolines(format!("no kernel BTF ({e})")))?;
                cx.btf = Some(btf);
            }
            let btf = cx.btf.as_ref().context("kernel BTF not loaded")?;
            let result = if spec.kind == ProbeKind::Fentry {
                let prog: &mut FEntry = program(ebpf, spec, id)?;
                prog.load(function, btf)
                    .and_then(|()| prog.attach().map(drop))
            } else {
                let prog: &mut FExit = program(ebpf, spec, id)?;
                prog.load(function, btf)
                    .and_then(|()| prog.attach().map(drop))
            };
            result.map_err(|e| {
                if is_eperm(&e) {
                    no_trampolines(
                        "loading a tracing program fails with EPERM (kernel lockdown)".into(),
                    )
                } else {
                    failed(spec, &e)
                }
            })?;
            Ok(Vec::new())
        }
        (Location::Tracepoint { category, name }, _) => {
            tracefs::ensure_mounted()?;
            let fields =
                tracefs::read_fields(std::path::Path::new(tracefs::TRACEFS), category, name)?;
            let (config, names) = tracefs::probe_config(&fields);
            load::set_probe_config(ebpf, id as u32, &config)?;
            let prog: &mut TracePoint = program(ebpf, spec, id)?;
            prog.load().map_err(|e| failed(spec, &e))?;
            prog.attach(category, name).map_err(|e| failed(spec, &e))?;
            Ok(names)
        }
        (Location::Raw { name }, _) => {
            let prog: &mut RawTracePoint = program(ebpf, spec, id)?;
            prog.load().map_err(|e| failed(spec, &e))?;
            prog.attach(name).map_err(|e| {
                failed(
                    spec,
                    &format!(
                        "{e} (is `{name}` a tracepoint? see {}/available_events)",
                        tracefs::TRACEFS
                    ),
                )
            })?;
            Ok(Vec::new())
        }
        (
            Location::User {
                path,
                symbol,
                offset,
            },
            _,
        ) => {
            if !path.exists() {
                return Err(failed(
                    spec,
                    &format!(
                        "{} does not exist: give the full path of the binary or library",
                        path.display()
                    ),
                )
                .into());
            }
            let prog: &mut UProbe = program(ebpf, spec, id)?;
            prog.load().map_err(|e| failed(spec, &e))?;
            // Every process: the in-kernel target filter selects (a perf uprobe bound to a pid
            // would fire for that one thread only).
            let scope = UProbeScope::AllProcesses;
            let location = if *offset == 0 {
                aya::programs::uprobe::UProbeAttachLocation::Symbol(symbol)
            } else {
                aya::programs::uprobe::UProbeAttachLocation::SymbolOffset(symbol, *offset)
            };
            prog.attach([location], path, scope).map_err(|e| {
                let mut cause = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    cause.push_str(": ");
                    cause.push_str(&s.to_string());
                    src = s.source();
                }
                failed(
                    spec,
                    &format!(
                        "{cause} (is `{symbol}` a function symbol of {}? see `nm -D {}`)",
                        path.display(),
                        path.display()
                    ),
                )
            })?;
            Ok(Vec::new())
        }
        (Location::Kernel { .. }, _) => {
            Err(failed(spec, &"kernel location for a non-kernel probe kind").into())
        }
    }
}
