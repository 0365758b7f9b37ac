//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) for two uses:
//! - function prototypes, parameter names and types, so that fentry/fexit capture `char *`
//!   arguments by themselves, declared captures are checked (a string on a non-pointer is
//!   refused), arguments are named, and an `int` return shows its errno ([`Btf::prototype`]);
//! - the context words of a function's arguments: fentry/fexit read them from the context on
//!   kernels without `bpf_get_func_arg` (`snapshot-ebpf/src/funcs.rs`), and the feature probes
//!   need a function to load a tracing program against ([`Btf::arg_words`]).
//!
//! Only what that needs is parsed: the type section's layout, `FUNC` → `FUNC_PROTO`, and type
//! chains through typedefs, qualifiers and type tags (`__user` is the tag `user`).

use std::{borrow::Cow, path::Path};

/// `BTF_KIND_*` numbers.
mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// Why a function's arguments could not be counted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    /// Not BTF, or cut short.
    #[error("the kernel's BTF is malformed or of an unknown version")]
    Malformed,
    /// No such function.
    #[error("no function `{0}` in the kernel's BTF")]
    NoFunction(String),
    /// An argument whose size is unknown (a forward declaration).
    #[error("an argument of `{0}` has no known size")]
    Unsized(String),
}

/// What a parameter or return type is, as far as capturing and showing it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// A pointer; `char` when it points to `char` (possibly const), `user` when tagged `__user`.
    Pointer {
        /// Points to `char`.
        char: bool,
        /// Tagged `__user`.
        user: bool,
    },
    /// An integer (enums included) of `size` bytes.
    Int {
        /// Signed.
        signed: bool,
        /// Bytes.
        size: u32,
    },
    /// `void`.
    Void,
    /// Anything else (structs by value, floats, …).
    Other,
}

/// A function's prototype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prototype {
    /// Parameters: name and type.
    pub params: Vec<(String, Type)>,
    /// Return type.
    pub ret: Type,
}

/// One type: kind, `info` vlen, `ty_or_size`, and where its trailing data starts.
#[derive(Clone, Copy, Debug)]
struct Entry {
    name_off: u32,
    kind: u32,
    vlen: usize,
    ty_or_size: u32,
    extra: usize,
}

/// Parsed BTF: the types (id 1 is the first) and the string section.
pub struct Btf {
    data: Vec<u8>,
    types: Vec<Entry>,
    strings: std::ops::Range<usize>,
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> std::io::Result<Result<Self, BtfError>> {
        Ok(Self::parse(std::fs::read(Path::new(
            "/sys/kernel/btf/vmlinux",
        ))?))
    }

