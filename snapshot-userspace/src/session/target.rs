//! What is recorded: an existing process, or a command started here and held until every
//! probe is attached (so its first events are not lost).

use std::{
    ffi::{OsStr, OsString},
    fs::File,
    io::{self, Read as _, Write as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
};

/// Which tasks are recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Every task but the controller.
    All,
    /// These processes (tgids), every thread.
    Processes(Vec<u32>),
    /// One thread.
    Thread(u32),
    /// Tasks with this command name.
    Comm(String),
}

/// Why a comm target was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "--comm `{0}` is longer than the kernel's 15-character command names: give its first 15 characters"
)]
pub struct CommTooLong(pub String);

/// What the user asked to record (`--pid`, `--tid`, `--comm`, `-- CMD`, or nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// Every thread of a running process.
    Pid(u32),
    /// One thread.
    Tid(u32),
    /// Every task with this command name.
    Comm(String),
    /// A command started here, held until every probe is attached.
    Command(Vec<OsString>),
    /// Every process on the system.
    System,
}

/// A target ready to record: the in-kernel filter, what ends the recording, and the held
/// command to release once the probes are attached.
pub struct Prepared {
    /// The filter.
    pub targets: Targets,
    /// What ends the recording when the target goes away.
    pub watch: Watch,
    /// The held command, if one was started.
    pub held: Option<Held>,
}

impl TargetSpec {
    /// Checks the target exists (or starts the command, held, with its standard output sent
    /// to `command_stdout`) and says how it is filtered and watched.
    pub fn prepare(&self, command_stdout: std::process::Stdio) -> anyhow::Result<Prepared> {
        use anyhow::Context as _;
        let proc = Path::new("/proc");
        Ok(match self {
            Self::Pid(pid) => {
                if !pid_exists(proc, *pid) {
                    return Err(TargetError::NoSuchPid(*pid).into());
                }
                let fd = PidFd::open(*pid).map_err(|_| TargetError::NoSuchPid(*pid))?;
                Prepared {
                    targets: Targets::Processes(vec![*pid]),
                    watch: Watch::Process(fd, *pid),
                    held: None,
                }
            }
            Self::Tid(tid) => {
                let tgid = thread_group(proc, *tid).ok_or(TargetError::NoSuchTid(*tid))?;
                Prepared {
                    targets: Targets::Thread(*tid),
                    watch: Watch::Thread(
                        proc.join(tgid.to_string())
                            .join("task")
                            .join(tid.to_string()),
                    ),
                    held: None,
                }
            }
            Self::Comm(comm) => {
                log::info!("recording every task named `{comm}` until Ctrl-C");
                Prepared {
                    targets: Targets::Comm(comm.clone()),
                    watch: Watch::Never,
                    held: None,
                }
            }
            Self::Command(argv) => {
                let held = Held::spawn_with(argv, command_stdout)?;
                let pid = held.pid();
                let fd = PidFd::open(pid).with_context(|| format!("cannot watch pid {pid}"))?;
                Prepared {
                    targets: Targets::Processes(vec![pid]),
                    watch: Watch::Process(fd, pid),
                    held: Some(held),
                }
            }
            Self::System => {
                log::warn!(
                    "no --pid, --tid, --comm or command: recording every process on the system (high volume)"
                );
                Prepared {
                    targets: Targets::All,
                    watch: Watch::Never,
                    held: None,
                }
            }
        })
    }
}

/// Hidden first argument that turns the binary into the exec shim of a held command.
pub const HELD_EXEC: &str = "__exec-held";

/// Why a target could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `--pid` names no process.
    #[error("no process with pid {0}: check the pid with `ps -p {0}`")]
    NoSuchPid(u32),
    /// `--tid` names no thread.
    #[error("no thread with tid {0}: list threads with `ps -eLf`")]
    NoSuchTid(u32),
    /// The process went away while the probes were being attached.
    #[error(
        "process {0} exited while the probes were being attached: nothing was recorded; start it with `snapshot record … -- CMD` so it waits for the probes"
    )]
    ExitedDuringAttach(u32),
    /// The command is not found or not executable.
    #[error("cannot run `{0}`: not found in PATH or not executable")]
    NotFound(String),
    /// Starting the command failed.
    #[error("cannot start `{cmd}`")]
    Spawn {
        /// The command.
        cmd: String,
        /// Cause.
        source: io::Error,
    },
}

