//! Strings and buffers an event captures: declared after the probe in the bpftrace spirit,
//! `kprobe:do_sys_openat2(arg1:str)`, `uprobe:/bin/x:f(arg0:str, arg1:buf(arg2))`,
//! `uretprobe:/bin/bash:readline(ret:str)`, `fexit:ksys_read(arg1:buf(ret))`,
//! `tracepoint:syscalls:sys_enter_write(buf:buf(count))`, and found by themselves where the
//! type is known: a tracepoint's `const char *` fields (user memory for syscalls) and
//! `__data_loc char[]` fields (kernel strings), and fentry/fexit `char *` arguments (BTF).
//!
//! ```text
//! captures := '(' capture (',' capture)* ')'
//! capture  := FIELD ':' 'str' | FIELD ':' 'buf' '(' LEN ')'
//! FIELD    := argN | ret | NAME          NAME: a tracepoint field or a BTF parameter name
//! LEN      := FIELD | BYTES              the buffer's length: another field, or a number
//! ```
//!
//! [`plan`] checks the declarations against what is known of the probe (its fields, its BTF
//! prototype) and gives the [`Capture`]s the kernel makes and the snapshot shows.

use snapshot_common::{
    MAX_ARGS, MAX_STRINGS, StringSpec,
    strings::{LEN_FIXED, SRC_RET, STRING_SIZE_MAX, kind, mem},
};

use super::{
    btf::{Prototype, Type},
    spec::{ProbeKind, ProbeSpec},
    tracefs::Field,
};

/// A field named in a capture.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FieldName {
    /// `argN`.
    Arg(u8),
    /// `ret`.
    Ret,
    /// A tracepoint field or parameter name.
    Named(String),
}

impl std::fmt::Display for FieldName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Arg(i) => write!(f, "arg{i}"),
            Self::Ret => f.write_str("ret"),
            Self::Named(n) => f.write_str(n),
        }
    }
}

/// A buffer's length.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Len {
    /// Another field of the event.
    Field(FieldName),
    /// A number of bytes.
    Bytes(u32),
}

/// One declared capture: `FIELD:str` or `FIELD:buf(LEN)`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decl {
    /// The field holding the address.
    pub field: FieldName,
    /// `None`: a NUL-terminated string; `Some(len)`: a buffer of that length.
    pub buf: Option<Len>,
}

fn field_name(text: &str) -> Option<FieldName> {
    if text == "ret" {
        return Some(FieldName::Ret);
    }
    if let Some(n) = text.strip_prefix("arg")
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return n.parse().ok().map(FieldName::Arg);
    }
    let mut chars = text.chars();
    (matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then(|| FieldName::Named(text.to_owned()))
}

/// Why a capture list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// Not the grammar.
    #[error(
        "bad capture `{what}` in `{spec}`: write FIELD:str or FIELD:buf(LEN), FIELD being argN, ret or a field name, e.g. `kprobe:do_sys_openat2(arg1:str)`, `uprobe:/bin/x:f(arg0:str, arg1:buf(arg2))`"
    )]
    Syntax {
        /// The whole spec.
        spec: String,
        /// The part that is wrong.
        what: String,
    },
    /// A field the probe does not have.
    #[error("`{spec}`: no argument `{field}` to capture: {known}")]
    UnknownField {
        /// The whole spec.
        spec: String,
        /// The field named.
        field: String,
        /// What it has.
        known: String,
    },
    /// A string or buffer from something that is not a pointer.
    #[error(
        "`{spec}`: `{field}` is {ty}, not a pointer: only a pointer can be read as a string or a buffer"
    )]
    NotPointer {
        /// The whole spec.
        spec: String,
        /// The field.
        field: String,
        /// Its type, in words.
        ty: String,
    },
    /// `ret` on an entry probe.
    #[error(
        "`{spec}`: an entry probe has no return value: capture `ret` on a return probe (kretprobe, uretprobe, fexit)"
    )]
    NoRet {
        /// The whole spec.
        spec: String,
    },
    /// An argument on a return probe.
    #[error(
        "`{spec}`: a return probe sees only `ret` (the arguments are gone when the function returns): capture arguments on the entry probe, or use fexit, which sees both"
    )]
    NoArgs {
        /// The whole spec.
        spec: String,
    },
    /// Raw tracepoints.
    #[error(
        "`{spec}`: raw tracepoint arguments are kernel objects, not strings: capture from `tracepoint:CATEGORY:NAME` instead"
    )]
    Rawtp {
        /// The whole spec.
        spec: String,
    },
    /// More than `MAX_STRINGS`.
    #[error(
        "`{spec}` captures more than {MAX_STRINGS} strings or buffers: keep at most {MAX_STRINGS}"
    )]
    TooMany {
        /// The whole spec.
        spec: String,
    },
    /// The same field twice.
    #[error("`{spec}` captures `{field}` twice: keep one")]
    Duplicate {
        /// The whole spec.
        spec: String,
        /// The field.
        field: String,
    },
    /// A fixed buffer length out of range.
    #[error(
        "`{spec}`: buf({len}) is out of range: a buffer keeps 1 to --string-size ({size}) bytes; raise --string-size (at most {STRING_SIZE_MAX}) or ask for fewer"
    )]
    Size {
        /// The whole spec.
        spec: String,
        /// The length asked for.
        len: u32,
        /// `--string-size`.
        size: u32,
    },
    /// Declared captures while capture is off.
    #[error(
        "`{spec}` declares captures, but --string-size 0 turns capture off: give a size (64 is the default)"
    )]
    Off {
        /// The whole spec.
        spec: String,
    },
}

