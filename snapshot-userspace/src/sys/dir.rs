//! A directory opened once and used as if it were hostile: every file in it is created,
//! renamed and removed relative to the open directory (never through a path that could be
//! swapped), created with `O_EXCL | O_NOFOLLOW` and mode 0600, and never replaced unless the
//! caller says so.

use std::{
    ffi::{CString, OsStr, OsString},
    fs::File,
    io::{self, Write as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::{
            ffi::OsStrExt as _,
            fs::{FileTypeExt as _, MetadataExt as _},
        },
    },
    path::{Path, PathBuf},
};

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// A file name, refused when it is a path (the directory is the only place written).
fn name_of(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a file name"),
        ));
    }
    cstr(OsStr::new(name))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Dir {
    /// Opens the directory `path` (a link naming it is followed: the user named it).
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = cstr(path.as_os_str())?;
        // SAFETY: `c` is a valid NUL-terminated path; the returned fd is owned below.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(Self {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_owned(),
        })
    }

    /// The path it was opened by (for messages).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in it (for messages).
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A path reaching `name` through the open directory itself (`/proc/self/fd/N/name`), for
    /// the calls that take a path only (binding a socket): short, and immune to the
    /// directory's path being swapped.
    #[must_use]
    pub fn fd_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.fd.as_raw_fd()))
    }

    /// The directory's own metadata.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file()?.metadata()
    }

    /// The directory as a `File` (a duplicate of its descriptor).
    fn file(&self) -> io::Result<File> {
        Ok(File::from(self.fd.try_clone()?))
    }

    /// True once the directory has been removed (it has no name left).
    #[must_use]
    pub fn removed(&self) -> bool {
        self.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    /// Creates `name`, which must not exist (`O_EXCL | O_NOFOLLOW`, mode 0600), for writing.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        self.open_at(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        )
    }

    /// Opens `name` without following a link at it and without blocking on a FIFO, with
    /// `flags` (`O_RDONLY`, `O_RDWR | O_CREAT`, …; mode 0600 when created), and checks it is a
    /// regular file.
    pub fn open_regular(&self, name: &str, flags: libc::c_int) -> io::Result<File> {
        let file = self.open_at(name, flags | libc::O_NOFOLLOW | libc::O_NONBLOCK)?;
        let kind = file.metadata()?.file_type();
        if !kind.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file ({})",
                self.join(name).display(),
                describe(&kind)
            )));
        }
        Ok(file)
    }

    fn open_at(&self, name: &str, flags: libc::c_int) -> io::Result<File> {
        let c = name_of(name)?;
        // SAFETY: a valid directory fd and NUL-terminated name; the fd is owned below.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOCTTY,
                0o600,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// The metadata of `name` itself (a link is not followed).
    pub fn entry_metadata(&self, name: &str) -> io::Result<std::fs::Metadata> {
        self.join_fd(name).symlink_metadata()
    }

    fn join_fd(&self, name: &str) -> PathBuf {
        self.fd_path(name)
    }

    /// Renames `from` to `to`. Without `replace`, an existing `to` is never replaced
    /// (`RENAME_NOREPLACE`, or a hard link where the file system lacks it) and the error is
    /// `AlreadyExists`.
    pub fn rename(&self, from: &str, to: &str, replace: bool) -> io::Result<()> {
        let (f, t) = (name_of(from)?, name_of(to)?);
        let fd = self.fd.as_raw_fd();
        if replace {
            // SAFETY: valid directory fd and NUL-terminated names.
            check(unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) })?;
            return Ok(());
        }
        // By system call: musl (the static builds) has no `renameat2` wrapper.
        // SAFETY: as above.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                fd,
                f.as_ptr(),
                fd,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
        // No RENAME_NOREPLACE here: a hard link fails on an existing name just the same.
        // SAFETY: as above.
        check(unsafe { libc::linkat(fd, f.as_ptr(), fd, t.as_ptr(), 0) })?;
        self.remove(from)
    }

    /// Removes the entry `name` (a link is removed, not followed).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let c = name_of(name)?;
        // SAFETY: valid directory fd and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) })?;
        Ok(())
    }

    /// Makes the directory's entries durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file()?.sync_all()
    }

    /// The names in the directory with their types (links not followed).
    pub fn entries(&self) -> io::Result<Vec<(OsString, std::fs::FileType)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.fd_path(""))? {
            let entry = entry?;
            out.push((entry.file_name(), entry.file_type()?));
        }
        Ok(out)
    }

    /// Writes `parts` to a new file `name` atomically: a temporary `.NAME.tmp` created with
    /// `O_EXCL | O_NOFOLLOW` (one left by a killed writer is removed first), synced, renamed
    /// to `name` (replacing only with `replace`), then the directory synced. On error nothing
    /// is left behind.
    pub fn write_atomic(&self, name: &str, parts: &[&[u8]], replace: bool) -> io::Result<PathBuf> {
        let tmp = temporary_name(name);
        let _ = self.remove(&tmp);
        let result = (|| {
            let mut f = self.create_new(&tmp)?;
            for part in parts {
                f.write_all(part)?;
            }
            f.sync_all()?;
            self.rename(&tmp, name, replace)?;
            self.sync()?;
            Ok(self.join(name))
        })();
        if result.is_err() {
            let _ = self.remove(&tmp);
        }
        result
    }
}

/// The temporary name [`Dir::write_atomic`] writes `name` under.
#[must_use]
pub fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// What kind of file `kind` is, for messages.
#[must_use]
pub fn describe(kind: &std::fs::FileType) -> &'static str {
    if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Who else may write into a directory (`mode 0777: every user`): `None` when only its
/// owner (this user or root) can.
#[must_use]
pub fn others_can_write(meta: &std::fs::Metadata) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode();
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!("it belongs to uid {}", meta.uid()));
    }
    if mode & 0o002 != 0 {
        return Some(format!("mode {:04o}: every user", mode & 0o7777));
    }
    if mode & 0o020 != 0 {
        return Some(format!("mode {:04o}: group {}", mode & 0o7777, meta.gid()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("snapshot-dir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn atomic_writes_never_replace_unless_asked_and_leave_no_temporary() {
        let path = scratch("atomic");
        let dir = Dir::open(&path).unwrap();
        dir.write_atomic("a", &[b"one"], false).unwrap();
        let e = dir.write_atomic("a", &[b"two"], false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(path.join("a")).unwrap(), b"one");
        dir.write_atomic("a", &[b"two"], true).unwrap();
        assert_eq!(std::fs::read(path.join("a")).unwrap(), b"two");
        let names: Vec<_> = dir.entries().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a"]);
        // A link planted at the temporary name is removed, its target untouched.
        std::fs::write(path.join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(path.join("victim"), path.join(".b.tmp")).unwrap();
        dir.write_atomic("b", &[b"data"], false).unwrap();
        assert_eq!(std::fs::read(path.join("victim")).unwrap(), b"keep");
        assert!(dir.write_atomic("../escape", &[b"x"], false).is_err());
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn regular_files_only_and_removal_is_seen() {
        let path = scratch("regular");
        let dir = Dir::open(&path).unwrap();
        let fifo = CString::new(path.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = dir.open_regular("fifo", libc::O_RDONLY).unwrap_err();
        assert!(e.to_string().contains("not a regular file (a FIFO)"), "{e}");
        std::os::unix::fs::symlink("/etc/hostname", path.join("link")).unwrap();
        assert!(dir.open_regular("link", libc::O_RDONLY).is_err());
        assert!(!dir.removed());
        std::fs::remove_dir_all(&path).unwrap();
        assert!(dir.removed());
    }
}
