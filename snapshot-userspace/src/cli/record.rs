//! `snapshot record`: the arguments, turned once into a [`Recording`] for the controller, and
//! what is printed while it runs (see [`super::status::ui`]).

use std::{ffi::OsString, path::PathBuf};

use clap::{Args, ValueEnum};
use snapshot_common::{
    NoSparePolicy,
    strings::{STRING_SIZE_DEFAULT, STRING_SIZE_MAX},
};

use super::status::ui::{JsonOut, Ui};
use crate::{
    controller::{self, Recording},
    probe::ProbeSpec,
    session::{Post, Rules, attach::DEFAULT_MAX_GLOB, target::TargetSpec},
    trigger::Trigger,
    units,
};

/// `--on-no-spare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnNoSpare {
    /// Count the missed trigger and report it in the next snapshot.
    Skip,
    /// Write a marker, stop recording and export the live half as the final snapshot.
    Stop,
}

impl From<OnNoSpare> for NoSparePolicy {
    fn from(v: OnNoSpare) -> Self {
        match v {
            OnNoSpare::Skip => Self::Skip,
            OnNoSpare::Stop => Self::Stop,
        }
    }
}

/// Arguments of `snapshot record`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools, reason = "command-line flags")]
pub struct RecordArgs {
    /// Probe to attach, bpftrace style: kprobe:FUNC[+OFF], kretprobe:FUNC, fentry:FUNC,
    /// fexit:FUNC, tracepoint:CAT:NAME, rawtp:NAME, uprobe:PATH:SYM[+OFF], uretprobe:PATH:SYM.
    /// Prefix NAME= to name it. Repeatable. Strings and buffers to capture follow in
    /// parentheses: FIELD:str (NUL-terminated) or FIELD:buf(LEN) (LEN: a field or bytes),
    /// FIELD being argN, ret or a field name, e.g. `kprobe:do_sys_openat2(arg1:str)`,
    /// `uprobe:/bin/x:f(arg0:str, arg1:buf(arg2))`, `uretprobe:/bin/bash:readline(ret:str)`.
    /// Tracepoint `const char *` and `__data_loc char[]` fields and fentry/fexit `char *`
    /// arguments are captured without asking.
    /// Optional with a built-in trigger (`crash`, `oom`, `signal(SIG)`), which adds its own.
    #[arg(long = "probe", short = 'p', value_name = "SPEC")]
    pub probes: Vec<ProbeSpec>,
    /// Record this process (all its threads).
    #[arg(long, value_name = "PID", conflicts_with_all = ["command", "tid", "comm"])]
    pub pid: Option<u32>,
    /// Record this thread only.
    #[arg(long, value_name = "TID", conflicts_with_all = ["command", "comm"])]
    pub tid: Option<u32>,
    /// Record every task with this command name (as in /proc/PID/comm), until Ctrl-C.
    #[arg(long, value_name = "NAME", conflicts_with = "command", value_parser = parse_comm)]
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
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_GLOB)]
    pub max_glob: usize,
    /// When to take a snapshot, checked in the kernel on every event; repeatable (any one
    /// firing takes it). `manual`, or conditions on fields: `PROBE.argN`, `PROBE.ret`,
    /// `PROBE.latency`, tracepoint fields by name, `pid`, `tid`, `cpu`, `comm`; operators
    /// `== != < <= > >= & && || !` and parentheses; literals 12, 0x1f, -3, -ENOENT, 10ms, 4K,
    /// "name"; `max(FIELD)` (new maximum), `changed(FIELD)`. Captured strings and `comm`
    /// compare with `==`, `!=` and the globs `~` / `!~` (`*`, `?`; a prefix is `"/tmp/*"`).
    /// Example: `sys_exit_read.ret < 0 && comm == "nginx"`,
    /// `sys_enter_openat.filename ~ "/tmp/*.lock"`. Built-ins add their own probes and combine
    /// with the rest: `crash` (a target takes a fatal SIGSEGV, SIGBUS, SIGILL, SIGFPE,
    /// SIGABRT, SIGSYS or SIGTRAP: the snapshot is taken as the signal is delivered, with the
    /// faulting thread's stacks), `signal(SIGTERM)` (that signal delivered to a target, by name
    /// or number; the kernel delivers a fatal signal the target does not handle and that
    /// dumps no core as SIGKILL), `oom` (the OOM killer chose a victim while a target
    /// allocated).
    #[arg(
        long,
        value_name = "EXPR",
        required_unless_present = "config",
        value_parser = TriggerParser
    )]
    pub trigger: Vec<Trigger>,
    /// Directory for the snapshot files (created with mode 0700 if missing). One recorder at
    /// a time writes into it; numbering continues after the snapshots already there.
    #[arg(
        long,
        value_name = "DIR",
        required = false,
        required_unless_present = "config"
    )]
    pub out: PathBuf,
    /// Accept an --out directory that other users can write to (files are still created
    /// without following links and never replace anything).
    #[arg(long)]
    pub allow_shared_out: bool,
    /// Bytes kept per captured string or buffer (1 to 4096; 0 captures none). Longer ones are
    /// shown truncated (`"…"...`).
    #[arg(long, value_name = "BYTES", default_value_t = STRING_SIZE_DEFAULT, value_parser = parse_string_size)]
    pub string_size: u32,
    /// Per-CPU size of each buffer half: bytes with K/M/G (`1M`) or events (`65536ev`).
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = units::parse_events)]
    pub buffer_size: u32,
    /// What a trigger does when the spare half is not armed yet.
    #[arg(long, value_enum, default_value = "skip")]
    pub on_no_spare: OnNoSpare,
    /// The trigger takes at most N snapshots (ftrace's `:N`); later triggers are ignored
    /// (manual snapshots still work).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Minimum time between two trigger snapshots (`10ms`, `2s`); triggers inside it are
    /// ignored.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub holdoff: Option<u64>,
    /// Keep recording after a trigger before taking its snapshot, so that it shows what
    /// happened next too: N events (`100`) or a duration (`10ms`). Triggers inside the window
    /// belong to it.
    #[arg(
        long,
        value_name = "N|DURATION",
        default_value = "0",
        hide_default_value = true
    )]
    pub post: Post,
    /// Stop after taking this many snapshots (the exit snapshot of --dump-on-exit included):
    /// exactly N files.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_snapshots: Option<u64>,
    /// Most memory kept for snapshot files the disk refuses (full, removed, read-only) while
    /// they are retried; past it new snapshots are dropped and counted as lost. Default: 4
    /// buffer halves.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_bytes)]
    pub max_pending: Option<u64>,
    /// Keep the newest N snapshot files of the --out directory (earlier recordings' included):
    /// older ones are deleted, each logged. Unlike --max-snapshots, recording goes on.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: Option<u64>,
    /// Keep the snapshot files of the --out directory under SIZE bytes (K/M/G): the oldest are
    /// deleted, each logged, to make room before each write. With --keep or --max-disk set, a
    /// full disk deletes the oldest snapshots too, so the newest are kept.
    #[arg(long, value_name = "SIZE", value_parser = units::parse_bytes)]
    pub max_disk: Option<u64>,
    /// Run this shell command after each snapshot file is on disk, with the file's path as
    /// its last argument (`"$1"`, and in `SNAPSHOT_FILE`): e.g. an upload. It never holds up
    /// recording: at most 4 run at once (more wait), failures are logged with the exit status,
    /// and at exit the recorder waits 5 s for them, then leaves them running.
    #[arg(long, value_name = "CMD")]
    pub on_snapshot: Option<String>,
    /// At exit, also write the live half as a final snapshot.
    #[arg(long)]
    pub dump_on_exit: bool,
    /// Print one JSON line per snapshot written on stdout (for scripts). A command started
    /// with `-- CMD` then writes its own standard output to stderr, so stdout carries JSON
    /// lines only.
    #[arg(long)]
    pub json: bool,
    /// Write the JSON lines to FILE instead (appended; created with mode 0600; a pipe or a
    /// terminal is written through; `-` is stdout).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// No status line, no per-snapshot lines, no summary: only errors (and `--json` lines).
    #[arg(long, short)]
    pub quiet: bool,
    /// Read the options from this TOML file: each key is a long option without `--`
    /// (`buffer-size = "4M"`, `keep-going = true`, `probe = ["…", "…"]`) and `command` the
    /// command to start (`["prog", "arg"]`). Options on the command line override the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Command to start and record; it is held until every probe is attached.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A `--comm` name: not empty.
