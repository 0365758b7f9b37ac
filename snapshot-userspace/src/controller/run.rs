//! A recording from start to stop: prepare the target, start the session, install the trigger,
//! then react to flips, manual requests, `--post` deadlines and the status refresh until the
//! target exits, a signal arrives or a limit is reached; then drain what is left.
//!
//! What the user sees is not printed here: the caller's [`Reporter`] gets each snapshot
//! written and the live counters, and the [`Outcome`] at the end.

use std::{
    fmt,
    path::PathBuf,
    process::{ExitStatus, Stdio},
};

use anyhow::Context as _;
use snapshot_common::Notice;
use tokio::signal::unix::{SignalKind, signal};

use super::{
    Controller, Limits, Live, Manual, Totals, Written,
    exit::Unwritten,
    hooks::{self, Hooks},
    requests::{self, Request, Requests},
};
use crate::{
    probe::ProbeSpec,
    session::{
        Rules, Session, SessionConfig, SessionError,
        target::{TargetError, TargetSpec, Targets, Watch},
    },
    snapshot::dir::OutDir,
    sys,
    trigger::{self, Trigger},
};

/// Test switch: milliseconds to wait after attaching (widens the window in which a `--pid`
/// target can exit during attach).
pub const ATTACH_DELAY_ENV: &str = "SNAPSHOT_TEST_ATTACH_DELAY_MS";

/// Everything one recording needs, built once from the command line and passed down.
#[derive(Clone, Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches of a recording"
)]
pub struct Recording {
    /// Probe specs, in probe-id order.
    pub probes: Vec<ProbeSpec>,
    /// What is recorded.
    pub target: TargetSpec,
    /// Children of target processes become targets.
    pub follow_forks: bool,
    /// Keep recording after the target exits.
    pub keep_going: bool,
    /// Refuse instead of falling back between kprobes and fentry/fexit.
    pub strict: bool,
    /// Cap on the functions one glob may attach to.
    pub max_glob: usize,
    /// The triggers (any one firing takes a snapshot).
    pub triggers: Vec<Trigger>,
    /// Output directory.
    pub out: PathBuf,
    /// Accept an output directory other users can write to (`--allow-shared-out`).
    pub allow_shared_out: bool,
    /// Events per CPU per half.
    pub capacity: u32,
    /// `--string-size`: bytes kept per captured string (0: none captured).
    pub string_size: u32,
    /// How triggers take snapshots.
    pub rules: Rules,
    /// `--max-snapshots`, `--max-pending`.
    pub limits: Limits,
    /// At exit, also write the live half.
    pub dump_on_exit: bool,
    /// Send a started command's standard output to stderr (when stdout carries JSON lines).
    pub command_stdout_to_stderr: bool,
    /// `--on-snapshot`: shell command run with each snapshot file written.
    pub on_snapshot: Option<String>,
}

/// Why a recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `--max-snapshots` were written.
    MaxSnapshots,
    /// A trigger found no armed spare under `--on-no-spare stop`.
    NoSpare,
    /// The target exited (with the started command's status, when there was one).
    TargetExited(Option<ExitStatus>),
    /// SIGINT (Ctrl-C).
    Interrupted,
    /// SIGTERM.
    Terminated,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxSnapshots => f.write_str("--max-snapshots reached"),
            Self::NoSpare => f.write_str("a trigger found no armed spare (--on-no-spare stop)"),
            Self::TargetExited(None) => f.write_str("target exited"),
            Self::TargetExited(Some(status)) => write!(f, "target exited ({status})"),
            Self::Interrupted => f.write_str("SIGINT received"),
            Self::Terminated => f.write_str("SIGTERM received"),
        }
    }
}

/// How a recording ended.
#[derive(Debug)]
pub struct Outcome {
    /// Why it stopped.
    pub reason: StopReason,
    /// Totals over the whole recording.
    pub totals: Totals,
    /// Snapshots that could not be written.
    pub unwritten: Unwritten,
}

