//! The running system, as every layer may need it: root, clocks, command names, and output
//! files opened as if their directory were hostile.

pub mod bpf;

use std::{
    fs::File,
    io,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
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

pub mod dir;

fn sigset(sig: libc::c_int) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset adds a valid signal number.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, sig);
        set
    }
}

/// Blocks `sig` in the calling thread, and so in every thread it starts afterwards: called
/// first thing in `main`, a signal sent at any later moment waits for [`wait_signals`]
/// instead of taking its default action (SIGUSR1's kills). Commands the program starts get an
/// empty mask back (the standard library resets it in the child).
pub fn block_signal(sig: libc::c_int) -> io::Result<()> {
    let set = sigset(sig);
    // SAFETY: a valid, initialised set; the old mask is not wanted.
    match unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Takes each `sig` (blocked with [`block_signal`]) on a thread of its own and calls
/// `on_signal`, until it returns false.
pub fn wait_signals(
    sig: libc::c_int,
    mut on_signal: impl FnMut() -> bool + Send + 'static,
) -> io::Result<()> {
    block_signal(sig)?;
    std::thread::Builder::new()
        .name(format!("signal-{sig}"))
        .spawn(move || {
            let set = sigset(sig);
            loop {
                // SAFETY: a valid set; the siginfo is not wanted.
                let got = unsafe { libc::sigwaitinfo(&raw const set, std::ptr::null_mut()) };
                if got == sig && !on_signal() {
                    return;
                }
            }
        })
        .map(drop)
}

/// Why an output was refused.
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
    /// The path is a directory.
    #[error("{0} is a directory: give a file path in it, e.g. {0}/out")]
    Directory(String),
    /// The path is neither a regular file, a pipe nor a character device.
    #[error("{0} is {1}, not a regular file, a pipe or a terminal: give another path")]
    Special(String, &'static str),
}

/// Where a user-named output goes, decided once by [`open_output`] for every command that
/// writes one (`--json-out`, `export -o`): one policy in one place.
#[derive(Debug)]
pub enum Output {
    /// `-`: standard output.
    Stdout,
    /// A pipe or a character device (a terminal, `/dev/null`), also through a link
    /// (`/dev/stdout`): written through, never replaced.
    Stream(File),
    /// A regular file, or nothing yet: the caller writes it (appends, or replaces it
    /// atomically); a link at the name is never followed.
    File(PathBuf),
}

/// Classifies the output `path` as [`Output`]: `-` is stdout; a pipe or a character device
/// (also through a symbolic link) is opened to be written through; a regular file or a name
/// not taken is left to the caller; a link to anything else, a directory (or a path ending
/// in `/`), a socket or a block device is refused before a byte is written.
pub fn open_output(path: &Path) -> Result<Output, OutputError> {
    let shown = || path.display().to_string();
    if path.as_os_str() == "-" {
        return Ok(Output::Stdout);
    }
    let open_err = |source| OutputError::Open {
        path: shown(),
        source,
    };
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(OutputError::Directory(
            shown().trim_end_matches('/').to_owned() + "/",
        ));
    }
    let link = match path.symlink_metadata() {
        Ok(m) => m.file_type().is_symlink(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Output::File(path.to_owned())),
        Err(e) => return Err(open_err(e)),
    };
    let kind = path.metadata().map_err(open_err)?.file_type();
    if kind.is_fifo() || kind.is_char_device() {
        let file = File::options()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .map_err(open_err)?;
        let now = file.metadata().map_err(open_err)?.file_type();
        if now.is_fifo() || now.is_char_device() {
            return Ok(Output::Stream(file));
        }
        return Err(OutputError::Special(shown(), dir::describe(&now)));
    }
    if link {
        return Err(OutputError::Link(shown()));
    }
    if kind.is_dir() {
        return Err(OutputError::Directory(shown()));
    }
    if !kind.is_file() {
        return Err(OutputError::Special(shown(), dir::describe(&kind)));
    }
    Ok(Output::File(path.to_owned()))
}

/// Opens `path` to append to it, as a user-named output stream (JSON lines), by the policy
/// of [`open_output`]: a regular file is created (mode 0600) or appended to without following
/// a symbolic link at its name; a pipe or a character device is written through; `-` is
/// standard output; anything else is refused before a byte is written.
pub fn open_append(path: &Path) -> Result<Output, OutputError> {
    let shown = || path.display().to_string();
    let open_err = |source| OutputError::Open {
        path: shown(),
        source,
    };
    let path = match open_output(path)? {
        Output::File(path) => path,
        other => return Ok(other),
    };
    let file = File::options()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                OutputError::Link(shown())
            } else {
                open_err(e)
            }
        })?;
    let kind = file.metadata().map_err(open_err)?.file_type();
    if kind.is_fifo() || kind.is_char_device() {
        return Ok(Output::Stream(file));
    }
    if !kind.is_file() {
        return Err(OutputError::Special(shown(), dir::describe(&kind)));
    }
    Ok(Output::Stream(file))
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
        assert!(matches!(open_append(Path::new("-")), Ok(Output::Stdout)));
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
        assert!(matches!(open_append(&dir), Err(OutputError::Directory(_))));
        let slash = PathBuf::from(format!("{}/", dir.display()));
        assert!(matches!(
            open_output(&slash),
            Err(OutputError::Directory(_))
        ));
        assert!(matches!(open_output(&file), Ok(Output::File(_))));
        assert!(matches!(open_output(&dir.join("new")), Ok(Output::File(_))));
        let sock = dir.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(
            open_output(&sock),
            Err(OutputError::Special(_, "a socket"))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
