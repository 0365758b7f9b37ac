//! Loading and attaching one program per probe spec: kprobes and fentry/fexit fall back to each
//! other (with a notice; `--strict` refuses) when the kind asked for is missing or fails at load
//! or attach, and an error names both causes when neither works; kprobe offsets are checked for
//! the architecture first ([`offset`]); globs expand against the kernel's function list; and
//! every failure names what is missing and the way out, with the closest valid names.

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
    lookup, offset,
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
        "`{spec}` needs kprobes, which this kernel ({release}) cannot provide here: {cause}{also}. Ways out: run inside a kprobe-capable kernel with `cargo xtask vm -- <this command>`, or probe a tracepoint that covers the same call (for example `tracepoint:syscalls:sys_enter_read` instead of `kprobe:vfs_read`)"
    )]
    NoKprobes {
        /// The spec.
        spec: String,
        /// Kernel release.
        release: String,
        /// Why not.
        cause: String,
        /// Why the fallback did not help either (empty when none was tried).
        also: String,
    },
    /// fentry/fexit refused or impossible.
    #[error(
        "`{spec}` needs BPF trampolines (fentry/fexit), which this kernel ({release}) cannot provide here: {cause}{also}. Ways out: `cargo xtask vm -- <this command>`, a kprobe on the same function where kprobes exist, or a tracepoint that covers the same call"
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

/// Why one kind of kernel-function probe did not attach.
enum KindError {
    /// The kernel cannot provide this kind for this function (missing up front, or refused at
    /// load or attach): the other kind may.
    Unavailable(String),
    /// Anything else (a name that does not exist, an offset that cannot work, a glob): no other
    /// kind helps.
    Other(anyhow::Error),
}

