//! The eBPF side's diagnostics: aya-log records from the rare branches of the flip (a trigger
//! won or missed, the stop policy engaged, a `--post` window closed; see
//! `snapshot-ebpf/src/flip.rs`), printed by the process's logger (`env_logger`, around the
//! status line) under the target [`LOG_TARGET`]: `RUST_LOG=debug` shows them.
//!
//! Level: [`kernel_level`] is what this process would print for that target. It is patched
//! into aya-log's read-only `AYA_LOG_LEVEL` at load, so below debug the verifier sees the
//! constant and removes the records' code (a call and a level check stay in each rare
//! branch), and [`KernelLog::start`] does not even open the ring.
//!
//! Reading: the records arrive in aya-log's `AYA_LOGS` ring buffer. A task of the tokio
//! runtime reads it whenever it becomes readable; [`KernelLog::flush`] reads it on demand (the
//! controller does before it handles a notice: the kernel logs before it notifies, so a
//! trigger's record prints before its snapshot), and dropping the [`KernelLog`] reads what is
//! left. Without a runtime (the benchmark) only those two read it.
//!
//! Nothing here can stop a recording: a missing ring or a runtime that cannot watch it is
//! warned about once (under [`LOG_TARGET`] too, so that `RUST_LOG=snapshot_ebpf=debug` shows
//! why nothing comes) and the recording goes on without the kernel's records.

use std::{
    os::fd::{AsRawFd, RawFd},
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use aya::Ebpf;
use aya_log::EbpfLogger;
use log::{Level, Metadata};
use snapshot_common::names::LOG_TARGET;
use tokio::{io::unix::AsyncFd, task::JoinHandle};

/// The most verbose level `enabled` accepts, as aya-log numbers levels (error 1 … trace 5);
/// 0: none.
fn most_verbose(enabled: impl Fn(Level) -> bool) -> u8 {
    [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ]
    .into_iter()
    .find(|&l| enabled(l))
    .map_or(0, |l| l as u8)
}

/// The level of the kernel side's records that this process prints (its logger's filter for
/// [`LOG_TARGET`], capped by `log::max_level`, which `--quiet` lowers); 0: none.
#[must_use]
pub fn kernel_level() -> u8 {
    most_verbose(|level| {
        level <= log::max_level()
            && log::logger().enabled(&Metadata::builder().level(level).target(LOG_TARGET).build())
    })
}

/// aya-log's reader, shared by the task that watches it and the final drain.
struct Reader {
    logger: Mutex<EbpfLogger<&'static dyn log::Log>>,
    /// The ring's fd (owned by `logger`), for the runtime to watch.
    fd: RawFd,
    /// Set when a record could not be decoded: reading stops (the same record would fail
    /// again).
    broken: AtomicBool,
}

impl AsRawFd for Reader {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Reader {
    /// Hands every record in the ring to the logger.
    fn drain(&self) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let mut logger = self.logger.lock().unwrap_or_else(PoisonError::into_inner);
        // aya-log panics on a record it cannot decode (an aya-log-ebpf of another version):
        // that must not end the recording.
        if std::panic::catch_unwind(AssertUnwindSafe(|| logger.flush())).is_err() {
            self.broken.store(true, Ordering::Relaxed);
            log::warn!(
                target: LOG_TARGET,
                "a record of the eBPF log could not be decoded (aya-log and aya-log-ebpf out of step?): the kernel side's debug records are no longer shown; rebuild with `cargo xtask build`"
            );
        }
    }
}

/// The kernel side's log, read while the recording runs.
pub struct KernelLog {
    reader: Arc<Reader>,
    task: Option<JoinHandle<()>>,
}

impl KernelLog {
    /// Starts reading the log of `ebpf`, whose programs must all be loaded already: aya-log
    /// takes the ring out of `ebpf` and, when it then fails (the ring cannot be mapped), closes
    /// it, and a program loaded after that would refer to a closed fd. `None` when this
    /// process prints none of the kernel side's levels, or, with a warning, when the ring
    /// cannot be read.
    pub fn start(ebpf: &mut Ebpf) -> Option<Self> {
        if kernel_level() == 0 {
            return None;
        }
        let logger = match EbpfLogger::init(ebpf) {
            Ok(logger) => logger,
            Err(e) => {
                log::warn!(
                    target: LOG_TARGET,
                    "the kernel side's debug records cannot be shown ({e}); recording without them"
                );
                return None;
            }
        };
        let reader = Arc::new(Reader {
            fd: logger.as_raw_fd(),
            logger: Mutex::new(logger),
            broken: AtomicBool::new(false),
        });
        let task = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                // SAFETY: the fd belongs to the logger inside `reader`, which the AsyncFd keeps
                // alive (one reference of the Arc) and which never closes or replaces its map.
                match unsafe {
                    AsyncFd::register_with_interest(
                        Arc::clone(&reader),
                        tokio::io::Interest::READABLE,
                    )
                } {
                    Ok(fd) => Some(runtime.spawn(watch(fd))),
                    Err(e) => {
                        log::warn!(
                            target: LOG_TARGET,
                            "cannot watch the eBPF log ({}): the kernel side's debug records show only at exit",
                            e.into_parts().1
                        );
                        None
                    }
                }
            }
            Err(_) => None,
        };
        Some(Self { reader, task })
    }

    /// Prints the records the kernel side has written so far.
    pub fn flush(&self) {
        self.reader.drain();
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // What the programs wrote since the task last ran (they are detached by now when the
        // recorder closes).
        self.reader.drain();
    }
}

/// Reads the ring each time it becomes readable.
async fn watch(fd: AsyncFd<Arc<Reader>>) {
    loop {
        let mut guard = match fd.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                log::warn!(
                    target: LOG_TARGET,
                    "waiting on the eBPF log failed ({e}): the kernel side's debug records show only at exit"
                );
                return;
            }
        };
        guard.get_inner().drain();
        guard.clear_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_numbered_as_aya_log_numbers_them() {
        assert_eq!(most_verbose(|_| false), 0);
        assert_eq!(most_verbose(|l| l <= Level::Error), 1);
        assert_eq!(most_verbose(|l| l <= Level::Info), 3);
        assert_eq!(
            most_verbose(|l| l <= Level::Debug),
            aya_log::Level::Debug as u8
        );
        assert_eq!(most_verbose(|_| true), aya_log::Level::Trace as u8);
    }
}
