//! `snapshot record`: attach the probes, arm the spare, take a snapshot each time the trigger
//! fires (or on SIGUSR1 / `snapshot trigger`), until the target exits, Ctrl-C or SIGTERM.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use snapshot_common::{NoSparePolicy, Notice};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    controller::Controller,
    recorder::{Post, Recorder, RecorderConfig, Targets},
    size,
    spec::ProbeSpec,
    status::{self, ui::Ui},
    target::{Held, PidFd, TargetError, Watch, pid_exists, thread_group},
};

/// Name of the file in the output directory that holds the recorder's pid.
pub const PID_FILE: &str = ".recorder.pid";

/// `--on-no-spare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnNoSpare {
    /// Count the missed trigger and report it in the next snapshot.
    Skip,
    /// Write a marker, stop recording and export the live half as the final snapshot.
    Stop,
}

/// Arguments of `snapshot record`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
pub struct RecordArgs {
    /// Probe to attach, bpftrace style: kprobe:FUNC[+OFF], kretprobe:FUNC, fentry:FUNC,
    /// fexit:FUNC, tracepoint:CAT:NAME, rawtp:NAME, uprobe:PATH:SYM[+OFF], uretprobe:PATH:SYM.
    /// Prefix NAME= to name it. Repeatable.
    #[arg(long = "probe", short = 'p', value_name = "SPEC", required = true)]
    pub probes: Vec<ProbeSpec>,
    /// Record this process (all its threads).
    #[arg(long, value_name = "PID", conflicts_with_all = ["command", "tid", "comm"])]
    pub pid: Option<u32>,
    /// Record this thread only.
    #[arg(long, value_name = "TID", conflicts_with_all = ["command", "comm"])]
    pub tid: Option<u32>,
    /// Record every task with this command name (as in /proc/PID/comm), until Ctrl-C.
    #[arg(long, value_name = "NAME", conflicts_with = "command")]
    pub comm: Option<String>,
    /// Also record the processes the targets create (children, grandchildren, …), from their
    /// first event.
    #[arg(long, conflicts_with_all = ["tid", "comm"])]
    pub follow_forks: bool,
    /// Keep recording after the target exits (until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub keep_going: bool,
    /// Refuse instead of falling back between kprobes and fentry/fexit.
    #[arg(long)]
    pub strict: bool,
    /// Most kernel functions one glob (`kprobe:vfs_*`) may attach to.
    #[arg(long, value_name = "N", default_value_t = crate::attach::DEFAULT_MAX_GLOB)]
    pub max_glob: usize,
    /// When to take a snapshot, checked in the kernel on every event; repeatable (any one
    /// firing takes it). `manual`, or conditions on fields: `PROBE.argN`, `PROBE.ret`,
    /// `PROBE.latency`, tracepoint fields by name, `pid`, `tid`, `cpu`, `comm`; operators
    /// `== != < <= > >= & && || !` and parentheses; literals 12, 0x1f, -3, -ENOENT, 10ms, 4K,
    /// "name"; `max(FIELD)` (new maximum), `changed(FIELD)`. Example:
    /// `sys_exit_read.ret < 0 && comm == "nginx"`.
    #[arg(long, value_name = "EXPR", required = true, value_parser = parse_trigger)]
    pub trigger: Vec<String>,
    /// Directory for the snapshot files (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Per-CPU size of each buffer half: bytes with K/M/G (`1M`) or events (`65536ev`).
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = size::parse_events)]
    pub buffer_size: u32,
    /// What a trigger does when the spare half is not armed yet.
    #[arg(long, value_enum, default_value = "skip")]
    pub on_no_spare: OnNoSpare,
    /// The trigger takes at most N snapshots (ftrace's `:N`); later triggers are ignored
    /// (manual snapshots still work).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Minimum time between two trigger snapshots (`10ms`, `2s`); triggers inside it are
    /// ignored.
    #[arg(long, value_name = "DURATION", value_parser = size::parse_duration)]
    pub holdoff: Option<u64>,
    /// Keep recording after a trigger before taking its snapshot, so that it shows what
    /// happened next too: N events (`100`) or a duration (`10ms`). Triggers inside the window
    /// belong to it.
    #[arg(long, value_name = "N|DURATION", default_value = "0", value_parser = size::parse_post, hide_default_value = true)]
    pub post: Post,
    /// Stop after writing this many snapshots.
    #[arg(long, value_name = "N")]
    pub max_snapshots: Option<u64>,
    /// At exit, also write the live half as a final snapshot.
    #[arg(long)]
    pub dump_on_exit: bool,
    /// Print one JSON line per snapshot written (for scripts).
    #[arg(long)]
    pub json: bool,
    /// No status line, no per-snapshot lines, no summary: only errors (and `--json` lines).
    #[arg(long, short)]
    pub quiet: bool,
    /// Command to start and record; it is held until every probe is attached.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Checks a trigger's syntax at parse time (names are checked once the probes are known).
