//! Kernel function prototypes from BTF (`/sys/kernel/btf/vmlinux`): parameter names and
//! types, so that fentry/fexit capture `char *` arguments by themselves, declared captures
//! are checked (a string on a non-pointer is refused), arguments are named, and an `int`
//! return shows its errno.
//!
//! Only what that needs is parsed: the type section's layout, `FUNC` → `FUNC_PROTO`, and type
//! chains through typedefs, qualifiers and type tags (`__user` is the tag `user`).

use std::{borrow::Cow, path::Path};

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

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Parsed BTF: the raw bytes and where each type starts.
pub struct Btf {
    data: Vec<u8>,
    types: Vec<usize>,
    strings: usize,
    strings_len: usize,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Reads the running kernel's BTF under `root` (`/`); `None` when it has none.
    #[must_use]
    pub fn load(root: &Path) -> Option<Self> {
        Self::parse(std::fs::read(root.join("sys/kernel/btf/vmlinux")).ok()?)
    }

    /// Parses BTF bytes (little-endian); `None` when they are not BTF.
    #[must_use]
    pub fn parse(data: Vec<u8>) -> Option<Self> {
        if data.get(0..2)? != [0x9f, 0xeb] {
            return None;
        }
        let hdr_len = u32_at(&data, 4)? as usize;
        let (type_off, type_len) = (u32_at(&data, 8)? as usize, u32_at(&data, 12)? as usize);
        let (str_off, str_len) = (u32_at(&data, 16)? as usize, u32_at(&data, 20)? as usize);
        let start = hdr_len.checked_add(type_off)?;
        let end = start.checked_add(type_len)?;
        let strings = hdr_len.checked_add(str_off)?;
        if end > data.len() || strings.checked_add(str_len)? > data.len() {
            return None;
        }
        // Type id 0 is void: index 0 is a placeholder.
        let mut types = vec![0];
        let mut at = start;
        while at + 12 <= end {
            types.push(at);
            let info = u32_at(&data, at + 4)?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                _ => 0,
            };
            at += 12 + extra;
        }
        Some(Self {
            data,
            types,
            strings,
            strings_len: str_len,
        })
    }

    fn name(&self, off: u32) -> Cow<'_, str> {
        let start = self.strings + off as usize;
        let end = self.strings + self.strings_len;
        let bytes = self.data.get(start..end).unwrap_or_default();
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..len])
    }

    /// (name offset, kind, vlen, size-or-type, offset of the kind-specific data).
    fn ty(&self, id: u32) -> Option<(u32, u32, usize, u32, usize)> {
        let at = *self.types.get(id as usize).filter(|_| id != 0)?;
        let info = u32_at(&self.data, at + 4)?;
        Some((
            u32_at(&self.data, at)?,
            (info >> 24) & 0x1f,
            (info & 0xffff) as usize,
            u32_at(&self.data, at + 8)?,
            at + 12,
        ))
    }

    /// Follows typedefs, qualifiers and type tags; returns the type and whether a `user` tag
    /// was on the way.
    fn strip(&self, mut id: u32) -> (u32, bool) {
        let mut user = false;
        for _ in 0..32 {
            match self.ty(id) {
                Some((name, kind, _, next, _))
                    if matches!(
                        kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    user |= kind == KIND_TYPE_TAG && self.name(name) == "user";
                    id = next;
                }
                _ => break,
            }
        }
        (id, user)
    }

    fn classify(&self, id: u32) -> Type {
        let (id, _) = self.strip(id);
        match self.ty(id) {
            None => Type::Void,
            Some((_, KIND_PTR, _, target, _)) => {
                let (target, user) = self.strip(target);
                let char = matches!(self.ty(target), Some((name, KIND_INT, _, 1, _))
                    if self.name(name).ends_with("char"));
                Type::Pointer { char, user }
            }
            Some((_, KIND_INT, _, size, data)) => Type::Int {
                signed: u32_at(&self.data, data).is_some_and(|enc| (enc >> 24) & 1 != 0),
                size,
            },
            Some((_, KIND_ENUM | KIND_ENUM64, _, size, _)) => Type::Int {
                signed: false,
                size,
            },
            Some(_) => Type::Other,
        }
    }

    /// The prototype of kernel function `name`, if BTF has it.
    #[must_use]
    pub fn prototype(&self, name: &str) -> Option<Prototype> {
        let func = (1..self.types.len() as u32).find(|&id| {
            self.ty(id)
                .is_some_and(|(n, kind, ..)| kind == KIND_FUNC && self.name(n) == name)
        })?;
        let (_, _, _, proto, _) = self.ty(func)?;
        let (_, kind, vlen, ret, data) = self.ty(proto)?;
        if kind != KIND_FUNC_PROTO {
            return None;
        }
        let params = (0..vlen)
            .map(|i| {
                let at = data + 8 * i;
                let name = self.name(u32_at(&self.data, at).unwrap_or(0)).into_owned();
                let ty = self.classify(u32_at(&self.data, at + 4).unwrap_or(0));
                (name, ty)
            })
            .collect();
        Some(Prototype {
            params,
            ret: self.classify(ret),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BTF: `long do_open(int dfd, const char __user *filename, struct s *how)`.
    fn sample() -> Vec<u8> {
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
        t.extend([off("int"), info(KIND_INT, 0), 4, (1 << 24) | 32]);
        // 2: char (1)
        t.extend([off("char"), info(KIND_INT, 0), 1, 8]);
        // 3: const char
        t.extend([0, info(KIND_CONST, 0), 2]);
        // 4: const char __user (type tag)
        t.extend([off("user"), info(KIND_TYPE_TAG, 0), 3]);
        // 5: pointer to it
        t.extend([0, info(KIND_PTR, 0), 4]);
        // 6: struct s (empty)
        t.extend([off("s"), info(KIND_STRUCT, 0), 0]);
        // 7: struct s *
        t.extend([0, info(KIND_PTR, 0), 6]);
        // 8: long (signed, 8)
        t.extend([off("long"), info(KIND_INT, 0), 8, (1 << 24) | 64]);
        // 9: proto (dfd: int, filename: 5, how: 7) -> long
        t.extend([0, info(KIND_FUNC_PROTO, 3), 8]);
        t.extend([off("dfd"), 1, off("filename"), 5, off("how"), 7]);
        // 10: func do_open
        t.extend([off("do_open"), info(KIND_FUNC, 0), 9]);
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
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn prototypes_name_and_type_the_parameters() {
        let btf = Btf::parse(sample()).unwrap();
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
        assert!(Btf::parse(vec![1, 2, 3]).is_none());
    }
}