fn parse_comm(text: &str) -> Result<String, &'static str> {
    if text.is_empty() {
        Err("--comm needs a command name (as in /proc/PID/comm)")
    } else {
        Ok(text.to_owned())
    }
}

/// `--string-size`: 0 ..= `STRING_SIZE_MAX`.
fn parse_string_size(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n <= STRING_SIZE_MAX => Ok(n),
        _ => Err(format!(
            "`{text}` is not a string size: give 1 to {STRING_SIZE_MAX} bytes (64 is the default; 0 captures no strings)"
        )),
    }
}

/// Parses a `--trigger` once (names are checked against the probes when it is compiled). A
/// trigger that does not parse is refused with its own message, which quotes the expression
/// around the fault with a caret (clap's own would quote all of it, however long).
#[derive(Clone, Copy, Debug)]
struct TriggerParser;

impl clap::builder::TypedValueParser for TriggerParser {
    type Value = Trigger;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Trigger, clap::Error> {
        use clap::error::ErrorKind;
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(ErrorKind::InvalidUtf8, "--trigger is not valid UTF-8\n").with_cmd(cmd)
        })?;
        text.parse().map_err(|e| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid --trigger: {e}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

impl RecordArgs {
    /// What was asked to be recorded.
    fn target(&self) -> TargetSpec {
        if let Some(pid) = self.pid {
            TargetSpec::Pid(pid)
        } else if let Some(tid) = self.tid {
            TargetSpec::Tid(tid)
        } else if let Some(comm) = &self.comm {
            TargetSpec::Comm(comm.clone())
        } else if self.command.is_empty() {
            TargetSpec::System
        } else {
            TargetSpec::Command(self.command.clone())
        }
    }

    /// Where JSON lines go, if anywhere.
    fn json_out(&self) -> Option<JsonOut> {
        match &self.json_out {
            Some(path) if path.as_os_str() != "-" => Some(JsonOut::File(path.clone())),
            Some(_) => Some(JsonOut::Stdout),
            None => self.json.then_some(JsonOut::Stdout),
        }
    }

    /// The recording, declared once for every layer below.
    fn recording(&self) -> Recording {
        Recording {
            probes: self.probes.clone(),
            target: self.target(),
            follow_forks: self.follow_forks,
            keep_going: self.keep_going,
            strict: self.strict,
            max_glob: self.max_glob,
            triggers: self.trigger.clone(),
            out: self.out.clone(),
            allow_shared_out: self.allow_shared_out,
            capacity: self.buffer_size,
            string_size: self.string_size,
            rules: Rules {
                count: self.count.unwrap_or(0),
                holdoff_ns: self.holdoff.unwrap_or(0),
                post: self.post,
                on_no_spare: self.on_no_spare.into(),
            },
            limits: controller::Limits {
                max_snapshots: self.max_snapshots,
                max_pending: self.max_pending,
                keep: self.keep,
                max_disk: self.max_disk,
            },
            dump_on_exit: self.dump_on_exit,
            command_stdout_to_stderr: matches!(self.json_out(), Some(JsonOut::Stdout)),
            on_snapshot: self.on_snapshot.clone(),
        }
    }
}

/// Runs `snapshot record`; returns the process exit code.
pub async fn run(args: RecordArgs) -> anyhow::Result<i32> {
    let mut ui = Ui::new(args.quiet, args.json_out())?;
    let rec = args.recording();
    let outcome = controller::run(&rec, &mut ui).await?;
    ui.summary(&outcome.reason, &outcome.totals);
    let lost = &outcome.unwritten;
    if lost.lost > 0 {
        match &lost.why {
            Some(why) => anyhow::bail!(
                "{} snapshot(s) ({} events) could not be written to {} ({why}): free space or fix permissions and record again",
                lost.lost,
                outcome.totals.lost_events,
                rec.out.display(),
            ),
            None => anyhow::bail!(
                "{} snapshot(s) ({} events) were lost while {} refused writes and more than --max-pending waited; the file after each gap says how many: give more room or a larger --max-pending",
                lost.lost,
                outcome.totals.lost_events,
                rec.out.display(),
            ),
        }
    }
    Ok(0)
}
