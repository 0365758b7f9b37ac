//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) to find a function and count
//! the context words of its arguments: fentry/fexit read them from the context on kernels
//! without `bpf_get_func_arg` (`snapshot-ebpf/src/funcs.rs`), and the feature probes need a
//! function to load a tracing program against.

use std::path::Path;

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

/// One type: kind, `info` vlen, `ty_or_size`, and where its trailing data starts.
#[derive(Clone, Copy, Debug)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: usize,
    ty_or_size: u32,
    extra: usize,
}

/// Parsed BTF: the types (id 1 is the first) and the string section.
pub struct Btf {
    data: Vec<u8>,
    types: Vec<Type>,
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
            types.push(Type {
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

    fn name(&self, t: &Type) -> &[u8] {
        let start = self.strings.start + t.name_off as usize;
        let rest = self.data.get(start..self.strings.end).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    fn get(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// The id of function `name` (`BTF_KIND_FUNC`).
    #[must_use]
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.kind == kind::FUNC && self.name(t) == name.as_bytes())
            .map(|i| i as u32 + 1)
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
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut blob = vec![0x9f, 0xeb, 1, 0];
        for w in [
            24u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend(w.to_le_bytes());
        }
        blob.extend(type_bytes);
        blob.extend(strings);
        blob
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
}