    /// Parses raw BTF (little-endian, as on x86-64).
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        let bad = || BtfError::Malformed;
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            return Err(bad());
        }
        let hdr_len = u32_at(&data, 4).ok_or_else(bad)? as usize;
        let field = |at| u32_at(&data, at).map(|v| v as usize).ok_or_else(bad);
        let (type_off, type_len, str_off, str_len) =
            (field(8)?, field(12)?, field(16)?, field(20)?);
        let types_at = hdr_len + type_off;
        let types_end = types_at + type_len;
        let strings = hdr_len + str_off..hdr_len + str_off + str_len;
        if types_end > data.len() || strings.end > data.len() {
            return Err(bad());
        }
        let mut types = Vec::new();
        let mut at = types_at;
        while at < types_end {
            let name_off = u32_at(&data, at).ok_or_else(bad)?;
            let info = u32_at(&data, at + 4).ok_or_else(bad)?;
            let ty_or_size = u32_at(&data, at + 8).ok_or_else(bad)?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let extra = at + 12;
            let trailing = match kind {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
                kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                _ => return Err(bad()),
            };
            types.push(Entry {
                name_off,
                kind,
                vlen,
                ty_or_size,
                extra,
            });
            at = extra + trailing;
        }
        Ok(Self {
            data,
            types,
            strings,
        })
    }

    fn raw_name(&self, t: &Entry) -> &[u8] {
        let start = self.strings.start + t.name_off as usize;
        let rest = self.data.get(start..self.strings.end).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    fn get(&self, id: u32) -> Option<&Entry> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// The id of function `name` (`BTF_KIND_FUNC`).
    #[must_use]
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.kind == kind::FUNC && self.raw_name(t) == name.as_bytes())
            .map(|i| i as u32 + 1)
    }

    /// Reads the BTF of the kernel under `root` (`/`); `None` when it has none or it does
    /// not parse.
    #[must_use]
    pub fn load(root: &Path) -> Option<Self> {
        Self::parse(std::fs::read(root.join("sys/kernel/btf/vmlinux")).ok()?).ok()
    }

    fn name(&self, off: u32) -> Cow<'_, str> {
        let start = self.strings.start + off as usize;
        let bytes = self.data.get(start..self.strings.end).unwrap_or_default();
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..len])
    }

    /// Follows typedefs, qualifiers and type tags; returns the type and whether a `user` tag
    /// was on the way.
    fn strip(&self, mut id: u32) -> (u32, bool) {
        let mut user = false;
        for _ in 0..32 {
            match self.get(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        kind::TYPEDEF
                            | kind::VOLATILE
                            | kind::CONST
                            | kind::RESTRICT
                            | kind::TYPE_TAG
                    ) =>
                {
                    user |= t.kind == kind::TYPE_TAG && self.name(t.name_off) == "user";
                    id = t.ty_or_size;
                }
                _ => break,
            }
        }
        (id, user)
    }

    fn classify(&self, id: u32) -> Type {
        let (id, _) = self.strip(id);
        let Some(t) = self.get(id) else {
            return Type::Void;
        };
        match t.kind {
            kind::PTR => {
                let (target, user) = self.strip(t.ty_or_size);
                let char = self.get(target).is_some_and(|c| {
                    c.kind == kind::INT
                        && c.ty_or_size == 1
                        && self.name(c.name_off).ends_with("char")
                });
                Type::Pointer { char, user }
            }
            kind::INT => Type::Int {
                signed: u32_at(&self.data, t.extra).is_some_and(|enc| (enc >> 24) & 1 != 0),
                size: t.ty_or_size,
            },
            kind::ENUM | kind::ENUM64 => Type::Int {
                signed: false,
                size: t.ty_or_size,
            },
            _ => Type::Other,
        }
    }

    /// The prototype of kernel function `name`, if BTF has it.
    #[must_use]
    pub fn prototype(&self, name: &str) -> Option<Prototype> {
        let func = self.get(self.func_id(name)?)?;
        let proto = self
            .get(func.ty_or_size)
            .filter(|p| p.kind == kind::FUNC_PROTO)?;
        let params = (0..proto.vlen)
            .map(|i| {
                let at = proto.extra + 8 * i;
                let name = self.name(u32_at(&self.data, at).unwrap_or(0)).into_owned();
                let ty = self.classify(u32_at(&self.data, at + 4).unwrap_or(0));
                (name, ty)
            })
            .collect();
        Some(Prototype {
            params,
            ret: self.classify(proto.ty_or_size),
        })
    }

    /// The size in bytes of type `id`, through typedefs and qualifiers.
    fn size(&self, mut id: u32) -> Option<u64> {
        for _ in 0..32 {
            let t = self.get(id)?;
            match t.kind {
                kind::PTR => return Some(8),
                kind::INT
                | kind::ENUM
                | kind::ENUM64
                | kind::STRUCT
                | kind::UNION
                | kind::FLOAT => return Some(u64::from(t.ty_or_size)),
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.ty_or_size;
                }
                _ => return None,
            }
        }
        None
    }

    /// How many 8-byte context words the arguments of function `name` take in a BPF
    /// trampoline's context (a struct passed by value takes one per 8 bytes).
    pub fn arg_words(&self, name: &str) -> Result<u32, BtfError> {
        let func = self
            .func_id(name)
            .and_then(|id| self.get(id))
            .ok_or_else(|| BtfError::NoFunction(name.to_owned()))?;
        let proto = self
            .get(func.ty_or_size)
            .filter(|p| p.kind == kind::FUNC_PROTO)
            .ok_or(BtfError::Malformed)?;
        let mut words = 0;
        for i in 0..proto.vlen {
            let ty = u32_at(&self.data, proto.extra + 8 * i + 4).ok_or(BtfError::Malformed)?;
            if ty == 0 {
                break; // `...`
            }
            let size = self
                .size(ty)
                .ok_or_else(|| BtfError::Unsized(name.to_owned()))?;
            words += size.div_ceil(8).max(1) as u32;
        }
        Ok(words)
    }
}