/// Splits `body(captures)` into the body and the parsed declarations.
pub fn split(text: &str) -> Result<(&str, Vec<Decl>), CaptureError> {
    let Some(open) = text.find('(') else {
        return Ok((text, Vec::new()));
    };
    let syntax = |what: &str| CaptureError::Syntax {
        spec: text.to_owned(),
        what: what.to_owned(),
    };
    let inner = text[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| syntax(&text[open..]))?;
    let mut decls: Vec<Decl> = Vec::new();
    for part in inner.split(',').map(str::trim) {
        let (field, ty) = part.split_once(':').ok_or_else(|| syntax(part))?;
        let field = field_name(field.trim()).ok_or_else(|| syntax(part))?;
        let ty = ty.trim();
        let buf = if ty == "str" {
            None
        } else if let Some(len) = ty.strip_prefix("buf(").and_then(|t| t.strip_suffix(')')) {
            let len = len.trim();
            Some(if let Ok(n) = len.parse::<u32>() {
                Len::Bytes(n)
            } else {
                Len::Field(field_name(len).ok_or_else(|| syntax(part))?)
            })
        } else {
            return Err(syntax(part));
        };
        if decls.iter().any(|d| d.field == field) {
            return Err(CaptureError::Duplicate {
                spec: text.to_owned(),
                field: field.to_string(),
            });
        }
        decls.push(Decl { field, buf });
    }
    if decls.len() > MAX_STRINGS {
        return Err(CaptureError::TooMany {
            spec: text.to_owned(),
        });
    }
    Ok((&text[..open], decls))
}

/// How a captured string is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureKind {
    /// A NUL-terminated string at the address.
    Str,
    /// A byte buffer at the address.
    Buf,
    /// A tracepoint `__data_loc char[]` string (inside the record).
    DataLoc,
    /// A tracepoint `__rel_loc char[]` string (inside the record).
    RelLoc,
}

/// Which memory it is read from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Memory {
    /// Kernel or user by address.
    #[default]
    Auto,
    /// User memory.
    User,
    /// Kernel memory.
    Kernel,
}

/// One string or buffer a probe's events carry, as the kernel captures it and the snapshot
/// shows it (every snapshot header has them in its probe table).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capture {
    /// Name shown (`filename`, `arg1`, `ret`).
    pub name: String,
    /// The event word holding the address (or location): argument 0..5, 6 for `ret`.
    pub word: u8,
    /// How it is read.
    pub kind: CaptureKind,
    /// Buffers: the event word holding the length (0..5, 6 for `ret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len_word: Option<u8>,
    /// Buffers: a fixed length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u32>,
    /// Memory read.
    #[serde(default)]
    pub memory: Memory,
    /// `__rel_loc`: the end of the field in the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_offset: Option<u16>,
}

impl Capture {
    /// A capture of event word `word` shown as `name`, read by address (a buffer's length is
    /// then to be set).
    #[must_use]
    pub fn new(name: impl Into<String>, word: u8, kind: CaptureKind) -> Self {
        Self {
            name: name.into(),
            word,
            kind,
            len_word: None,
            len: None,
            memory: Memory::Auto,
            rel_offset: None,
        }
    }

    /// The kernel's description of it.
    #[must_use]
    pub fn spec(&self) -> StringSpec {
        StringSpec {
            kind: match self.kind {
                CaptureKind::Str => kind::STR,
                CaptureKind::Buf => kind::BUF,
                CaptureKind::DataLoc => kind::DATA_LOC,
                CaptureKind::RelLoc => kind::REL_LOC,
            },
            mem: match self.memory {
                Memory::Auto => mem::AUTO,
                Memory::User => mem::USER,
                Memory::Kernel => mem::KERNEL,
            },
            src: self.word,
            len_src: self.len_word.unwrap_or(LEN_FIXED),
            len: self.len.unwrap_or(0) as u16,
            offset: self.rel_offset.unwrap_or(0),
        }
    }
}

