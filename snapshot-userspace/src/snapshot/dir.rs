//! The recorder's `--out` directory: made private, locked for one recorder, numbered, and
//! written as if it were hostile.
//!
//! * **Private**: created with mode 0700; an existing one that another user can write to is
//!   refused unless the caller allows it (`--allow-shared-out`). Every file is created
//!   relative to the directory opened once (`O_EXCL | O_NOFOLLOW`, mode 0600), so neither a
//!   link planted in it nor a swapped path is followed.
//! * **One recorder**: [`LOCK_FILE`] holds a POSIX write lock for the recorder's life; a
//!   second recorder is refused with the first one's pid, which the kernel reports
//!   (`F_GETLK`). Under the lock, what a killed recorder left (temporary files, its pid file,
//!   its socket) is removed.
//! * **No overwrite**: numbering continues after the highest `snapshot-NNNN-*.snap` present,
//!   and a snapshot is renamed into place without replacing anything.

use std::{
    fs::File,
    io,
    os::{
        fd::AsRawFd as _,
        unix::fs::{FileTypeExt as _, MetadataExt as _},
    },
    path::{Path, PathBuf},
};

use crate::sys::dir::{self, Dir};

/// The lock file a recorder holds (and the proof that only one writes into the directory).
pub const LOCK_FILE: &str = ".recorder.lock";
/// The recorder's pid, for `kill -USR1` (written once recording, removed at exit).
pub const PID_FILE: &str = ".recorder.pid";
/// The recorder's socket: `snapshot trigger` asks for a snapshot through it.
pub const SOCKET: &str = ".recorder.sock";

/// Why the output directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    /// It cannot be created or opened.
    #[error("cannot use the output directory {path}: {source}: choose another --out")]
    Open {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Another user can write into it.
    #[error(
        "the output directory {path} is not private: other users can write to it ({why}) and could plant links or files in it; choose a directory only you can write to (a new one is created with mode 0700), or pass --allow-shared-out to accept it"
    )]
    Shared {
        /// The directory.
        path: PathBuf,
        /// Who else can write.
        why: String,
    },
    /// Another recorder holds it.
    #[error(
        "another recorder{} is writing into {path}: stop it first or give another --out",
        pid.map_or_else(String::new, |p| format!(" (pid {p})"))
    )]
    Busy {
        /// The directory.
        path: PathBuf,
        /// The other recorder, when the kernel names it.
        pid: Option<i32>,
    },
    /// The lock file is not a plain file of ours.
    #[error("{path} is not a lock file of this user ({why}): remove it and record again")]
    BadLock {
        /// The lock file.
        path: PathBuf,
        /// What it is.
        why: String,
    },
    /// It cannot be written.
    #[error(
        "the output directory {path} is not writable ({source}): choose another --out or fix its permissions"
    )]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// The output directory of one recorder, locked for it.
#[derive(Debug)]
pub struct OutDir {
    dir: Dir,
    /// Holds the lock (POSIX locks go away with the last descriptor of the file).
    lock: File,
    path: PathBuf,
    allow_shared: bool,
    last_seq: u64,
    cleaned: usize,
    /// How many times the directory was opened anew ([`Self::reopen`]).
    generation: u64,
}

/// What [`OutDir::reopen_on_request`] found at the directory's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reopened {
    /// The same directory, still private and locked.
    Same,
    /// Nothing: it was created again.
    Recreated,
    /// Another directory: it was checked and locked.
    Replaced,
}

/// A snapshot file found in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Its sequence number.
    pub seq: u64,
    /// Its name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