/// Hand-built BTF for unit tests: functions of no parameter, each returning one type.
#[cfg(test)]
pub(crate) mod sample {
    use super::kind;

    /// A return type of [`returning`].
    #[derive(Clone, Copy)]
    pub enum Ret {
        /// An integer: name, bytes, signed (`BTF_INT_SIGNED`).
        Int(&'static str, u32, bool),
        /// An integer through a typedef (`ssize_t`-like): typedef name, bytes, signed.
        Typedef(&'static str, u32, bool),
        /// A pointer to `void`.
        Pointer,
        /// `void`.
        Void,
        /// An enum of `bytes` bytes.
        Enum(u32),
    }

    /// BTF with one function per `(name, return type)`, in that order.
    pub fn returning(funcs: &[(&str, Ret)]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name = |s: &str| {
            let at = strings.len() as u32;
            strings.extend(s.as_bytes());
            strings.push(0);
            at
        };
        let mut t: Vec<u32> = Vec::new();
        let mut next = 1u32;
        let info = |k: u32, vlen: u32| (k << 24) | vlen;
        for &(func, ret) in funcs {
            let ret_id = match ret {
                Ret::Void => 0,
                Ret::Int(n, bytes, signed) | Ret::Typedef(n, bytes, signed) => {
                    let enc = (u32::from(signed) << 24) | (8 * bytes);
                    t.extend([name(n), info(kind::INT, 0), bytes, enc]);
                    next += 1;
                    if matches!(ret, Ret::Typedef(..)) {
                        t.extend([name(n), info(kind::TYPEDEF, 0), next - 1]);
                        next += 1;
                    }
                    next - 1
                }
                Ret::Pointer => {
                    t.extend([0, info(kind::PTR, 0), 0]);
                    next += 1;
                    next - 1
                }
                Ret::Enum(bytes) => {
                    t.extend([name("e"), info(kind::ENUM, 0), bytes]);
                    next += 1;
                    next - 1
                }
            };
            t.extend([0, info(kind::FUNC_PROTO, 0), ret_id]);
            t.extend([name(func), info(kind::FUNC, 0), next]);
            next += 2;
        }
        assemble(&t, &strings)
    }

    /// A BTF blob of the type words `t` and the string section `strings`.
    pub fn assemble(t: &[u32], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for w in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(w.to_le_bytes());
        }
        out.extend(types);
        out.extend(strings);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `int`, `struct pair { 12 bytes }`, `const char *`, and
    /// `f(int, const char *, struct pair)`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0pair\0char\0f\0a\0b\0c\0";
        let name = |s: &str| {
            let pos = strings
                .windows(s.len() + 2)
                .position(|w| w[0] == 0 && &w[1..=s.len()] == s.as_bytes() && w[s.len() + 1] == 0)
                .unwrap();
            pos as u32 + 1
        };
        let mut types: Vec<u32> = Vec::new();
        let info = |k: u32, vlen: u32| (k << 24) | vlen;
        // 1: int
        types.extend([name("int"), info(kind::INT, 0), 4, 32]);
        // 2: struct pair, 12 bytes, no members listed
        types.extend([name("pair"), info(kind::STRUCT, 0), 12]);
        // 3: char
        types.extend([name("char"), info(kind::INT, 0), 1, 8]);
        // 4: const char
        types.extend([0, info(kind::CONST, 0), 3]);
        // 5: const char *
        types.extend([0, info(kind::PTR, 0), 4]);
        // 6: proto (int a, const char *b, struct pair c) -> int
        types.extend([0, info(kind::FUNC_PROTO, 3), 1]);
        types.extend([name("a"), 1, name("b"), 5, name("c"), 2]);
        // 7: func f
        types.extend([name("f"), info(kind::FUNC, 0), 6]);
        sample::assemble(&types, strings)
    }

