//! Loading and attaching one program per probe spec: kprobes and fentry/fexit fall back to each
//! other (with a notice; `--strict` refuses), globs expand against the kernel's function list,
//! and every failure names what is missing and the way out, with the closest valid names.

use std::path::Path;

use anyhow::Context as _;
use aya::{
    Btf, Ebpf,
    programs::{
        FEntry, FExit, KProbe, ProgramError, RawTracePoint, TracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeScope},
    },
};

use snapshot_common::{kfeature, names};

use super::load;
use crate::probe::{
    kernel::{self, KernelSupport},
    lookup,
    spec::{Location, ProbeKind, ProbeSpec},
    tracefs,
};

/// Default cap on the functions one glob may attach to.
pub const DEFAULT_MAX_GLOB: usize = 64;

/// A probe kind the running kernel cannot provide, or a name that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No kprobes in this kernel.
    #[error(
        "`{spec}` needs kprobes, which this kernel ({release}) lacks (/sys/bus/event_source/devices/kprobe/type is missing: CONFIG_KPROBES is off){also}. Ways out: run inside a kprobe-capable kernel with `cargo xtask vm -- <this command>`, or probe a tracepoint that covers the same call (for example `tracepoint:syscalls:sys_enter_read` instead of `kprobe:vfs_read`)"
    )]
    NoKprobes {
        /// The spec.
        spec: String,
        /// Kernel release.
        release: String,
        /// Why the fallback did not help either (empty when none was tried).
        also: String,
    },
    /// fentry/fexit refused or impossible.
    #[error(
        "`{spec}` needs BPF trampolines (fentry/fexit), which this kernel ({release}) refuses: {cause}{also}. Ways out: `cargo xtask vm -- <this command>`, a kprobe on the same function where kprobes exist, or a tracepoint that covers the same call"
    )]
    NoTrampolines {
        /// The spec.
        spec: String,
        /// Kernel release.
        release: String,
        /// What failed.
        cause: String,
        /// Why the fallback did not help either (empty when none was tried).
        also: String,
    },
    /// The kernel function does not exist (or cannot be probed).
    #[error("`{spec}`: no kernel function `{function}` can be probed here{suggest}")]
    UnknownFunction {
        /// The spec.
        spec: String,
        /// The function.
        function: String,
        /// Closest names.
        suggest: String,
    },
    /// A glob matched nothing.
    #[error("`{spec}`: the glob matches no kernel function that can be probed{suggest}")]
    GlobEmpty {
        /// The spec.
        spec: String,
        /// Closest names.
        suggest: String,
    },
    /// A glob matched too much.
    #[error(
        "`{spec}` matches {count} kernel functions, more than the limit of {max}: narrow the glob or raise the limit with --max-glob {count}"
    )]
    GlobTooLarge {
        /// The spec.
        spec: String,
        /// Matches.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// No such tracepoint.
    #[error(
        "`{spec}`: no tracepoint `{category}:{name}`{suggest} (all of them: {tracefs}/available_events)"
    )]
    UnknownTracepoint {
        /// The spec.
        spec: String,
        /// Category.
        category: String,
        /// Name.
        name: String,
        /// Closest names.
        suggest: String,
        /// Where tracefs is.
        tracefs: &'static str,
    },
    /// The binary does not exist.
    #[error("`{spec}`: {path} does not exist: give the full path of the binary or library")]
    NoBinary {
        /// The spec.
        spec: String,
        /// The path.
        path: String,
    },
    /// The symbol is not in the binary.
    #[error("`{spec}`: {path} has no function symbol `{symbol}`{suggest}")]
    NoSymbol {
        /// The spec.
        spec: String,
        /// The binary.
        path: String,
        /// The symbol.
        symbol: String,
        /// Closest names.
        suggest: String,
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
    /// Refuse instead of falling back between kprobes and fentry/fexit.
    pub strict: bool,
    /// Cap on the functions one glob may attach to.
    pub max_glob: usize,
    /// Kernel function names, read on first use.
    pub functions: Option<Vec<String>>,
    /// The kernel features the programs were loaded with (`kfeature` bits).
    pub kfeatures: u32,
    /// The `glob_entry` program is loaded (glob kretprobes without `bpf_get_func_ip`).
    pub glob_entry: bool,
}

/// What attaching a probe produced.
#[derive(Debug, Default)]
pub struct Attached {
    /// Names of the argument fields (tracepoints).
    pub arg_names: Vec<String>,
    /// How each named argument is shown (see `tracefs::arg_formats`).
    pub arg_formats: String,
    /// Functions a glob attached to, by address.
    pub functions: Vec<(u64, String)>,
}