/// The sequence number in a snapshot file name (`snapshot-0042-condition.snap` → 42).
#[must_use]
pub fn seq_of(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("snapshot-")?;
    let (digits, kind) = rest.split_once('-')?;
    kind.strip_suffix(".snap")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A temporary file a killed writer leaves (`.snapshot-0001-condition.snap.tmp`, a pid file's).
fn is_leftover(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .is_some_and(|n| seq_of(n).is_some() || n == PID_FILE)
}

/// The pid of the process holding a write lock on `file`, if one does.
fn lock_holder(file: &File) -> Option<i32> {
    // SAFETY: a zeroed flock is a valid value; the fields are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_GETLK on an open fd with a valid flock.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &raw mut fl) };
    (r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

/// Takes the write lock on `file`; `Err(Some(pid))` when another process holds it.
fn take_lock(file: &File) -> Result<(), Option<i32>> {
    // SAFETY: a zeroed flock is a valid value; the fields are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_SETLK on an open fd with a valid flock.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &raw const fl) } == 0 {
        return Ok(());
    }
    Err(lock_holder(file))
}

impl OutDir {
    /// Creates `path` if missing (mode 0700), checks that only this user (or root) can write
    /// into it (unless `allow_shared`), locks it for this recorder, removes what a killed
    /// recorder left, and finds where numbering continues.
    pub fn prepare(path: &Path, allow_shared: bool) -> Result<Self, OutDirError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let open_err = |source| OutDirError::Open {
            path: path.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(open_err)?;
        let dir = Dir::open(path).map_err(open_err)?;
        let meta = dir.metadata().map_err(open_err)?;
        if let Some(why) = dir::others_can_write(&meta)
            && !allow_shared
        {
            return Err(OutDirError::Shared {
                path: path.to_owned(),
                why,
            });
        }
        let lock_path = path.join(LOCK_FILE);
        let bad_lock = |why: String| OutDirError::BadLock {
            path: lock_path.clone(),
            why,
        };
        let lock = dir
            .open_regular(LOCK_FILE, libc::O_RDWR | libc::O_CREAT)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => bad_lock("a symbolic link".into()),
                _ => bad_lock(e.to_string()),
            })?;
        let m = lock.metadata().map_err(|e| bad_lock(e.to_string()))?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if m.uid() != me || m.nlink() != 1 {
            return Err(bad_lock(format!(
                "owner uid {}, {} links",
                m.uid(),
                m.nlink()
            )));
        }
        take_lock(&lock).map_err(|pid| OutDirError::Busy {
            path: path.to_owned(),
            pid,
        })?;
        let mut out = Self {
            dir,
            lock,
            path: path.to_owned(),
            allow_shared,
            last_seq: 0,
            cleaned: 0,
            generation: 0,
        };
        out.scan()?;
        Ok(out)
    }

    /// Under the lock: removes what a killed recorder left, checks the directory takes new
    /// files, and finds the highest snapshot number.
    fn scan(&mut self) -> Result<(), OutDirError> {
        let open_err = |source| OutDirError::Open {
            path: self.path.clone(),
            source,
        };
        for (name, kind) in self.dir.entries().map_err(open_err)? {
            let Some(name) = name.to_str() else { continue };
            if let Some(seq) = seq_of(name) {
                self.last_seq = self.last_seq.max(seq);
            } else if is_leftover(name) && !kind.is_dir() {
                if self.dir.remove(name).is_ok() {
                    self.cleaned += 1;
                }
            } else if (name == PID_FILE || name == SOCKET) && !kind.is_dir() {
                let _ = self.dir.remove(name);
            }
        }
        let probe = ".recorder.write-test";
        let _ = self.dir.remove(probe);
        self.dir
            .create_new(probe)
            .map_err(|source| OutDirError::NotWritable {
                path: self.path.clone(),
                source,
            })?;
        let _ = self.dir.remove(probe);
        Ok(())
    }

    /// Temporary files a killed recorder had left, removed by [`Self::prepare`].
    #[must_use]
    pub const fn cleaned(&self) -> usize {
        self.cleaned
    }

    /// The directory's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory.
    #[must_use]
    pub const fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The next sequence number (after every snapshot file present when recording started).
    pub const fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Writes a new file `name` atomically, never replacing one that exists.
    pub fn write(&self, name: &str, parts: &[&[u8]]) -> io::Result<PathBuf> {
        self.dir.write_atomic(name, parts, false)
    }

    /// Writes the pid file (atomically: readers see a whole pid or none).
    pub fn write_pid_file(&self) -> io::Result<()> {
        let pid = std::process::id().to_string();
        self.dir
            .write_atomic(PID_FILE, &[pid.as_bytes()], true)
            .map(drop)
    }

    /// Removes the pid file and the socket at exit.
    pub fn remove_markers(&self) {
        let _ = self.dir.remove(PID_FILE);
        let _ = self.dir.remove(SOCKET);
    }

    /// The snapshot files of this directory (named `snapshot-NNNN-KIND.snap`, regular files
    /// of this user with one link; links are not followed), oldest (lowest number) first.
    pub fn snapshots(&self) -> io::Result<Vec<SnapshotFile>> {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let mut found = Vec::new();
        for (name, kind) in self.dir.entries()? {
            let Some(name) = name.to_str() else { continue };
            let Some(seq) = seq_of(name) else { continue };
            if !kind.is_file() {
                continue;
            }
            let Ok(meta) = self.dir.entry_metadata(name) else {
                continue;
            };
            if meta.is_file() && meta.uid() == me && meta.nlink() == 1 {
                found.push(SnapshotFile {
                    seq,
                    name: name.to_owned(),
                    bytes: meta.len(),
                });
            }
        }
        found.sort_by(|a, b| (a.seq, &a.name).cmp(&(b.seq, &b.name)));
        Ok(found)
    }

    /// Deletes the snapshot file `name`: opened without following a link, and removed only
    /// when it is still a regular snapshot file of this user with one link.
    pub fn remove_snapshot(&self, name: &str) -> io::Result<()> {
        if seq_of(name).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is not a snapshot file name"),
            ));
        }
        let file = self.dir.open_regular(name, libc::O_RDONLY)?;
        let meta = file.metadata()?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me || meta.nlink() != 1 {
            return Err(io::Error::other(format!(
                "{} is not a snapshot file of this user (owner uid {}, {} links)",
                self.dir.join(name).display(),
                meta.uid(),
                meta.nlink()
            )));
        }
        let now = self.dir.entry_metadata(name)?;
        if now.ino() != meta.ino() || now.dev() != meta.dev() {
            return Err(io::Error::other(format!(
                "{} was replaced while being deleted",
                self.dir.join(name).display()
            )));
        }
        self.dir.remove(name)
    }

    /// True once the directory was removed while recording.
    #[must_use]
    pub fn removed(&self) -> bool {
        self.dir.removed()
    }

    /// After the directory was removed: prepares its path again (created anew, checked and
    /// locked as at the start); numbering goes on.
    pub fn reopen(&mut self) -> Result<(), OutDirError> {
        let next = Self::prepare(&self.path, self.allow_shared)?;
        let last = self.last_seq.max(next.last_seq);
        let generation = self.generation + 1;
        *self = next;
        self.last_seq = last;
        self.generation = generation;
        Ok(())
    }

    /// Counts the times the directory was opened anew: the recorder's socket and pid file
    /// are made again in it when this changes.
    #[must_use]
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// On request (SIGHUP): looks at the directory's path again. The same directory is
    /// checked again (still private, its lock file still the one held: a lock file removed
    /// or replaced is made again and locked); a directory removed is created again and one
    /// replaced is checked and locked as at the start ([`Self::reopen`]).
    pub fn reopen_on_request(&mut self) -> Result<Reopened, OutDirError> {
        let open_err = |source| OutDirError::Open {
            path: self.path.clone(),
            source,
        };
        let ours = self.dir.metadata().map_err(open_err)?;
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.reopen()?;
                return Ok(Reopened::Recreated);
            }
            Err(e) => return Err(open_err(e)),
        };
        if ours.nlink() == 0 || now.dev() != ours.dev() || now.ino() != ours.ino() {
            self.reopen()?;
            return Ok(Reopened::Replaced);
        }
        if let Some(why) = dir::others_can_write(&now)
            && !self.allow_shared
        {
            return Err(OutDirError::Shared {
                path: self.path.clone(),
                why,
            });
        }
        // Compared by name, never opened: closing a second descriptor of the lock file would
        // drop the lock.
        let held = self.lock.metadata().map_err(open_err)?;
        let same_lock = self
            .dir
            .entry_metadata(LOCK_FILE)
            .is_ok_and(|m| m.is_file() && m.ino() == held.ino() && m.dev() == held.dev());
        if !same_lock {
            log::warn!(
                "the lock file {} was removed or replaced: locking the directory again",
                self.path.join(LOCK_FILE).display()
            );
            self.reopen()?;
        }
        Ok(Reopened::Same)
    }
}