    #[test]
    fn counts_argument_words() {
        let btf = Btf::parse(sample()).unwrap();
        assert_eq!(btf.func_id("f"), Some(7));
        assert_eq!(btf.arg_words("f"), Ok(1 + 1 + 2));
        assert_eq!(btf.arg_words("g"), Err(BtfError::NoFunction("g".into())));
        assert!(Btf::parse(b"not btf".to_vec()).is_err());
    }

    #[test]
    fn reads_this_kernel() {
        // Without root: the file is world-readable. Every machine this project runs on has
        // BTF (see the README's requirements).
        let btf = Btf::from_sys_fs()
            .expect("/sys/kernel/btf/vmlinux: this kernel has no BTF")
            .expect("the kernel's BTF parses");
        assert_eq!(btf.arg_words("vfs_write"), Ok(4), "file, buf, count, pos");
    }

    /// A tiny BTF: `long do_open(int dfd, const char __user *filename, struct s *how)`.
    fn prototype_sample() -> Vec<u8> {
        let strings = b"\0int\0char\0long\0do_open\0dfd\0filename\0how\0user\0s\0";
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut t: Vec<u32> = Vec::new();
        let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
        // 1: int (signed, 4)
        t.extend([off("int"), info(kind::INT, 0), 4, (1 << 24) | 32]);
        // 2: char (1)
        t.extend([off("char"), info(kind::INT, 0), 1, 8]);
        // 3: const char
        t.extend([0, info(kind::CONST, 0), 2]);
        // 4: const char __user (type tag)
        t.extend([off("user"), info(kind::TYPE_TAG, 0), 3]);
        // 5: pointer to it
        t.extend([0, info(kind::PTR, 0), 4]);
        // 6: struct s (empty)
        t.extend([off("s"), info(kind::STRUCT, 0), 0]);
        // 7: struct s *
        t.extend([0, info(kind::PTR, 0), 6]);
        // 8: long (signed, 8)
        t.extend([off("long"), info(kind::INT, 0), 8, (1 << 24) | 64]);
        // 9: proto (dfd: int, filename: 5, how: 7) -> long
        t.extend([0, info(kind::FUNC_PROTO, 3), 8]);
        t.extend([off("dfd"), 1, off("filename"), 5, off("how"), 7]);
        // 10: func do_open
        t.extend([off("do_open"), info(kind::FUNC, 0), 9]);
        sample::assemble(&t, strings)
    }

    #[test]
    fn prototypes_name_and_type_the_parameters() {
        let btf = Btf::parse(prototype_sample()).unwrap();
        let p = btf.prototype("do_open").unwrap();
        let names: Vec<&str> = p.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["dfd", "filename", "how"]);
        assert_eq!(
            p.params[0].1,
            Type::Int {
                signed: true,
                size: 4
            }
        );
        assert_eq!(
            p.params[1].1,
            Type::Pointer {
                char: true,
                user: true
            }
        );
        assert_eq!(
            p.params[2].1,
            Type::Pointer {
                char: false,
                user: false
            }
        );
        assert_eq!(
            p.ret,
            Type::Int {
                signed: true,
                size: 8
            }
        );
        assert!(btf.prototype("nope").is_none());
        assert!(Btf::parse(vec![1, 2, 3]).is_err());
    }
}