/// What the caller shows while recording.
pub trait Reporter {
    /// A snapshot was written (or could not be: it is then kept and retried).
    fn written(&mut self, w: &Written);
    /// Whether [`Self::status`] is wanted (the live counters are read for it).
    fn wants_status(&self) -> bool;
    /// The live counters, every [`STATUS_PERIOD`].
    fn status(&mut self, live: &Live);
}

/// How often the targets' memory maps are read while a crash or OOM trigger waits (see
/// [`crate::snapshot::symbols::MapsCache`]).
pub const MAPS_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

/// How often the live counters are reported.
pub const STATUS_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

fn parse_notice(bytes: &[u8]) -> Option<Notice> {
    (bytes.len() >= size_of::<Notice>())
        // SAFETY: at least one Notice of bytes; Notice is valid for any bit pattern.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Notice>()) })
}

/// Sleeps until a `--post DURATION` window ends (boot-time ns), or forever when none is open.
async fn post_deadline(until: Option<u64>) {
    let Some(until) = until else {
        return std::future::pending().await;
    };
    // A little past the end: an event after it normally closes the window first.
    let wait = until.saturating_sub(sys::boot_ns()) + 1_000_000;
    tokio::time::sleep(std::time::Duration::from_nanos(wait)).await;
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Logs what SIGHUP found at the output directory's path.
fn reopened(
    path: &std::path::Path,
    result: Result<crate::snapshot::dir::Reopened, crate::snapshot::dir::OutDirError>,
) {
    use crate::snapshot::dir::Reopened;
    let path = path.display();
    match result {
        Ok(Reopened::Same) => {
            log::info!(
                "SIGHUP: the output directory {path} is unchanged: still private and locked"
            );
        }
        Ok(Reopened::Recreated) => log::info!(
            "SIGHUP: the output directory {path} was gone: created it again (mode 0700) and locked it; numbering goes on"
        ),
        Ok(Reopened::Replaced) => log::info!(
            "SIGHUP: {path} is another directory now: checked and locked it; snapshots go there, numbering goes on"
        ),
        Err(e) => log::error!(
            "SIGHUP: cannot reopen the output directory: {e}; recording goes on (snapshots the disk refuses are kept in memory and retried)"
        ),
    }
}

/// Records until the target exits, a signal arrives or a limit is reached.
pub async fn run(rec: &Recording, reporter: &mut dyn Reporter) -> anyhow::Result<Outcome> {
    // Refused before anything is created. Built-in triggers (`crash`, `oom`) add their probes.
    let specs = trigger::builtin::with_probes(&rec.triggers, &rec.probes)?;
    if specs.is_empty() {
        anyhow::bail!(
            "nothing to record: give at least one --probe SPEC (e.g. `tracepoint:syscalls:sys_enter_openat`), or a built-in trigger that adds its own (`--trigger crash`, `oom`, `signal(SIGTERM)`)"
        );
    }
    crate::probe::spec::check_names(&specs)?;
    if !sys::is_root() {
        return Err(SessionError::NotRoot.into());
    }
    if let crate::session::Post::Events(n) = rec.rules.post
        && n >= u64::from(rec.capacity)
    {
        anyhow::bail!(
            "--post {n} does not fit: the buffer holds {} events per CPU, so the events after the trigger would overwrite it; give a smaller --post or a larger --buffer-size",
            rec.capacity
        );
    }
    let out = OutDir::prepare(&rec.out, rec.allow_shared_out)?;
    if out.cleaned() > 0 {
        log::info!(
            "removed {} temporary file(s) a killed recorder left in {}",
            out.cleaned(),
            rec.out.display()
        );
    }
    // Every way to ask for a snapshot or to stop is in place before anything is recorded.
    let mut requests = Requests::start(&out)?;
    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let command_stdout = if rec.command_stdout_to_stderr {
        let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr())
            .try_clone_to_owned()
            .context("cannot duplicate stderr for the command's output")?;
        Stdio::from(stderr)
    } else {
        Stdio::inherit()
    };
    let mut target = rec.target.prepare(command_stdout)?;
    // Compiled in this order, and the sequences numbered in it.
    let ordered = trigger::builtin::ordered(&rec.triggers);
    let session = Session::start(&SessionConfig {
        specs: &specs,
        capacity: rec.capacity,
        targets: &target.targets,
        follow_forks: rec.follow_forks,
        strict: rec.strict,
        max_glob: rec.max_glob,
        rules: rec.rules,
        string_size: rec.string_size,
        sequences: !trigger::sequences(&ordered).is_empty(),
        build_id_stacks: trigger::builtin::watches_deaths(&rec.triggers),
        trigger: &|probes| Ok(trigger::compile_sized(&ordered, probes, rec.string_size)?),
    })?;
    if let Some(ms) = std::env::var(ATTACH_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if let Watch::Process(fd, pid) = &target.watch
        && target.held.is_none()
        && fd.has_exited()
    {
        session.close();
        return Err(TargetError::ExitedDuringAttach(*pid).into());
    }
    let trigger_text = trigger::describe(&rec.triggers);
    let mut controller = Controller::with_sequences(
        session,
        out,
        (&trigger_text, trigger::sequences(&ordered)),
        rec.limits,
    );
    let ring = controller.session_mut().take_notify()?;
    // SAFETY: the ring buffer owns its map fd and is moved into the AsyncFd, which keeps it
    // open until it is dropped (after deregistration).
    let mut ring = unsafe { tokio::io::unix::AsyncFd::register(ring) }
        .map_err(|e| e.into_parts().1)
        .context("cannot watch the notification ring buffer")?;
    // Crash and OOM triggers: the targets' memory maps, read before anyone is told the
    // recorder records and kept fresh, for the user stacks of a process gone by the time its
    // trigger is handled.
    let maps_pids: Vec<u32> = if trigger::builtin::watches_deaths(&rec.triggers) {
        match &target.targets {
            Targets::Processes(pids) => pids.clone(),
            Targets::Thread(tid) => vec![*tid],
            Targets::All | Targets::Comm(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    controller.refresh_maps(maps_pids.iter().copied());
    if trigger::builtin::watches_deaths(&rec.triggers) {
        controller.note_files(&target_executables(&rec.target, &target.targets));
    }
    if let Err(e) = controller.out().write_pid_file() {
        log::warn!(
            "cannot write the pid file into {}: {e} (`snapshot trigger` still works)",
            rec.out.display()
        );
    }
    if let Some(h) = target.held.as_mut() {
        h.release().context("cannot release the held command")?;
    }
    log::info!(
        "recording: {} probe(s), trigger `{trigger_text}`, snapshots into {} (SIGUSR1 or `snapshot trigger {}` takes one now)",
        controller.probes().len(),
        rec.out.display(),
        rec.out.display()
    );

    let keep_going = rec.keep_going;
    let watch = std::mem::replace(&mut target.watch, Watch::Never);
    let exited = async move {
        if keep_going {
            return std::future::pending().await;
        }
        watch.exited().await
    };
    tokio::pin!(exited);
    let mut maps_refresh = tokio::time::interval(MAPS_PERIOD);
    maps_refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut refresh = tokio::time::interval(STATUS_PERIOD);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let report = |reporter: &mut dyn Reporter, written: Vec<Written>| {
        for w in &written {
            reporter.written(w);
        }
    };
    let mut hooks = Hooks::new(rec.on_snapshot.clone());
    let mut generation = controller.out().generation();
    let reason = loop {
        if controller.out().generation() != generation {
            // The directory was opened anew: `snapshot trigger` and `kill -USR1` find the
            // recorder there.
            generation = controller.out().generation();
            if let Err(e) = requests.rebind(controller.out()) {
                log::error!(
                    "{e:#}: `snapshot trigger` cannot reach this recorder (SIGUSR1 still works)"
                );
            }
            if let Err(e) = controller.out().write_pid_file() {
                log::warn!("cannot write the pid file into {}: {e}", rec.out.display());
            }
        }
        for path in controller.take_durable() {
            hooks.submit(path);
        }
        if controller.at_limit() {
            break StopReason::MaxSnapshots;
        }
        if controller.stopped() {
            break StopReason::NoSpare;
        }
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the notification ring failed")?;
                let mut notices = Vec::new();
                while let Some(item) = guard.get_inner_mut().next() {
                    notices.extend(parse_notice(&item));
                }
                guard.clear_ready();
                for n in notices {
                    report(reporter, controller.on_notice(&n));
                }
            }
            () = post_deadline(controller.window_until()) => {
                report(reporter, controller.close_window(false));
            }
            _ = refresh.tick(), if reporter.wants_status() => reporter.status(&controller.live()),
            _ = maps_refresh.tick(), if !maps_pids.is_empty() => {
                controller.refresh_maps(maps_pids.iter().copied());
            }
            () = sleep_until(controller.retry_at()) => controller.retry_pending(),
            () = hooks.reaped() => {}
            request = requests.next() => {
                let outcome = controller.manual();
                match &request {
                    Request::Socket(stream) => requests::reply(stream, &outcome),
                    Request::Signal => {}
                }
                match outcome {
                    Manual::Taken(w) => report(reporter, vec![w]),
                    Manual::Missed(why) => log::warn!("manual snapshot request counted as a missed trigger: {why}"),
                }
            }
            r = &mut exited => {
                r.context("waiting for the target failed")?;
                break StopReason::TargetExited(None);
            }
            _ = sigint.recv() => break StopReason::Interrupted,
            _ = sigterm.recv() => break StopReason::Terminated,
            _ = sighup.recv() => reopened(&rec.out, controller.reopen_out()),
        }
    };
    // Notices that arrived with the stop are still handled: nothing captured is dropped.
    controller.stop_writers();
    let mut late = Vec::new();
    while let Some(item) = ring.get_mut().next() {
        late.extend(parse_notice(&item));
    }
    for n in late {
        report(reporter, controller.on_notice(&n));
    }
    // A stop policy seen only now still came first: recording stopped in the kernel before
    // the exit or the signal was noticed.
    let reason = if controller.at_limit() {
        StopReason::MaxSnapshots
    } else if controller.stopped() {
        StopReason::NoSpare
    } else {
        reason
    };
    for path in controller.take_durable() {
        hooks.submit(path);
    }
    let (totals, written, mut unwritten) = controller.finish(rec.dump_on_exit);
    report(reporter, written);
    for path in std::mem::take(&mut unwritten.durable) {
        hooks.submit(path);
    }
    hooks.finish(hooks::EXIT_GRACE).await;
    let reason = match (reason, target.held.as_mut()) {
        (StopReason::TargetExited(None), Some(h)) => StopReason::TargetExited(h.wait().ok()),
        (reason, _) => reason,
    };
    Ok(Outcome {
        reason,
        totals,
        unwritten,
    })
}

/// The executables of the targets known at start: the started command as `execvp` finds it
/// (its pid still runs this binary, held), and `/proc/PID/exe` of `--pid` and `--tid` targets.
fn target_executables(spec: &TargetSpec, targets: &Targets) -> Vec<std::path::PathBuf> {
    if let TargetSpec::Command(argv) = spec {
        return argv
            .first()
            .and_then(|cmd| {
                crate::session::target::find_executable(cmd, std::env::var_os("PATH").as_deref())
            })
            .and_then(|p| std::fs::canonicalize(p).ok())
            .into_iter()
            .collect();
    }
    let pids = match targets {
        Targets::Processes(pids) => pids.clone(),
        Targets::Thread(tid) => vec![*tid],
        Targets::All | Targets::Comm(_) => Vec::new(),
    };
    pids.iter()
        .filter_map(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok())
        .collect()
}