fn failed(spec: &ProbeSpec, err: &dyn std::fmt::Display) -> AttachError {
    AttachError::Failed {
        spec: spec.text.clone(),
        cause: err.to_string(),
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}

/// The errno of the first OS error in `err`'s source chain.
fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    std::iter::successors(Some(err), |e| e.source())
        .find_map(|e| e.downcast_ref::<std::io::Error>()?.raw_os_error())
}

fn program<'a, T>(ebpf: &'a mut Ebpf, kind: ProbeKind, id: usize) -> anyhow::Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let name = kind.program_name(id);
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

impl AttachContext<'_> {
    fn functions(&mut self) -> &[String] {
        self.functions
            .get_or_insert_with(|| lookup::kernel_functions(Path::new("/")))
    }

    fn unknown_function(&mut self, spec: &ProbeSpec, function: &str) -> AttachError {
        let close = lookup::closest(function, self.functions().iter().map(String::as_str), 3);
        AttachError::UnknownFunction {
            spec: spec.text.clone(),
            function: function.to_owned(),
            suggest: lookup::suggestion(&close),
        }
    }
}

/// kprobe or kretprobe on `function` (or the functions a glob matches).
fn attach_kprobe(
    ebpf: &mut Ebpf,
    id: usize,
    kind: ProbeKind,
    spec: &ProbeSpec,
    function: &str,
    offset: u64,
    cx: &mut AttachContext<'_>,
) -> anyhow::Result<Attached> {
    let mut attached = Attached::default();
    let targets: Vec<String> = if spec.is_glob() {
        let matches: Vec<String> = cx
            .functions()
            .iter()
            .filter(|f| lookup::glob_match(function, f))
            .cloned()
            .collect();
        if matches.is_empty() {
            let plain = function.replace(['*', '?'], "");
            let close = lookup::closest(&plain, cx.functions().iter().map(String::as_str), 3);
            return Err(AttachError::GlobEmpty {
                spec: spec.text.clone(),
                suggest: lookup::suggestion(&close),
            }
            .into());
        }
        if matches.len() > cx.max_glob {
            return Err(AttachError::GlobTooLarge {
                spec: spec.text.clone(),
                count: matches.len(),
                max: cx.max_glob,
            }
            .into());
        }
        let syms =
            lookup::parse_kallsyms(&std::fs::read_to_string("/proc/kallsyms").unwrap_or_default());
        attached.functions = matches
            .iter()
            .filter_map(|m| {
                syms.iter()
                    .find(|(_, n)| n == m)
                    .map(|(a, n)| (*a, n.clone()))
            })
            .collect();
        matches
    } else {
        vec![function.to_owned()]
    };
    if kind == ProbeKind::Kretprobe && spec.is_glob() && cx.kfeatures & kfeature::FUNC_IP == 0 {
        note_calls(ebpf, spec, &targets, cx)?;
    }
    let prog: &mut KProbe = program(ebpf, kind, id)?;
    prog.load().map_err(|e| failed(spec, &chain(&e)))?;
    for target in &targets {
        if let Err(e) = prog.attach(target, offset) {
            if !spec.is_glob() && !cx.functions().iter().any(|f| f == target) {
                return Err(cx.unknown_function(spec, target).into());
            }
            if offset != 0 && os_error(&e) == Some(libc::EILSEQ) {
                return Err(failed(spec, &format!("+{offset} is not at an instruction boundary of `{target}` (the kernel refuses with EILSEQ): pick an offset from its disassembly, e.g. `gdb -batch -ex 'disassemble {target}' vmlinux`")).into());
            }
            return Err(failed(spec, &format!("{} (attaching to `{target}`)", chain(&e))).into());
        }
    }
    Ok(attached)
}

/// Without `bpf_get_func_ip`, a glob kretprobe learns its function from the `glob_entry`
/// kprobe on the same functions (see `snapshot-ebpf/src/funcs.rs`), attached first so that
/// every call the kretprobe sees was noted.
fn note_calls(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    targets: &[String],
    cx: &mut AttachContext<'_>,
) -> anyhow::Result<()> {
    let prog: &mut KProbe = ebpf
        .program_mut(names::PROG_GLOB_ENTRY)
        .context(
            "program glob_entry missing from the eBPF object: rebuild with `cargo xtask build`",
        )?
        .try_into()?;
    if !cx.glob_entry {
        prog.load().map_err(|e| failed(spec, &chain(&e)))?;
        cx.glob_entry = true;
    }
    for target in targets {
        prog.attach(target, 0).map_err(|e| {
            failed(
                spec,
                &format!(
                    "{} (noting the calls of `{target}`, which this kernel's kretprobes cannot name without bpf_get_func_ip)",
                    chain(&e)
                ),
            )
        })?;
    }
    Ok(())
}

