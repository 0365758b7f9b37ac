//! Manual snapshot requests: SIGUSR1, and `snapshot trigger` through the recorder's socket.
//!
//! * **SIGUSR1** is blocked in every thread from the start of the program (`main`), so an
//!   early signal can never kill the recorder; a thread of its own takes each one with
//!   `sigwaitinfo` and queues a request. Signals the kernel merges (two sent before the first
//!   is taken) are one request: `snapshot trigger` is the exact way.
//! * **The socket** (`DIR/.recorder.sock`, mode 0600 in the private directory): each
//!   connection is one request, answered with one line saying what it did (a snapshot and its
//!   file, or why it was counted as a missed trigger). Only this user (or root) may connect.

use std::path::PathBuf;

use anyhow::Context as _;
use tokio::{
    net::{UnixListener, UnixStream},
    sync::mpsc,
};

use super::{Manual, Missed, Written};
use crate::{snapshot::dir, sys};

/// One manual request.
pub enum Request {
    /// SIGUSR1.
    Signal,
    /// A `snapshot trigger` connection, to be answered.
    Socket(UnixStream),
}

/// The sources of manual requests of one recording.
pub struct Requests {
    signals: mpsc::UnboundedReceiver<()>,
    listener: UnixListener,
    socket: PathBuf,
}

impl Requests {
    /// Starts taking SIGUSR1 (blocked since `main`) on a thread of its own, and listens on
    /// the socket in `out`.
    pub fn start(out: &dir::OutDir) -> anyhow::Result<Self> {
        let (tx, signals) = mpsc::unbounded_channel();
        sys::wait_signals(libc::SIGUSR1, move || tx.send(()).is_ok())
            .context("cannot start the SIGUSR1 thread")?;
        let (listener, socket) = Self::listen(out)?;
        Ok(Self {
            signals,
            listener,
            socket,
        })
    }

    /// Listens on the socket in `out` instead (the directory was opened anew).
    pub fn rebind(&mut self, out: &dir::OutDir) -> anyhow::Result<()> {
        (self.listener, self.socket) = Self::listen(out)?;
        Ok(())
    }

    fn listen(out: &dir::OutDir) -> anyhow::Result<(UnixListener, PathBuf)> {
        let bind_at = out.dir().fd_path(dir::SOCKET);
        let socket = out.path().join(dir::SOCKET);
        let _ = out.dir().remove(dir::SOCKET);
        let std_listener = std::os::unix::net::UnixListener::bind(&bind_at)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        std::fs::set_permissions(
            &bind_at,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .with_context(|| format!("cannot make {} private", socket.display()))?;
        std_listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(std_listener)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        Ok((listener, socket))
    }

    /// The next request.
    pub async fn next(&mut self) -> Request {
        loop {
            tokio::select! {
                Some(()) = self.signals.recv() => return Request::Signal,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        // SAFETY: geteuid has no preconditions.
                        let me = unsafe { libc::geteuid() };
                        match stream.peer_cred() {
                            Ok(c) if c.uid() == me || c.uid() == 0 => {
                                return Request::Socket(stream);
                            }
                            _ => log::warn!(
                                "refused a request on {} from another user",
                                self.socket.display()
                            ),
                        }
                    }
                    Err(e) => log::warn!("cannot accept on {}: {e}", self.socket.display()),
                },
            }
        }
    }
}

/// The answer line of a socket request.
#[must_use]
pub fn answer(outcome: &Manual) -> String {
    match outcome {
        Manual::Taken(w) => snapshot_line(w),
        Manual::Missed(why) => missed_line(*why),
    }
}

fn snapshot_line(w: &Written) -> String {
    format!("snapshot {} {}\n", w.seq, w.path.display())
}

fn missed_line(why: Missed) -> String {
    format!("missed {why}\n")
}

/// Answers a socket request; a client that went away misses nothing (the snapshot is taken).
pub fn reply(stream: &UnixStream, outcome: &Manual) {
    let _ = stream.try_write(answer(outcome).as_bytes());
}