/// True when `/proc/PID` (under `proc_root`) exists.
#[must_use]
pub fn pid_exists(proc_root: &Path, pid: u32) -> bool {
    proc_root.join(pid.to_string()).is_dir()
}

/// Finds an executable the way `execvp` would.
#[must_use]
pub fn find_executable(cmd: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let cmd_path = Path::new(cmd);
    if cmd_path.components().count() > 1 || cmd.to_string_lossy().contains('/') {
        return executable(cmd_path).then(|| cmd_path.to_path_buf());
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(cmd))
        .find(|p| executable(p))
}

/// A command started but held before `exec` until [`Held::release`].
pub struct Held {
    child: Child,
    go: Option<File>,
}

impl Held {
    /// Starts `argv` held: the child is this binary waiting on a pipe, which then execs the
    /// command in place (same pid), so the pid is known and filtered before the command runs.
    pub fn spawn(argv: &[OsString]) -> Result<Self, TargetError> {
        Self::spawn_with(argv, std::process::Stdio::inherit())
    }

    /// As [`Self::spawn`], with the command's standard output sent to `stdout`.
    pub fn spawn_with(argv: &[OsString], stdout: std::process::Stdio) -> Result<Self, TargetError> {
        let name = argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        find_executable(&argv[0], std::env::var_os("PATH").as_deref())
            .ok_or_else(|| TargetError::NotFound(name.clone()))?;
        let spawn_err = |source| TargetError::Spawn {
            cmd: name.clone(),
            source,
        };
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(spawn_err(io::Error::last_os_error()));
        }
        // SAFETY: pipe2 returned two fresh fds that we now own.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let read_fd = read_end.as_raw_fd();
        let exe = std::env::current_exe().map_err(spawn_err)?;
        let mut cmd = Command::new(exe);
        cmd.arg(HELD_EXEC)
            .arg(read_fd.to_string())
            .arg("--")
            .args(argv);
        // SAFETY: only fcntl, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(read_fd, libc::F_SETFD, 0) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        let child = cmd.stdout(stdout).spawn().map_err(spawn_err)?;
        drop(read_end);
        Ok(Self {
            child,
            go: Some(File::from(write_end)),
        })
    }

    /// The command's pid (also its tgid).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the command run.
    pub fn release(&mut self) -> io::Result<()> {
        if let Some(mut go) = self.go.take() {
            go.write_all(b"g")?;
        }
        Ok(())
    }

    /// Waits for the command to finish (blocking).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Waits for the command and returns its captured standard output.
    pub fn wait_output(&mut self) -> io::Result<String> {
        let mut out = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            pipe.read_to_string(&mut out)?;
        }
        self.child.wait()?;
        Ok(out)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.go.take().is_some() {
            // Never released: recording failed to start. The shim exits on EOF without
            // running the command; reap it.
            let _ = self.child.wait();
        }
    }
}

