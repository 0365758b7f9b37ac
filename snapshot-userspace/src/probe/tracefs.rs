//! tracefs: making sure it is mounted, and reading a tracepoint's `format` file to find where
//! its fields are.

use std::{
    fs,
    path::{Path, PathBuf},
};

use snapshot_common::{FieldLoc, MAX_ARGS, ProbeConfig};

/// Where tracefs lives on current kernels.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// One field of a tracepoint's record, from its `format` file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    /// C declaration's name (`fd`, `ret`).
    pub name: String,
    /// C type as written (`unsigned int`).
    pub c_type: String,
    /// Byte offset in the record.
    pub offset: u16,
    /// Size in bytes.
    pub size: u16,
    /// Signedness.
    pub signed: bool,
}

/// Errors reading tracefs.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    /// The tracepoint does not exist.
    #[error(
        "no tracepoint `{category}:{name}` ({path} not found): list them with `ls {TRACEFS}/events/{category}`"
    )]
    Unknown {
        /// Category.
        category: String,
        /// Name.
        name: String,
        /// Format file looked for.
        path: PathBuf,
    },
    /// The format file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// tracefs is not mounted and mounting failed.
    #[error(
        "tracefs is not mounted at {TRACEFS} and mounting it failed ({0}): run `mount -t tracefs nodev {TRACEFS}` as root"
    )]
    Mount(std::io::Error),
}

/// Mounts tracefs at [`TRACEFS`] unless something is already there.
pub fn ensure_mounted() -> Result<(), TracefsError> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .status()
        .map_err(TracefsError::Mount)?;
    if status.success() {
        Ok(())
    } else {
        Err(TracefsError::Mount(std::io::Error::other(format!(
            "mount exited with {status}"
        ))))
    }
}

/// Parses the text of a tracepoint `format` file into its non-common fields.
#[must_use]
pub fn parse_format(text: &str) -> Vec<Field> {
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut decl = "";
        let (mut offset, mut size, mut signed) = (None, None, false);
        for part in rest.split(';').map(str::trim) {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("signed:") {
                signed = v == "1";
            } else if decl.is_empty() {
                decl = part;
            }
        }
        let (Some(offset), Some(size)) = (offset, size) else {
            continue;
        };
        // "unsigned int fd", "const char * filename", "char comm[16]",
        // "__data_loc char[] filename" (the brackets belong to the type there)
        let decl = if decl.starts_with("__data_loc") || decl.starts_with("__rel_loc") {
            decl
        } else {
            decl.split('[').next().unwrap_or(decl).trim()
        };
        let split = decl.rfind([' ', '*']).map_or(0, |i| i + 1);
        let (c_type, name) = (decl[..split].trim(), &decl[split..]);
        if name.starts_with("common_") {
            continue;
        }
        fields.push(Field {
            name: name.to_owned(),
            c_type: c_type.to_owned(),
            offset,
            size,
            signed,
        });
    }
    fields
}

/// Reads the fields of `category:name` from a tracefs mounted at `root`.
pub fn read_fields(root: &Path, category: &str, name: &str) -> Result<Vec<Field>, TracefsError> {
    let path = root.join("events").join(category).join(name).join("format");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse_format(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TracefsError::Unknown {
            category: category.to_owned(),
            name: name.to_owned(),
            path,
        }),
        Err(source) => Err(TracefsError::Read { path, source }),
    }
}

/// Chooses which fields an event carries: a field named `ret` becomes the return value, the
/// first [`MAX_ARGS`] scalar fields other than `__syscall_nr` become the arguments. Returns the
/// kernel-side configuration and the names of the argument fields.
#[must_use]
pub fn probe_config(fields: &[Field]) -> (ProbeConfig, Vec<String>) {
    let loc = |f: &Field| FieldLoc {
        offset: f.offset,
        size: f.size as u8,
        signed: u8::from(f.signed),
    };
    let mut config = ProbeConfig::default();
    let mut names = Vec::new();
    for f in fields {
        if !matches!(f.size, 1 | 2 | 4 | 8) || f.name == "__syscall_nr" {
            continue;
        }
        if f.name == "ret" {
            config.ret = loc(f);
        } else if names.len() < MAX_ARGS {
            config.args[names.len()] = loc(f);
            names.push(f.name.clone());
        }
    }
    config.nargs = names.len() as u32;
    (config, names)
}

/// Where the 4-byte field `name` (a pid) is in the record, for `ProbeConfig::subject_pid`.
#[must_use]
pub fn subject_pid(fields: &[Field], name: &str) -> Option<FieldLoc> {
    fields
        .iter()
        .find(|f| f.name == name && f.size == 4)
        .map(|f| FieldLoc {
            offset: f.offset,
            size: 4,
            signed: u8::from(f.signed),
        })
}

/// How each named argument is shown: `x` hex (pointers, arrays), `d` signed decimal, `i`
/// signed 32-bit decimal (a C `int`, which syscall tracepoints widen to an 8-byte field marked
/// unsigned: `int dfd` holds -100 as 0xffffff9c), `u` unsigned decimal. The event keeps the raw
/// field bits either way.
#[must_use]
pub fn arg_formats(fields: &[Field], names: &[String]) -> String {
    names
        .iter()
        .map(|n| match fields.iter().find(|f| &f.name == n) {
            Some(f) if f.c_type.contains('*') => 'x',
            Some(f) if f.c_type == "int" || (f.signed && f.size == 4) => 'i',
            Some(f) if f.signed => 'd',
            Some(_) => 'u',
            None => 'x',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOSE: &str = "name: sys_enter_close\nID: 776\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:0;\n\
\tfield:long ret;\toffset:48;\tsize:8;\tsigned:1;\n\nprint fmt: \"fd: 0x%08lx\"\n";

    const EXEC: &str = "name: sched_process_exec\nformat:\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n";

    #[test]
    fn data_loc_fields_keep_their_name() {
        let fields = parse_format(EXEC);
        assert_eq!(fields[0].name, "filename");
        assert_eq!(fields[0].c_type, "__data_loc char[]");
        assert_eq!(fields[1].name, "pid");
    }

    #[test]
    fn parses_fields_and_config() {
        let fields = parse_format(CLOSE);
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["__syscall_nr", "fd", "filename", "comm", "ret"]);
        assert_eq!(fields[1].c_type, "unsigned int");
        assert_eq!(fields[2].c_type, "const char *");
        assert!(fields[4].signed);
        let (config, args) = probe_config(&fields);
        assert_eq!(args, ["fd", "filename"]);
        assert_eq!(arg_formats(&fields, &args), "ux");
        let dfd = Field {
            name: "dfd".into(),
            c_type: "int".into(),
            offset: 16,
            size: 8,
            signed: false,
        };
        assert_eq!(arg_formats(&[dfd], &["dfd".into()]), "i");
        assert_eq!(config.nargs, 2);
        assert_eq!(
            config.args[0],
            FieldLoc {
                offset: 16,
                size: 8,
                signed: 0
            }
        );
        assert_eq!(
            config.ret,
            FieldLoc {
                offset: 48,
                size: 8,
                signed: 1
            }
        );
    }

    #[test]
    fn unknown_tracepoint_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("snapshot-tracefs-{}", std::process::id()));
        let err = read_fields(&dir, "syscalls", "nope").unwrap_err();
        assert!(
            err.to_string().contains("no tracepoint `syscalls:nope`"),
            "{err}"
        );
    }
}