/// fentry or fexit on `function`.
fn attach_trampoline(
    ebpf: &mut Ebpf,
    id: usize,
    kind: ProbeKind,
    spec: &ProbeSpec,
    function: &str,
    cx: &mut AttachContext<'_>,
) -> Result<(), TrampolineError> {
    if !cx.support.trampolines {
        return Err(TrampolineError::Unavailable(format!(
            "hidden by {}",
            kernel::HIDE_ENV
        )));
    }
    if cx.btf.is_none() {
        cx.btf = Some(
            Btf::from_sys_fs()
                .map_err(|e| TrampolineError::Unavailable(format!("no kernel BTF ({e})")))?,
        );
    }
    let btf = cx
        .btf
        .as_ref()
        .ok_or_else(|| TrampolineError::Unavailable("no kernel BTF".into()))?;
    let other = |e: anyhow::Error| TrampolineError::Other(e);
    let result = if kind == ProbeKind::Fentry {
        let prog: &mut FEntry = program(ebpf, kind, id).map_err(other)?;
        prog.load(function, btf)
            .and_then(|()| prog.attach().map(drop))
    } else {
        let prog: &mut FExit = program(ebpf, kind, id).map_err(other)?;
        prog.load(function, btf)
            .and_then(|()| prog.attach().map(drop))
    };
    result.map_err(|e| {
        if is_eperm(&e) {
            TrampolineError::Unavailable(
                "loading a tracing program fails with EPERM (kernel lockdown)".into(),
            )
        } else if matches!(&e, ProgramError::Btf(_)) {
            TrampolineError::Other(cx.unknown_function(spec, function).into())
        } else {
            TrampolineError::Other(failed(spec, &chain(&e)).into())
        }
    })
}

/// Why fentry/fexit did not attach.
enum TrampolineError {
    /// The kernel cannot run them (a fallback may help).
    Unavailable(String),
    /// Anything else (no fallback).
    Other(anyhow::Error),
}

const fn counterpart(kind: ProbeKind) -> ProbeKind {
    match kind {
        ProbeKind::Kprobe => ProbeKind::Fentry,
        ProbeKind::Kretprobe => ProbeKind::Fexit,
        ProbeKind::Fentry => ProbeKind::Kprobe,
        ProbeKind::Fexit => ProbeKind::Kretprobe,
        other => other,
    }
}

fn notice(spec: &ProbeSpec, missing: &str, used: ProbeKind, function: &str) {
    log::warn!(
        "notice: {missing} are not available on this kernel; `{}` uses {used}:{function} instead (--strict refuses)",
        spec.text
    );
}