impl Drop for OutDir {
    /// The pid file and the socket go with the recorder, still under its lock (a next
    /// recorder's are never touched).
    fn drop(&mut self) {
        self.remove_markers();
    }
}

/// How `snapshot trigger` reaches the recorder of `path`: its socket, through the directory
/// opened once. Errors say whether any recorder holds the directory.
pub fn connect(path: &Path) -> Result<std::os::unix::net::UnixStream, ConnectError> {
    let dir = Dir::open(path).map_err(|source| ConnectError::Dir {
        path: path.to_owned(),
        source,
    })?;
    let none = || ConnectError::NoRecorder(path.to_owned());
    let meta = dir.entry_metadata(SOCKET).map_err(|_| none())?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_socket() || (meta.uid() != me && meta.uid() != 0) {
        return Err(none());
    }
    std::os::unix::net::UnixStream::connect(dir.fd_path(SOCKET)).map_err(|_| none())
}

/// Why `snapshot trigger` cannot reach a recorder.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The directory cannot be opened.
    #[error(
        "cannot open {path}: {source}: give the --out directory of a running `snapshot record`"
    )]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// No recorder listens there.
    #[error(
        "no recorder is writing into {0}: give the --out directory of a running `snapshot record`"
    )]
    NoRecorder(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(seq_of("snapshot-0042-condition.snap"), Some(42));
        assert_eq!(seq_of("snapshot-12345-exit.snap"), Some(12345));
        assert_eq!(seq_of("snapshot--exit.snap"), None);
        assert_eq!(seq_of("snapshot-00x1-exit.snap"), None);
        assert_eq!(seq_of("snapshot-0001-exit.snap.tmp"), None);
        assert!(is_leftover(".snapshot-0001-condition.snap.tmp"));
        assert!(is_leftover(&dir::temporary_name(PID_FILE)));
        assert!(!is_leftover(".other.tmp"));
        assert!(!is_leftover("snapshot-0001-condition.snap"));
    }
}