/// Why attaching a kprobe to `target` failed, in words.
fn kprobe_refusal(target: &str, err: &(dyn std::error::Error + 'static)) -> String {
    if os_error(err) == Some(libc::EINVAL) {
        let blacklist =
            std::fs::read_to_string("/sys/kernel/debug/kprobes/blacklist").unwrap_or_default();
        if blacklist
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(target))
        {
            return format!(
                "`{target}` is on the kernel's kprobe blacklist (/sys/kernel/debug/kprobes/blacklist)"
            );
        }
    }
    format!("attaching to `{target}` fails: {}", chain(err))
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
) -> Result<Attached, KindError> {
    use KindError::{Other, Unavailable};
    if !cx.support.kprobes {
        return Err(Unavailable(cx.support.kprobes_missing()));
    }
    let arch = offset::Arch::current();
    if offset != 0 {
        offset::check(
            arch,
            function,
            offset,
            lookup::ftrace_site(Path::new("/"), function),
        )
        .map_err(|e| Other(failed(spec, &e).into()))?;
    }
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
            return Err(Other(
                AttachError::GlobEmpty {
                    spec: spec.text.clone(),
                    suggest: lookup::suggestion(&close),
                }
                .into(),
            ));
        }
        if matches.len() > cx.max_glob {
            return Err(Other(
                AttachError::GlobTooLarge {
                    spec: spec.text.clone(),
                    count: matches.len(),
                    max: cx.max_glob,
                }
                .into(),
            ));
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
        note_calls(ebpf, spec, &targets, cx).map_err(Other)?;
    }
    let prog: &mut KProbe = program(ebpf, kind, id).map_err(Other)?;
    prog.load()
        .map_err(|e| Unavailable(format!("loading the {kind} program fails: {}", chain(&e))))?;
    for target in &targets {
        if let Err(e) = prog.attach(target, offset) {
            if !spec.is_glob() && !cx.functions().iter().any(|f| f == target) {
                return Err(Other(cx.unknown_function(spec, target).into()));
            }
            if offset != 0 && os_error(&e) == Some(libc::EILSEQ) {
                return Err(Other(failed(spec, &format!("+{offset} is not at an instruction boundary of `{target}` (the kernel refuses with EILSEQ): pick an offset from its disassembly, e.g. `gdb -batch -ex 'disassemble {target}' vmlinux`")).into()));
            }
            if os_error(&e) == Some(libc::EINVAL) && offset::likely_patch_site(arch, offset) {
                return Err(Other(failed(spec, &format!("+{offset} is most likely the ftrace patch site of `{target}` (the instruction ftrace rewrites to call its trampoline), where {} kprobes cannot go (the kernel refuses with EINVAL); use +0 or an offset past it, e.g. +{}", arch.name(), offset + 4)).into()));
            }
            if offset != 0 || spec.is_glob() {
                return Err(Other(
                    failed(spec, &format!("{} (attaching to `{target}`)", chain(&e))).into(),
                ));
            }
            let why = kprobe_refusal(target, &e);
            let _ = prog.unload();
            return Err(Unavailable(why));
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
) -> Result<Attached, KindError> {
    use KindError::{Other, Unavailable};
    if !cx.support.trampolines {
        return Err(Unavailable(format!("hidden by {}", kernel::HIDE_ENV)));
    }
    if cx.btf.is_none() {
        cx.btf = Some(Btf::from_sys_fs().map_err(|e| Unavailable(format!("no kernel BTF ({e})")))?);
    }
    let btf = cx
        .btf
        .as_ref()
        .ok_or_else(|| Unavailable("no kernel BTF".into()))?;
    // Outer: loading; inner: attaching (the program is unloaded again when that fails).
    let result = if kind == ProbeKind::Fentry {
        let prog: &mut FEntry = program(ebpf, kind, id).map_err(Other)?;
        prog.load(function, btf).map(|()| {
            let attached = prog.attach().map(drop);
            if attached.is_err() {
                let _ = prog.unload();
            }
            attached
        })
    } else {
        let prog: &mut FExit = program(ebpf, kind, id).map_err(Other)?;
        prog.load(function, btf).map(|()| {
            let attached = prog.attach().map(drop);
            if attached.is_err() {
                let _ = prog.unload();
            }
            attached
        })
    };
    let attached = match result {
        Ok(attached) => attached,
        Err(e) => {
            return Err(if is_eperm(&e) {
                Unavailable("loading a tracing program fails with EPERM (kernel lockdown)".into())
            } else if matches!(&e, ProgramError::Btf(_)) {
                if cx.functions().iter().any(|f| f == function) {
                    Unavailable(format!(
                        "`{function}` has no BTF type information, which {kind} needs"
                    ))
                } else {
                    Other(cx.unknown_function(spec, function).into())
                }
            } else {
                Unavailable(format!("loading the {kind} program fails: {}", chain(&e)))
            });
        }
    };
    match attached {
        Err(e) if os_error(&e) == Some(524) => Err(Unavailable(format!(
            "attaching fails with error 524 (ENOTSUPP): the kernel cannot build a BPF trampoline here{}",
            if offset::Arch::current() == offset::Arch::Aarch64 {
                " (arm64 has them from Linux 6.4, DYNAMIC_FTRACE_WITH_DIRECT_CALLS)"
            } else {
                ""
            }
        ))),
        Err(e) => Err(Unavailable(format!("attaching fails: {}", chain(&e)))),
        Ok(()) => Ok(Attached::default()),
    }
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

/// kprobe/kretprobe or fentry/fexit, as asked.
fn attach_kind(
    ebpf: &mut Ebpf,
    id: usize,
    kind: ProbeKind,
    spec: &ProbeSpec,
    function: &str,
    offset: u64,
    cx: &mut AttachContext<'_>,
) -> Result<Attached, KindError> {
    match kind {
        ProbeKind::Kprobe | ProbeKind::Kretprobe => {
            attach_kprobe(ebpf, id, kind, spec, function, offset, cx)
        }
        _ => attach_trampoline(ebpf, id, kind, spec, function, cx),
    }
}

/// The kernel-function probe `kind` on `function`; when the kernel cannot provide that kind
/// there (missing, or refused at load or attach), its counterpart (fentry for a kprobe, kprobe
/// for an fentry, …) is tried before giving up, with a notice; an error then names both causes.
fn attach_function(
    ebpf: &mut Ebpf,
    id: usize,
    kind: ProbeKind,
    spec: &ProbeSpec,
    function: &str,
    offset: u64,
    cx: &mut AttachContext<'_>,
) -> anyhow::Result<Attached> {
    let why = match attach_kind(ebpf, id, kind, spec, function, offset, cx) {
        Ok(attached) => return Ok(attached),
        Err(KindError::Other(e)) => return Err(e),
        Err(KindError::Unavailable(why)) => why,
    };
    let other = counterpart(kind);
    let missing = |also: String| -> anyhow::Error {
        let (spec, release, cause) = (spec.text.clone(), cx.support.release.clone(), why.clone());
        if matches!(kind, ProbeKind::Kprobe | ProbeKind::Kretprobe) {
            AttachError::NoKprobes {
                spec,
                release,
                cause,
                also,
            }
            .into()
        } else {
            AttachError::NoTrampolines {
                spec,
                release,
                cause,
                also,
            }
            .into()
        }
    };
    if cx.strict {
        return Err(missing(format!("; --strict refuses {other} instead")));
    }
    if offset != 0 {
        return Err(missing(format!(
            "; {other} cannot replace a kprobe with an offset"
        )));
    }
    if spec.is_glob() {
        return Err(missing(format!("; {other} cannot replace a glob")));
    }
    match attach_kind(ebpf, id, other, spec, function, 0, cx) {
        Ok(attached) => {
            log::warn!(
                "notice: `{}`: {kind} cannot attach here ({why}); it uses {other}:{function} instead (--strict refuses)",
                spec.text
            );
            Ok(attached)
        }
        Err(KindError::Unavailable(why_other)) => Err(missing(format!(
            "; the fallback to {other} failed too: {why_other}"
        ))),
        Err(KindError::Other(e)) => Err(e.context(format!(
            "{kind} cannot attach here ({why}); {other} was tried instead"
        ))),
    }
}

/// Loads and attaches the program for probe `id`.
pub fn attach(
    ebpf: &mut Ebpf,
    id: usize,
    spec: &ProbeSpec,
    cx: &mut AttachContext<'_>,
) -> anyhow::Result<Attached> {
    match (&spec.location, spec.kind) {
        (
            Location::Kernel { function, offset },
            kind
            @ (ProbeKind::Kprobe | ProbeKind::Kretprobe | ProbeKind::Fentry | ProbeKind::Fexit),
        ) => attach_function(ebpf, id, kind, spec, function, *offset, cx),
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