/// Body of the exec shim: `HELD_EXEC FD -- CMD ARGS…`. Waits for the go byte, then execs.
/// Returns only on failure, with the exit code to use.
#[must_use]
pub fn held_exec_main(args: &[OsString]) -> i32 {
    let fd: Option<i32> = args.get(2).and_then(|a| a.to_str()?.parse().ok());
    let (Some(fd), Some(cmd)) = (fd, args.get(4..).filter(|c| !c.is_empty())) else {
        eprintln!("snapshot: {HELD_EXEC} is internal: usage {HELD_EXEC} FD -- CMD ARGS");
        return 2;
    };
    // SAFETY: the parent passed us this fd open and without CLOEXEC; we take ownership.
    let mut go = unsafe { File::from_raw_fd(fd) };
    let mut byte = [0u8; 1];
    if !matches!(go.read(&mut byte), Ok(1)) {
        // The recorder gave up before attaching: do not run the command.
        return 125;
    }
    // Closed by exec itself (no extra syscall recorded for the target before the command runs).
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(go.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    let err = Command::new(&cmd[0]).args(&cmd[1..]).exec();
    eprintln!("snapshot: cannot run `{}`: {err}", cmd[0].to_string_lossy());
    127
}

/// The thread group (process) of thread `tid`, from `/proc/TID/status` under `proc_root`.
#[must_use]
pub fn thread_group(proc_root: &Path, tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(proc_root.join(tid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:")?.trim().parse().ok())
}

/// True while the thread whose `/proc/TGID/task/TID` directory is `dir` runs (a zombie, whose
/// directory stays until it is reaped, counts as gone).
#[must_use]
pub fn thread_alive(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may contain spaces.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// What ends a recording when the target goes away.
pub enum Watch {
    /// A process (pidfd) and its pid.
    Process(PidFd, u32),
    /// A thread, polled through its /proc directory.
    Thread(PathBuf),
    /// Nothing (system-wide, by name): until a signal.
    Never,
}

impl Watch {
    /// Waits until the watched target is gone.
    pub async fn exited(self) -> io::Result<()> {
        match self {
            Self::Process(fd, _) => fd.exited().await,
            Self::Thread(dir) => {
                while thread_alive(&dir) {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Ok(())
            }
            Self::Never => std::future::pending().await,
        }
    }
}

/// A pidfd: readable once the process has exited.
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid`.
    pub fn open(pid: u32) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// True when the process has already exited (non-blocking).
    #[must_use]
    pub fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&raw mut pfd, 1, 0) == 1 }
    }

    /// Waits (asynchronously) until the process exits.
    pub async fn exited(self) -> io::Result<()> {
        // SAFETY: we own the pidfd and move it into the AsyncFd, which keeps it open until it is
        // dropped (deregistering first), as `register_with_interest` requires.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(self.0, tokio::io::Interest::READABLE)
        }
        .map_err(|e| e.into_parts().1)?;
        let _guard = fd.readable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_like_execvp() {
        assert!(
            find_executable(
                OsStr::new("sh"),
                Some(OsStr::new("/nonexistent:/bin:/usr/bin"))
            )
            .is_some()
        );
        assert!(
            find_executable(OsStr::new("no-such-command-xyz"), Some(OsStr::new("/bin"))).is_none()
        );
        assert!(find_executable(OsStr::new("/bin/sh"), None).is_some());
        let plain = std::env::temp_dir().join(format!("snapshot-plain-{}", std::process::id()));
        std::fs::write(&plain, b"not a program").unwrap();
        assert!(
            find_executable(plain.as_os_str(), None).is_none(),
            "mode 0644 is not executable"
        );
        std::fs::remove_file(&plain).unwrap();
    }

    #[test]
    fn zombies_are_not_alive() {
        let root = std::env::temp_dir().join(format!("snapshot-proc-z-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("stat"), "77 (a b) S 1 77").unwrap();
        assert!(thread_alive(&root));
        std::fs::write(root.join("stat"), "77 (a) b) Z 1 77").unwrap();
        assert!(!thread_alive(&root));
        std::fs::remove_dir_all(&root).unwrap();
        assert!(!thread_alive(&root));
    }

    #[test]
    fn thread_group_from_status() {
        let root = std::env::temp_dir().join(format!("snapshot-proc-tg-{}", std::process::id()));
        std::fs::create_dir_all(root.join("77")).unwrap();
        std::fs::write(root.join("77/status"), "Name:\tx\nTgid:\t70\nPid:\t77\n").unwrap();
        assert_eq!(thread_group(&root, 77), Some(70));
        assert_eq!(thread_group(&root, 78), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn pid_lookup_uses_the_given_proc_root() {
        let root = std::env::temp_dir().join(format!("snapshot-proc-{}", std::process::id()));
        std::fs::create_dir_all(root.join("42")).unwrap();
        assert!(pid_exists(&root, 42));
        assert!(!pid_exists(&root, 43));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
