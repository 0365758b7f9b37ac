//! Probe specifications in bpftrace syntax: `kprobe:vfs_read`, `tracepoint:syscalls:sys_enter_close`,
//! `uprobe:/bin/bash:readline`, optionally named with `NAME=SPEC`, optionally followed by the
//! strings and buffers to capture (`kprobe:do_sys_openat2(arg1:str)`, see [`super::capture`]).

use std::{fmt, path::PathBuf, str::FromStr};

use snapshot_common::names;

use super::capture::{self, CaptureError, Decl};

/// What kind of program a probe is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Kernel function entry (kprobe).
    Kprobe,
    /// Kernel function return (kretprobe).
    Kretprobe,
    /// Kernel function entry through BTF trampolines.
    Fentry,
    /// Kernel function return through BTF trampolines.
    Fexit,
    /// Classic (perf) tracepoint.
    Tracepoint,
    /// Raw tracepoint.
    Rawtp,
    /// User function entry.
    Uprobe,
    /// User function return.
    Uretprobe,
}

impl ProbeKind {
    /// All kinds, in the order the help text lists them.
    pub const ALL: [Self; 8] = [
        Self::Kprobe,
        Self::Kretprobe,
        Self::Fentry,
        Self::Fexit,
        Self::Tracepoint,
        Self::Rawtp,
        Self::Uprobe,
        Self::Uretprobe,
    ];

    /// The spec prefix (`kprobe`, `tracepoint`, …).
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Kprobe => "kprobe",
            Self::Kretprobe => "kretprobe",
            Self::Fentry => "fentry",
            Self::Fexit => "fexit",
            Self::Tracepoint => "tracepoint",
            Self::Rawtp => "rawtp",
            Self::Uprobe => "uprobe",
            Self::Uretprobe => "uretprobe",
        }
    }

    /// Name of the program for probe slot `id` in the eBPF object.
    #[must_use]
    pub fn program_name(self, id: usize) -> String {
        names::slot_program(names::SLOT_FAMILIES[self as usize], id)
    }

    /// True for probes that see a return value rather than arguments.
    #[must_use]
    pub const fn is_return(self) -> bool {
        matches!(self, Self::Kretprobe | Self::Fexit | Self::Uretprobe)
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        Some(match prefix {
            "kprobe" | "k" => Self::Kprobe,
            "kretprobe" | "kr" => Self::Kretprobe,
            "fentry" | "f" => Self::Fentry,
            "fexit" | "fr" => Self::Fexit,
            "tracepoint" | "t" => Self::Tracepoint,
            "rawtp" | "rawtracepoint" | "rt" => Self::Rawtp,
            "uprobe" | "u" => Self::Uprobe,
            "uretprobe" | "ur" => Self::Uretprobe,
            _ => return None,
        })
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// Where a probe attaches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Location {
    /// A kernel function, with a byte offset for kprobes.
    Kernel {
        /// Function name.
        function: String,
        /// Offset from the function's start (kprobe only).
        offset: u64,
    },
    /// A tracepoint `category:name`.
    Tracepoint {
        /// Category (directory under `events/`).
        category: String,
        /// Event name.
        name: String,
    },
    /// A raw tracepoint.
    Raw {
        /// Tracepoint name (`sys_enter`).
        name: String,
    },
    /// A function in a user binary or library.
    User {
        /// Path of the binary or library.
        path: PathBuf,
        /// Symbol name.
        symbol: String,
        /// Offset from the symbol (uprobe only).
        offset: u64,
    },
}

/// One `--probe` argument, parsed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeSpec {
    /// Program kind.
    pub kind: ProbeKind,
    /// Attach point.
    pub location: Location,
    /// Name given with `NAME=SPEC`, if any.
    pub alias: Option<String>,
    /// The spec as the user wrote it.
    pub text: String,
    /// Strings and buffers declared with `(FIELD:str, …)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<Decl>,
    /// A tracepoint's field holding the pid of the task the event is about: the target filter
    /// tests that task instead of the one the tracepoint runs in (set by the built-in triggers
    /// for `signal_generate` and `mark_victim`, whose victim is not the current task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_pid: Option<String>,
}

impl ProbeSpec {
    /// True when the kernel function is a glob (`kprobe:vfs_*`).
    #[must_use]
    pub fn is_glob(&self) -> bool {
        matches!(&self.location, Location::Kernel { function, .. } if function.contains(['*', '?']))
    }