/// What is known of a probe's fields when its captures are planned.
#[derive(Clone, Copy, Debug)]
pub enum Known<'a> {
    /// A tracepoint: its format's fields, and the ones the event carries (`arg_names`).
    Tracepoint {
        /// All fields.
        fields: &'a [Field],
        /// The fields carried as arguments, in order.
        args: &'a [String],
        /// The category (`syscalls` fields are user pointers).
        category: &'a str,
    },
    /// A kernel function with a BTF prototype.
    Function(&'a Prototype),
    /// Nothing (uprobes, or no BTF).
    Nothing,
}

/// A field resolved: its event word, the name shown, and when its type is known whether it is
/// a pointer and the type in words.
type Resolved = (u8, String, Option<(bool, String)>);

/// A field's type in words, for errors.
fn type_text(t: &Type) -> &'static str {
    match t {
        Type::Pointer { .. } => "a pointer",
        Type::Int { .. } => "an integer",
        Type::Void => "void",
        Type::Other => "not a pointer",
    }
}

/// The plan of one probe: checks its declarations and adds what it captures by itself.
pub fn plan(
    spec: &ProbeSpec,
    known: Known<'_>,
    string_size: u32,
) -> Result<Vec<Capture>, CaptureError> {
    let text = &spec.text;
    if string_size == 0 {
        if spec.captures.is_empty() {
            return Ok(Vec::new());
        }
        return Err(CaptureError::Off { spec: text.clone() });
    }
    if spec.kind == ProbeKind::Rawtp && !spec.captures.is_empty() {
        return Err(CaptureError::Rawtp { spec: text.clone() });
    }
    let unknown = |field: &FieldName, known: String| CaptureError::UnknownField {
        spec: text.clone(),
        field: field.to_string(),
        known,
    };
    let resolve = |field: &FieldName| -> Result<Resolved, CaptureError> {
        match (field, known) {
            (FieldName::Ret, _) if !(spec.kind.is_return() || spec.kind == ProbeKind::Tracepoint) => {
                Err(CaptureError::NoRet { spec: text.clone() })
            }
            (FieldName::Arg(_) | FieldName::Named(_), _)
                if matches!(spec.kind, ProbeKind::Kretprobe | ProbeKind::Uretprobe) =>
            {
                Err(CaptureError::NoArgs { spec: text.clone() })
            }
            (_, Known::Tracepoint { fields, args, .. }) => {
                let name = match field {
                    FieldName::Arg(i) => args.get(*i as usize).cloned(),
                    FieldName::Ret => Some("ret".to_owned()),
                    FieldName::Named(n) => Some(n.clone()),
                };
                let listed = || format!("the fields it carries are {}", args.join(", "));
                let name = name.ok_or_else(|| unknown(field, listed()))?;
                let word = if name == "ret" {
                    fields
                        .iter()
                        .any(|f| f.name == "ret")
                        .then_some(SRC_RET)
                        .ok_or_else(|| CaptureError::NoRet { spec: text.clone() })?
                } else {
                    args.iter()
                        .position(|a| *a == name)
                        .ok_or_else(|| unknown(field, listed()))? as u8
                };
                let f = fields.iter().find(|f| f.name == name);
                let ty = f.map(|f| {
                    (
                        f.c_type.contains('*') || is_loc(&f.c_type),
                        format!("`{}`", f.c_type),
                    )
                });
                Ok((word, name, ty))
            }
            (FieldName::Ret, Known::Function(p)) => Ok((
                SRC_RET,
                "ret".to_owned(),
                Some((matches!(p.ret, Type::Pointer { .. }), type_text(&p.ret).to_owned())),
            )),
            (FieldName::Ret, _) => Ok((SRC_RET, "ret".to_owned(), None)),
            (_, Known::Function(p)) => {
                let i = match field {
                    FieldName::Arg(i) => Some(*i as usize),
                    FieldName::Named(n) => p.params.iter().position(|(pn, _)| pn == n),
                    FieldName::Ret => None,
                };
                let listed = || {
                    let names: Vec<String> = p
                        .params
                        .iter()
                        .take(MAX_ARGS)
                        .enumerate()
                        .map(|(i, (n, _))| format!("arg{i} ({n})"))
                        .collect();
                    format!("the function's arguments are {}", names.join(", "))
                };
                let i = i
                    .filter(|&i| i < p.params.len().min(MAX_ARGS))
                    .ok_or_else(|| unknown(field, listed()))?;
                let (name, ty) = &p.params[i];
                let shown = if name.is_empty() { format!("arg{i}") } else { name.clone() };
                Ok((
                    i as u8,
                    shown,
                    Some((matches!(ty, Type::Pointer { .. }), type_text(ty).to_owned())),
                ))
            }
            (FieldName::Arg(i), _) if (*i as usize) < MAX_ARGS => Ok((*i, format!("arg{i}"), None)),
            (FieldName::Arg(_), _) => Err(unknown(
                field,
                format!("the first {MAX_ARGS} arguments are arg0 to arg{}", MAX_ARGS - 1),
            )),
            (FieldName::Named(_), _) => Err(unknown(
                field,
                "argument names are known for tracepoints and kernel functions with BTF: write argN"
                    .to_owned(),
            )),
        }
    };
    let mut out: Vec<Capture> = Vec::new();
    for d in &spec.captures {
        let (word, name, ty) = resolve(&d.field)?;
        if let Some((false, ty)) = ty {
            return Err(CaptureError::NotPointer {
                spec: text.clone(),
                field: d.field.to_string(),
                ty,
            });
        }
        let mut c = Capture {
            name,
            word,
            kind: if d.buf.is_some() {
                CaptureKind::Buf
            } else {
                CaptureKind::Str
            },
            len_word: None,
            len: None,
            memory: Memory::Auto,
            rel_offset: None,
        };
        match &d.buf {
            Some(Len::Bytes(n)) => {
                if *n == 0 || *n > string_size {
                    return Err(CaptureError::Size {
                        spec: text.clone(),
                        len: *n,
                        size: string_size,
                    });
                }
                c.len = Some(*n);
            }
            Some(Len::Field(f)) => c.len_word = Some(resolve(f)?.0),
            None => {}
        }
        if let Known::Tracepoint {
            fields, category, ..
        } = known
        {
            apply_tracepoint_type(&mut c, fields, category);
        }
        if let Known::Function(p) = known {
            apply_btf_memory(&mut c, p);
        }
        out.push(c);
    }
    for c in automatic(spec, known) {
        if out.len() < MAX_STRINGS && !out.iter().any(|o| o.word == c.word) {
            out.push(c);
        }
    }
    Ok(out)
}

