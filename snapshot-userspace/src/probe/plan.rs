//! What each probe's events carry beyond their raw words, decided before the programs load
//! (the kernel's capture list is a load-time constant): the strings and buffers
//! ([`super::capture`]), whether a negative return is an errno, and for kernel functions with
//! BTF the parameters' names and how they are shown.

use std::path::Path;

use snapshot_common::MAX_ARGS;

use super::{
    btf::{Btf, Prototype, Type},
    capture::{self, Capture, CaptureError, Known},
    spec::{Location, ProbeKind, ProbeSpec},
    tracefs,
};

/// The plan of one probe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbePlan {
    /// Strings and buffers captured.
    pub captures: Vec<Capture>,
    /// A negative return value is an errno.
    pub ret_errno: bool,
    /// Kernel functions with BTF: parameter names and formats (`tracefs::arg_formats` codes).
    pub params: Option<(Vec<String>, String)>,
}

/// Whether any spec needs kernel BTF (a kernel function).
#[must_use]
pub fn needs_btf(specs: &[ProbeSpec]) -> bool {
    specs.iter().any(|s| {
        matches!(
            s.kind,
            ProbeKind::Kprobe | ProbeKind::Kretprobe | ProbeKind::Fentry | ProbeKind::Fexit
        )
    })
}

/// A parameter's display code (as `tracefs::arg_formats`).
fn format_of(t: &Type) -> char {
    match t {
        Type::Int { signed: true, size } if *size <= 4 => 'i',
        Type::Int { signed: true, .. } => 'd',
        Type::Int { signed: false, .. } => 'u',
        _ => 'x',
    }
}

/// An `int` or `long` return: an errno when negative.
fn errno_ret(p: &Prototype) -> bool {
    matches!(p.ret, Type::Int { signed: true, size } if size >= 4)
}

/// Plans probe `spec`: tracepoint fields are read from tracefs at `tracefs_root`, kernel
/// functions looked up in `btf`. A tracepoint whose format cannot be read is left to attach,
/// which explains the error.
pub fn plan(
    spec: &ProbeSpec,
    tracefs_root: &Path,
    btf: Option<&Btf>,
    string_size: u32,
) -> Result<ProbePlan, CaptureError> {
    let mut out = ProbePlan::default();
    match &spec.location {
        Location::Tracepoint { category, name } => {
            let Ok(fields) = tracefs::read_fields(tracefs_root, category, name) else {
                return Ok(out);
            };
            let (_, args) = tracefs::probe_config(&fields);
            let known = Known::Tracepoint {
                fields: &fields,
                args: &args,
                category,
            };
            out.captures = capture::plan(spec, known, string_size)?;
            out.ret_errno = category == "syscalls" && name.starts_with("sys_exit_");
        }
        Location::Kernel { function, offset } => {
            let proto = btf
                .filter(|_| !spec.is_glob())
                .and_then(|b| b.prototype(function));
            let known = proto.as_ref().map_or(Known::Nothing, Known::Function);
            out.captures = capture::plan(spec, known, string_size)?;
            if let Some(p) = &proto {
                out.ret_errno = spec.kind.is_return() && errno_ret(p);
                if *offset == 0 && spec.kind != ProbeKind::Kretprobe {
                    let params = p.params.iter().take(MAX_ARGS);
                    let names = params
                        .clone()
                        .enumerate()
                        .map(|(i, (n, _))| {
                            if n.is_empty() {
                                format!("arg{i}")
                            } else {
                                n.clone()
                            }
                        })
                        .collect();
                    out.params = Some((names, params.map(|(_, t)| format_of(t)).collect()));
                }
            }
        }
        Location::User { .. } | Location::Raw { .. } => {
            out.captures = capture::plan(spec, Known::Nothing, string_size)?;
        }
    }
    Ok(out)
}