    /// The name events and triggers use for this probe: the alias, else the function,
    /// tracepoint or symbol name.
    #[must_use]
    pub fn name(&self) -> &str {
        if let Some(alias) = &self.alias {
            return alias;
        }
        match &self.location {
            Location::Kernel { function, .. } => function,
            Location::Tracepoint { name, .. } | Location::Raw { name } => name,
            Location::User { symbol, .. } => symbol,
        }
    }
}

/// Pair numbers per probe id (0: unpaired): an entry probe (kprobe, fentry, uprobe without
/// offset) and a return probe (kretprobe, fexit, uretprobe) of the same function share a
/// number, and the return's events carry the call's duration. Each return pairs with the first
/// unpaired entry of its function.
#[must_use]
pub fn pairs(specs: &[ProbeSpec]) -> Vec<u32> {
    fn function(s: &ProbeSpec) -> Option<(Option<&std::path::Path>, &str)> {
        match &s.location {
            Location::Kernel {
                function,
                offset: 0,
            } => Some((None, function)),
            Location::User {
                path,
                symbol,
                offset: 0,
            } => Some((Some(path), symbol)),
            _ => None,
        }
    }
    let mut out = vec![0u32; specs.len()];
    let mut next = 1;
    for (r, ret) in specs.iter().enumerate() {
        if !ret.kind.is_return() {
            continue;
        }
        let Some(f) = function(ret) else { continue };
        let entry = specs.iter().enumerate().position(|(e, s)| {
            out[e] == 0
                && !s.kind.is_return()
                && s.kind != ProbeKind::Tracepoint
                && s.kind != ProbeKind::Rawtp
                && function(s) == Some(f)
                && (s.kind == ProbeKind::Uprobe) == (ret.kind == ProbeKind::Uretprobe)
        });
        if let Some(e) = entry {
            out[e] = next;
            out[r] = next;
            next += 1;
        }
    }
    out
}

/// Checks that probes share a name only when they are the entry and the return probe of one
/// pair (see [`pairs`]): a trigger names a probe by its name.
pub fn check_names(specs: &[ProbeSpec]) -> Result<(), SpecError> {
    let pair = pairs(specs);
    for (i, a) in specs.iter().enumerate() {
        for (j, b) in specs.iter().enumerate().skip(i + 1) {
            if a.name() == b.name() && (pair[i] == 0 || pair[i] != pair[j]) {
                return Err(SpecError::DuplicateName {
                    name: a.name().to_owned(),
                    first: a.text.clone(),
                    second: b.text.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Why a probe spec could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// No `kind:` prefix.
    #[error(
        "probe `{0}` has no kind: write KIND:TARGET, e.g. `kprobe:vfs_read`, `tracepoint:syscalls:sys_enter_openat`, `uprobe:/bin/bash:readline`"
    )]
    MissingKind(String),
    /// Unknown prefix.
    #[error(
        "unknown probe kind `{kind}` in `{spec}`: use one of kprobe, kretprobe, fentry, fexit, tracepoint, rawtp, uprobe, uretprobe"
    )]
    UnknownKind {
        /// The prefix found.
        kind: String,
        /// The whole spec.
        spec: String,
    },
    /// Wrong shape for the kind.
    #[error("malformed probe `{spec}`: expected `{expected}`")]
    Malformed {
        /// The whole spec.
        spec: String,
        /// The shape this kind takes.
        expected: &'static str,
    },
    /// Offset that is not a number.
    #[error(
        "bad offset `{offset}` in `{spec}`: write a decimal or 0x-prefixed hex byte offset, e.g. `+0x10`"
    )]
    BadOffset {
        /// The offset text.
        offset: String,
        /// The whole spec.
        spec: String,
    },
    /// A glob on a kind that attaches to one function per program.
    #[error(
        "`{0}`: globs work with kprobe and kretprobe only (fentry/fexit programs are bound to one function each): write `kprobe:` or name each function"
    )]
    GlobKind(String),
    /// Two probes share a name without being one entry/return pair.
    #[error(
        "two probes are named `{name}` (`{first}` and `{second}`): a trigger could not tell them apart; give each its own name with NAME=SPEC (only the entry and the return probe of one function share a name)"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// The first spec.
        first: String,
        /// The second spec.
        second: String,
    },
    /// Alias that is not an identifier.
    #[error(
        "bad probe name `{0}`: a name given with NAME=SPEC must be letters, digits and `_`, not starting with a digit"
    )]
    BadAlias(String),
    /// A capture list that is not the grammar.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

fn parse_offset(text: &str, spec: &str) -> Result<u64, SpecError> {
    let parsed = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
    } else {
        text.parse()
    };
    parsed.map_err(|_| SpecError::BadOffset {
        offset: text.to_owned(),
        spec: spec.to_owned(),
    })
}