fn parse_trigger(text: &str) -> Result<String, String> {
    if text.trim() == "manual" {
        return Ok(text.to_owned());
    }
    crate::expr::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("\n{e}"))
}

/// Creates the output directory and checks it is writable, before anything is attached.
fn prepare_out(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| {
            format!(
                "cannot create the output directory {}: choose another --out",
                dir.display()
            )
        })?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "the output directory {} is not writable: choose another --out or fix its permissions",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn parse_notice(bytes: &[u8]) -> Option<Notice> {
    (bytes.len() >= size_of::<Notice>())
        // SAFETY: at least one Notice of bytes; Notice is valid for any bit pattern.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Notice>()) })
}

/// Runs `snapshot record`; returns the process exit code.
pub async fn run(args: RecordArgs) -> anyhow::Result<i32> {
    if let Post::Events(n) = args.post
        && n >= u64::from(args.buffer_size)
    {
        anyhow::bail!(
            "--post {n} does not fit: the buffer holds {} events per CPU, so the events after the trigger would overwrite it; give a smaller --post or a larger --buffer-size",
            args.buffer_size
        );
    }
    let mut ui = Ui::new(args.quiet, args.json)?;
    prepare_out(&args.out)?;
    let mut held = None;
    let mut watch = Watch::Never;
    let targets = if let Some(pid) = args.pid {
        if !pid_exists(Path::new("/proc"), pid) {
            return Err(TargetError::NoSuchPid(pid).into());
        }
        watch = Watch::Process(
            PidFd::open(pid).map_err(|_| TargetError::NoSuchPid(pid))?,
            pid,
        );
        Targets::Processes(vec![pid])
    } else if let Some(tid) = args.tid {
        let tgid = thread_group(Path::new("/proc"), tid).ok_or(TargetError::NoSuchTid(tid))?;
        watch = Watch::Thread(
            Path::new("/proc")
                .join(tgid.to_string())
                .join("task")
                .join(tid.to_string()),
        );
        Targets::Thread(tid)
    } else if let Some(comm) = &args.comm {
        log::info!("recording every task named `{comm}` until Ctrl-C");
        Targets::Comm(comm.clone())
    } else if !args.command.is_empty() {
        let h = Held::spawn(&args.command)?;
        let pid = h.pid();
        watch = Watch::Process(
            PidFd::open(pid).with_context(|| format!("cannot watch pid {pid}"))?,
            pid,
        );
        held = Some(h);
        Targets::Processes(vec![pid])
    } else {
        log::warn!(
            "no --pid, --tid, --comm or command: recording every process on the system (high volume)"
        );
        Targets::All
    };
    let policy = match args.on_no_spare {
        OnNoSpare::Skip => NoSparePolicy::Skip,
        OnNoSpare::Stop => NoSparePolicy::Stop,
    };
    let trigger_text = args.trigger.join(" || ");
    let recorder = Recorder::start(&RecorderConfig {
        specs: &args.probes,
        capacity: args.buffer_size,
        targets: &targets,
        follow_forks: args.follow_forks,
        strict: args.strict,
        max_glob: args.max_glob,
        count: args.count.unwrap_or(0),
        holdoff_ns: args.holdoff.unwrap_or(0),
        post: args.post,
        policy,
        triggers: &args.trigger,
    })?;
    if let Some(ms) = std::env::var("SNAPSHOT_TEST_ATTACH_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // Test switch: widens the window in which a --pid target can exit during attach.
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if let Watch::Process(fd, pid) = &watch
        && held.is_none()
        && fd.has_exited()
    {
        recorder.close();
        return Err(TargetError::ExitedDuringAttach(*pid).into());
    }
    let mut controller = Controller::new(recorder, &args.out, &trigger_text, policy, args.post);
    let ring = controller.recorder_mut().take_notify()?;
    // SAFETY: the ring buffer owns its map fd and is moved into the AsyncFd, which keeps it
    // open until it is dropped (after deregistration).
    let mut ring = unsafe { tokio::io::unix::AsyncFd::register(ring) }
        .map_err(|e| e.into_parts().1)
        .context("cannot watch the notification ring buffer")?;
    let pid_file = args.out.join(PID_FILE);
    std::fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    if let Some(h) = held.as_mut() {
        h.release().context("cannot release the held command")?;
    }
    log::info!(
        "recording: {} probe(s), trigger `{trigger_text}`, snapshots into {} (SIGUSR1 or `snapshot trigger {}` takes one now)",
        controller.probes().len(),
        args.out.display(),
        args.out.display()
    );

    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigusr1 =
        signal(SignalKind::user_defined1()).context("cannot install the SIGUSR1 handler")?;
    let keep_going = args.keep_going;
    let exited = async move {
        if keep_going {
            return std::future::pending().await;
        }
        watch.exited().await
    };
    tokio::pin!(exited);
    let mut refresh = tokio::time::interval(status::PERIOD);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let why = loop {
        let max_reached = args
            .max_snapshots
            .is_some_and(|m| controller.totals().snapshots >= m);
        if max_reached {
            break "--max-snapshots reached".to_owned();
        }
        if controller.stopped() {
            break "a trigger found no armed spare (--on-no-spare stop)".to_owned();
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
                    for w in controller.on_notice(&n) {
                        ui.report(&w);
                    }
                }
            }
            () = post_deadline(controller.window_until()) => {
                for w in controller.close_window() {
                    ui.report(&w);
                }
            }
            _ = refresh.tick(), if ui.status_shown() => ui.tick(&controller.live()),
            _ = sigusr1.recv() => {
                for w in controller.manual() {
                    ui.report(&w);
                }
            }
            r = &mut exited => { r.context("waiting for the target failed")?; break "target exited".to_owned(); }
            _ = sigint.recv() => break "SIGINT received".to_owned(),
            _ = sigterm.recv() => break "SIGTERM received".to_owned(),
        }
    };
    // Notices that arrived with the stop are still handled: nothing captured is dropped.
    controller.stop_writers();
    let mut late = Vec::new();
    while let Some(item) = ring.get_mut().next() {
        late.extend(parse_notice(&item));
    }
    for n in late {
        for w in controller.on_notice(&n) {
            ui.report(&w);
        }
    }
    let (totals, written, unwritten) = controller.finish(args.dump_on_exit);
    for w in &written {
        ui.report(w);
    }
    let _ = std::fs::remove_file(&pid_file);
    let status = match held.as_mut() {
        Some(h) if why == "target exited" => h.wait().ok().map(|s| format!(" ({s})")),
        _ => None,
    };
    ui.summary(&format!("{why}{}", status.unwrap_or_default()), &totals);
    if unwritten > 0 {
        anyhow::bail!(
            "{unwritten} snapshot(s) could not be written to {}: free space or fix permissions and record again",
            args.out.display()
        );
    }
    Ok(0)
}

/// Sleeps until a `--post DURATION` window ends (boot-time ns), or forever when none is open.
async fn post_deadline(until: Option<u64>) {
    let Some(until) = until else {
        return std::future::pending().await;
    };
    let now = crate::snapfile::clock_ns(libc::CLOCK_BOOTTIME);
    // A little past the end: an event after it normally closes the window first.
    let wait = until.saturating_sub(now) + 1_000_000;
    tokio::time::sleep(std::time::Duration::from_nanos(wait)).await;
}
