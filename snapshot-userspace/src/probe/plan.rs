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
    /// How the kernel widens the return register to the event's 64-bit `ret` (a
    /// [`snapshot_common::widen`] code; 0: as it is). Set for kretprobe and fexit of one
    /// kernel function whose BTF return type is an integer narrower than 64 bits. A glob's
    /// functions are not looked up before load, and may return different types: their returns
    /// are kept as the register holds them.
    pub ret_widen: u32,
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

/// How the return register of a function returning `ret` is widened (see
/// [`snapshot_common::widen`]): integers narrower than 64 bits by their sign; anything else as
/// the register holds it.
fn widen_of(ret: &Type) -> u32 {
    match *ret {
        Type::Int { signed, size } => snapshot_common::widen::code(signed, size),
        Type::Pointer { .. } | Type::Void | Type::Other => 0,
    }
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
                if spec.kind.is_return() {
                    out.ret_widen = widen_of(&p.ret);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::btf::sample::{Ret, returning};
    use snapshot_common::widen;

    /// The widening planned for `spec` against a BTF of functions returning each type.
    fn widen(spec: &str) -> u32 {
        let btf = Btf::parse(returning(&[
            ("f_int", Ret::Int("int", 4, true)),
            ("f_long", Ret::Int("long int", 8, true)),
            ("f_ssize", Ret::Typedef("ssize_t", 8, true)),
            ("f_uint", Ret::Typedef("u32", 4, false)),
            ("f_short", Ret::Int("short int", 2, true)),
            ("f_u16", Ret::Int("short unsigned int", 2, false)),
            ("f_s8", Ret::Int("signed char", 1, true)),
            ("f_bool", Ret::Int("_Bool", 1, false)),
            ("f_enum", Ret::Enum(4)),
            ("f_ptr", Ret::Pointer),
            ("f_void", Ret::Void),
        ]))
        .expect("the sample parses");
        let spec: ProbeSpec = spec.parse().expect("a valid spec");
        plan(&spec, Path::new("/nonexistent"), Some(&btf), 64)
            .expect("plans")
            .ret_widen
    }

    #[test]
    fn narrow_integer_returns_widen_by_their_sign() {
        for kind in ["kretprobe", "fexit"] {
            let w = |f: &str| widen(&format!("{kind}:{f}"));
            assert_eq!(w("f_int"), widen::code(true, 4), "{kind}: int");
            assert_eq!(w("f_int"), 0x20 | widen::SIGNED, "shift 32, signed");
            assert_eq!(w("f_uint"), widen::code(false, 4), "{kind}: u32 typedef");
            assert_eq!(w("f_short"), 0x30 | widen::SIGNED);
            assert_eq!(w("f_u16"), 48);
            assert_eq!(w("f_s8"), 0x38 | widen::SIGNED);
            assert_eq!(w("f_bool"), 56);
            assert_eq!(w("f_enum"), 32, "{kind}: enums are unsigned");
            for whole in ["f_long", "f_ssize", "f_ptr", "f_void", "no_such_function"] {
                assert_eq!(w(whole), 0, "{kind}:{whole} keeps the register");
            }
        }
    }

    #[test]
    fn only_returns_of_one_function_widen() {
        // Entries have no return; a glob's functions may disagree (kept as the register is;
        // fexit takes no glob).
        for spec in ["kprobe:f_int", "fentry:f_int", "kretprobe:f_in*"] {
            assert_eq!(widen(spec), 0, "{spec}");
        }
        // And the decision reaches the errno decoding too: an `int` return is an errno.
        let btf = Btf::parse(returning(&[("f_int", Ret::Int("int", 4, true))])).unwrap();
        let spec: ProbeSpec = "kretprobe:f_int".parse().unwrap();
        let p = plan(&spec, Path::new("/nonexistent"), Some(&btf), 64).unwrap();
        assert!(p.ret_errno);
    }
}