/// Splits `NAME+OFFSET` into the name and its offset (0 when absent).
fn split_offset<'a>(target: &'a str, spec: &str) -> Result<(&'a str, u64), SpecError> {
    match target.split_once('+') {
        Some((name, offset)) => Ok((name, parse_offset(offset, spec)?)),
        None => Ok((target, 0)),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Characters a kernel symbol or tracepoint name may contain (`.` for `foo.isra.0`).
fn is_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl FromStr for ProbeSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (alias, spec) = match text.split_once('=') {
            Some((alias, spec)) if !alias.contains(':') => {
                if !is_ident(alias) {
                    return Err(SpecError::BadAlias(alias.to_owned()));
                }
                (Some(alias.to_owned()), spec)
            }
            _ => (None, text),
        };
        let (body, captures) = capture::split(spec)?;
        let (prefix, rest) = body
            .split_once(':')
            .ok_or_else(|| SpecError::MissingKind(spec.to_owned()))?;
        let kind = ProbeKind::from_prefix(prefix).ok_or_else(|| SpecError::UnknownKind {
            kind: prefix.to_owned(),
            spec: spec.to_owned(),
        })?;
        let malformed = |expected| SpecError::Malformed {
            spec: spec.to_owned(),
            expected,
        };
        let location = match kind {
            ProbeKind::Kprobe | ProbeKind::Kretprobe | ProbeKind::Fentry | ProbeKind::Fexit => {
                let (function, offset) = split_offset(rest, spec)?;
                let expected = match kind {
                    ProbeKind::Kprobe => "kprobe:FUNCTION[+OFFSET]",
                    ProbeKind::Kretprobe => "kretprobe:FUNCTION",
                    ProbeKind::Fentry => "fentry:FUNCTION",
                    _ => "fexit:FUNCTION",
                };
                let glob = function.contains(['*', '?']);
                let plain = function.replace(['*', '?'], "");
                if !(is_symbol(function) || (glob && (plain.is_empty() || is_symbol(&plain))))
                    || (offset != 0 && (kind != ProbeKind::Kprobe || glob))
                {
                    return Err(malformed(expected));
                }
                if glob && matches!(kind, ProbeKind::Fentry | ProbeKind::Fexit) {
                    return Err(SpecError::GlobKind(spec.to_owned()));
                }
                Location::Kernel {
                    function: function.to_owned(),
                    offset,
                }
            }
            ProbeKind::Tracepoint => match rest.split_once(':') {
                Some((category, name)) if is_symbol(category) && is_symbol(name) => {
                    Location::Tracepoint {
                        category: category.to_owned(),
                        name: name.to_owned(),
                    }
                }
                _ => return Err(malformed("tracepoint:CATEGORY:NAME")),
            },
            ProbeKind::Rawtp => {
                if !is_symbol(rest) {
                    return Err(malformed("rawtp:NAME"));
                }
                Location::Raw {
                    name: rest.to_owned(),
                }
            }
            ProbeKind::Uprobe | ProbeKind::Uretprobe => {
                let expected = if kind == ProbeKind::Uprobe {
                    "uprobe:PATH:SYMBOL[+OFFSET]"
                } else {
                    "uretprobe:PATH:SYMBOL"
                };
                let (path, target) = rest.rsplit_once(':').ok_or_else(|| malformed(expected))?;
                let (symbol, offset) = split_offset(target, spec)?;
                if path.is_empty()
                    || symbol.is_empty()
                    || (offset != 0 && kind == ProbeKind::Uretprobe)
                {
                    return Err(malformed(expected));
                }
                Location::User {
                    path: PathBuf::from(path),
                    symbol: symbol.to_owned(),
                    offset,
                }
            }
        };
        if kind == ProbeKind::Rawtp && !captures.is_empty() {
            return Err(CaptureError::Rawtp {
                spec: spec.to_owned(),
            }
            .into());
        }
        Ok(Self {
            kind,
            location,
            alias,
            text: text.to_owned(),
            captures,
            subject_pid: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ProbeSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn kernel_specs() {
        let p = parse("kprobe:vfs_read+0x10").unwrap();
        assert_eq!(p.kind, ProbeKind::Kprobe);
        assert_eq!(
            p.location,
            Location::Kernel {
                function: "vfs_read".into(),
                offset: 16
            }
        );
        assert_eq!(p.name(), "vfs_read");
        assert_eq!(
            parse("kretprobe:vfs_read").unwrap().kind,
            ProbeKind::Kretprobe
        );
        assert_eq!(parse("fentry:vfs_write").unwrap().kind, ProbeKind::Fentry);
        assert_eq!(parse("fexit:vfs_write").unwrap().kind, ProbeKind::Fexit);
        assert!(matches!(
            parse("kretprobe:vfs_read+4"),
            Err(SpecError::Malformed { .. })
        ));
        assert!(matches!(
            parse("kprobe:vfs_read+zz"),
            Err(SpecError::BadOffset { .. })
        ));
        assert!(matches!(parse("kprobe:"), Err(SpecError::Malformed { .. })));
    }

    #[test]
    fn globs() {
        let p = parse("kprobe:vfs_*").unwrap();
        assert!(p.is_glob());
        assert!(!parse("kprobe:vfs_read").unwrap().is_glob());
        assert!(matches!(parse("fentry:vfs_*"), Err(SpecError::GlobKind(_))));
        assert!(matches!(
            parse("kprobe:vfs_*+4"),
            Err(SpecError::Malformed { .. })
        ));
    }

    #[test]
    fn tracepoint_and_raw() {
        let p = parse("tracepoint:syscalls:sys_enter_close").unwrap();
        assert_eq!(
            p.location,
            Location::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_close".into()
            }
        );
        assert_eq!(p.name(), "sys_enter_close");
        assert!(matches!(
            parse("tracepoint:syscalls"),
            Err(SpecError::Malformed { .. })
        ));
        assert_eq!(parse("rawtp:sys_enter").unwrap().name(), "sys_enter");
        assert_eq!(ProbeKind::Rawtp.program_name(3), "rawtp_3");
        for kind in ProbeKind::ALL {
            assert_eq!(
                names::SLOT_FAMILIES[kind as usize],
                kind.prefix(),
                "program families follow the kinds"
            );
        }
    }

    #[test]
    fn user_specs_and_aliases() {
        let p = parse("f=uprobe:/usr/bin/x:main+4").unwrap();
        assert_eq!(p.alias.as_deref(), Some("f"));
        assert_eq!(p.name(), "f");
        assert_eq!(
            p.location,
            Location::User {
                path: "/usr/bin/x".into(),
                symbol: "main".into(),
                offset: 4
            }
        );
        assert!(matches!(
            parse("uprobe:/bin/x"),
            Err(SpecError::Malformed { .. })
        ));
        assert!(matches!(parse("1x=kprobe:f"), Err(SpecError::BadAlias(_))));
    }

    #[test]
    fn entry_and_return_probes_pair_up() {
        let specs: Vec<ProbeSpec> = [
            "kprobe:vfs_read",
            "tracepoint:syscalls:sys_enter_read",
            "kretprobe:vfs_read",
            "fentry:vfs_write",
            "fexit:vfs_write",
            "uprobe:/bin/x:f",
            "uretprobe:/bin/y:f",
            "kretprobe:vfs_open",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            pairs(&specs),
            [1, 0, 1, 2, 2, 0, 0, 0],
            "same function only; uprobes per binary"
        );
    }

    #[test]
    fn names_are_shared_only_by_a_pair() {
        let specs =
            |v: &[&str]| -> Vec<ProbeSpec> { v.iter().map(|s| s.parse().unwrap()).collect() };
        check_names(&specs(&["uprobe:/bin/x:f", "uretprobe:/bin/x:f"])).unwrap();
        check_names(&specs(&["a=uprobe:/bin/x:f", "a=uretprobe:/bin/x:f"])).unwrap();
        for bad in [
            &["x=kprobe:vfs_read", "x=tracepoint:syscalls:sys_enter_close"][..],
            &[
                "tracepoint:syscalls:sys_enter_close",
                "tracepoint:syscalls:sys_enter_close",
            ],
            &["uprobe:/bin/a:main", "uprobe:/bin/b:main"],
            &[
                "sys_enter_close=kprobe:vfs_read",
                "tracepoint:syscalls:sys_enter_close",
            ],
            &[
                "uprobe:/bin/x:f",
                "uretprobe:/bin/x:f",
                "uretprobe:/bin/x:f",
            ],
        ] {
            let e = check_names(&specs(bad)).unwrap_err();
            assert!(e.to_string().contains("NAME=SPEC"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn kind_errors() {
        assert!(matches!(parse("vfs_read"), Err(SpecError::MissingKind(_))));
        let err = parse("kprob:vfs_read").unwrap_err();
        assert!(
            err.to_string().contains("unknown probe kind `kprob`"),
            "{err}"
        );
    }
}