fn is_loc(c_type: &str) -> bool {
    c_type.starts_with("__data_loc") || c_type.starts_with("__rel_loc")
}

/// A tracepoint field's kind and memory: `__data_loc`/`__rel_loc` strings are in the record;
/// syscall pointers are user memory.
fn apply_tracepoint_type(c: &mut Capture, fields: &[Field], category: &str) {
    let Some(f) = fields.iter().find(|f| f.name == c.name) else {
        return;
    };
    if f.c_type.starts_with("__data_loc") {
        c.kind = CaptureKind::DataLoc;
        c.memory = Memory::Kernel;
    } else if f.c_type.starts_with("__rel_loc") {
        c.kind = CaptureKind::RelLoc;
        c.memory = Memory::Kernel;
        c.rel_offset = Some(f.offset + f.size);
    } else if category == "syscalls" {
        c.memory = Memory::User;
    }
}

/// An argument tagged `__user` is read from user memory.
fn apply_btf_memory(c: &mut Capture, p: &Prototype) {
    if let Some((_, Type::Pointer { user: true, .. })) = p.params.get(c.word as usize) {
        c.memory = Memory::User;
    }
}

/// What a probe captures by itself: tracepoint `const char *` fields (`buf` with `count` as a
/// buffer of that length) and `__data_loc`/`__rel_loc` strings; fentry/fexit `char *`
/// arguments. An output buffer (`char *` without const, e.g. `read`'s) is not read at entry.
fn automatic(spec: &ProbeSpec, known: Known<'_>) -> Vec<Capture> {
    let mut out = Vec::new();
    match known {
        Known::Tracepoint {
            fields,
            args,
            category,
        } => {
            for (i, name) in args.iter().enumerate() {
                let Some(f) = fields.iter().find(|f| &f.name == name) else {
                    continue;
                };
                let c_type = f.c_type.replace(' ', "");
                let loc = is_loc(&f.c_type) && f.c_type.contains("char");
                if c_type != "constchar*" && !loc {
                    continue;
                }
                let mut c = Capture::new(name.clone(), i as u8, CaptureKind::Str);
                if name == "buf"
                    && let Some(count) = args.iter().position(|a| a == "count")
                {
                    c.kind = CaptureKind::Buf;
                    c.len_word = Some(count as u8);
                }
                apply_tracepoint_type(&mut c, fields, category);
                out.push(c);
            }
        }
        Known::Function(p) if matches!(spec.kind, ProbeKind::Fentry | ProbeKind::Fexit) => {
            for (i, (name, ty)) in p.params.iter().take(MAX_ARGS).enumerate() {
                if let Type::Pointer { char: true, user } = ty {
                    out.push(Capture {
                        name: if name.is_empty() {
                            format!("arg{i}")
                        } else {
                            name.clone()
                        },
                        word: i as u8,
                        kind: CaptureKind::Str,
                        len_word: None,
                        len: None,
                        memory: if *user { Memory::User } else { Memory::Auto },
                        rel_offset: None,
                    });
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests;
