//! The running system, as every layer may need it: root, clocks, command names, and output
//! files opened as if their directory were hostile.

pub mod bpf;

use std::{
    fs::File,
    io,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::Path,
};

/// True when the process runs as root (needed to load programs and read kallsyms).
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Reads `clock` (`CLOCK_BOOTTIME`, `CLOCK_REALTIME`, …) in ns.
#[must_use]
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec; the clocks used here exist on Linux.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `CLOCK_BOOTTIME` in ns: the clock of every event's timestamp (`bpf_ktime_get_boot_ns`).
#[must_use]
pub fn boot_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

/// A task's command name (NUL padded, as the kernel keeps it) as text.
#[must_use]
pub fn comm_str(comm: &[u8]) -> String {
    let n = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..n]).into_owned()
}

/// Why an output stream was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Opening failed.
    #[error("cannot open {path} for writing: {source}")]
    Open {
        /// The path.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// The path is a symbolic link to something other than a pipe or a terminal.
    #[error(
        "{0} is a symbolic link to a file: refusing to write through it; give the file's own path"
    )]
    Link(String),
    /// The path is neither a regular file, a pipe nor a character device.
    #[error("{0} is not a regular file, a pipe or a terminal: give another path")]
    Special(String),
}

/// Opens `path` to append to it, as a user-named output stream (JSON lines): a regular file is
/// created (mode 0600) or appended to without following a symbolic link at its name; a pipe
/// or a character device (a terminal, `/dev/null`) is written through, also through a link
/// (`/dev/stdout`, `/dev/fd/3`); anything else is refused before a byte is written.
pub fn open_append(path: &Path) -> Result<File, OutputError> {
    let shown = || path.display().to_string();
    let open_err = |source| OutputError::Open {
        path: shown(),
        source,
    };
    let is_link = path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink());
    let mut options = File::options();
    options.append(true);
    if !is_link {
        options
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path).map_err(open_err)?;
    let kind = file.metadata().map_err(open_err)?.file_type();
    if kind.is_fifo() || kind.is_char_device() {
        return Ok(file);
    }
    if is_link {
        return Err(OutputError::Link(shown()));
    }
    if !kind.is_file() {
        return Err(OutputError::Special(shown()));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_streams_refuse_links_to_files_and_write_through_devices() {
        let dir = std::env::temp_dir().join(format!("snapshot-sys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("out.jsonl");
        drop(open_append(&file).unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(&file.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = open_append(&link).unwrap_err();
        assert!(matches!(err, OutputError::Link(_)), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let null = dir.join("null");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        assert!(
            open_append(&null).is_ok(),
            "a link to a character device is written through"
        );
        assert!(matches!(
            open_append(&dir),
            Err(OutputError::Open { .. } | OutputError::Special(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