/// Loads and attaches the program for probe `id`.
pub fn attach(
    ebpf: &mut Ebpf,
    id: usize,
    spec: &ProbeSpec,
    cx: &mut AttachContext<'_>,
) -> anyhow::Result<Attached> {
    let release = cx.support.release.clone();
    match (&spec.location, spec.kind) {
        (
            Location::Kernel { function, offset },
            kind @ (ProbeKind::Kprobe | ProbeKind::Kretprobe),
        ) => {
            if cx.support.kprobes {
                return attach_kprobe(ebpf, id, kind, spec, function, *offset, cx);
            }
            let no_kprobes = |also: String| AttachError::NoKprobes {
                spec: spec.text.clone(),
                release: release.clone(),
                also,
            };
            if cx.strict || *offset != 0 || spec.is_glob() {
                let why = if cx.strict {
                    ""
                } else if *offset != 0 {
                    "; fentry cannot replace a kprobe with an offset"
                } else {
                    "; fentry cannot replace a glob"
                };
                return Err(no_kprobes(why.to_owned()).into());
            }
            match attach_trampoline(ebpf, id, counterpart(kind), spec, function, cx) {
                Ok(()) => {
                    notice(spec, "kprobes", counterpart(kind), function);
                    Ok(Attached::default())
                }
                Err(TrampolineError::Unavailable(why)) => Err(no_kprobes(format!(
                    "; the fallback to {} failed too: {why}",
                    counterpart(kind)
                ))
                .into()),
                Err(TrampolineError::Other(e)) => Err(e),
            }
        }
        (Location::Kernel { function, .. }, kind @ (ProbeKind::Fentry | ProbeKind::Fexit)) => {
            match attach_trampoline(ebpf, id, kind, spec, function, cx) {
                Ok(()) => Ok(Attached::default()),
                Err(TrampolineError::Other(e)) => Err(e),
                Err(TrampolineError::Unavailable(cause)) => {
                    let no_trampolines = |also: String| AttachError::NoTrampolines {
                        spec: spec.text.clone(),
                        release: release.clone(),
                        cause: cause.clone(),
                        also,
                    };
                    if cx.strict {
                        return Err(no_trampolines(String::new()).into());
                    }
                    if !cx.support.kprobes {
                        return Err(no_trampolines(format!(
                            "; the fallback to {} is impossible too: this kernel has no kprobes",
                            counterpart(kind)
                        ))
                        .into());
                    }
                    let attached =
                        attach_kprobe(ebpf, id, counterpart(kind), spec, function, 0, cx)?;
                    notice(
                        spec,
                        "BPF trampolines (fentry/fexit)",
                        counterpart(kind),
                        function,
                    );
                    Ok(attached)
                }
            }
        }
        (Location::Tracepoint { category, name }, _) => {
            tracefs::ensure_mounted()?;
            let root = Path::new(tracefs::TRACEFS);
            let fields = match tracefs::read_fields(root, category, name) {
                Ok(f) => f,
                Err(tracefs::TracefsError::Unknown { .. }) => {
                    let all = lookup::tracepoints(root);
                    let wanted = format!("{category}:{name}");
                    let close = lookup::closest(&wanted, all.iter().map(String::as_str), 3);
                    let close: Vec<String> =
                        close.iter().map(|c| format!("tracepoint:{c}")).collect();
                    let close: Vec<&str> = close.iter().map(String::as_str).collect();
                    return Err(AttachError::UnknownTracepoint {
                        spec: spec.text.clone(),
                        category: category.clone(),
                        name: name.clone(),
                        suggest: lookup::suggestion(&close),
                        tracefs: tracefs::TRACEFS,
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            };
            let (config, arg_names) = tracefs::probe_config(&fields);
            let arg_formats = tracefs::arg_formats(&fields, &arg_names);
            load::set_probe_config(ebpf, id as u32, &config)?;
            let prog: &mut TracePoint = program(ebpf, ProbeKind::Tracepoint, id)?;
            prog.load().map_err(|e| failed(spec, &chain(&e)))?;
            prog.attach(category, name)
                .map_err(|e| failed(spec, &chain(&e)))?;
            Ok(Attached {
                arg_names,
                arg_formats,
                functions: Vec::new(),
            })
        }
        (Location::Raw { name }, _) => {
            let prog: &mut RawTracePoint = program(ebpf, ProbeKind::Rawtp, id)?;
            prog.load().map_err(|e| failed(spec, &chain(&e)))?;
            prog.attach(name).map_err(|e| {
                let all = lookup::tracepoints(Path::new(tracefs::TRACEFS));
                let events: Vec<&str> = all.iter().filter_map(|t| t.split(':').nth(1)).collect();
                let close = lookup::closest(name, events, 3);
                failed(
                    spec,
                    &format!(
                        "{}: is `{name}` a tracepoint{}",
                        chain(&e),
                        lookup::suggestion(&close)
                    ),
                )
            })?;
            Ok(Attached::default())
        }
        (
            Location::User {
                path,
                symbol,
                offset,
            },
            kind,
        ) => {
            if !path.exists() {
                return Err(AttachError::NoBinary {
                    spec: spec.text.clone(),
                    path: path.display().to_string(),
                }
                .into());
            }
            let prog: &mut UProbe = program(ebpf, kind, id)?;
            prog.load().map_err(|e| failed(spec, &chain(&e)))?;
            let location = if *offset == 0 {
                UProbeAttachLocation::Symbol(symbol)
            } else {
                UProbeAttachLocation::SymbolOffset(symbol, *offset)
            };
            // Every process: the in-kernel target filter selects (a perf uprobe bound to a pid
            // would fire for that one thread only). aya resolves the symbol, following the
            // binary's debug link where it has one; only when that fails are the binary's own
            // symbols read, to name the closest.
            prog.attach([location], path, UProbeScope::AllProcesses)
                .map_err(|e| {
                    let symbols = lookup::elf_functions(path).unwrap_or_default();
                    if symbols.iter().any(|s| s == symbol) {
                        return failed(spec, &chain(&e));
                    }
                    let close = lookup::closest(symbol, symbols.iter().map(String::as_str), 3);
                    AttachError::NoSymbol {
                        spec: spec.text.clone(),
                        path: path.display().to_string(),
                        symbol: symbol.clone(),
                        suggest: lookup::suggestion(&close),
                    }
                })?;
            Ok(Attached::default())
        }
        (Location::Kernel { .. }, _) => {
            Err(failed(spec, &"kernel location for a non-kernel probe kind").into())
        }
    }
}
