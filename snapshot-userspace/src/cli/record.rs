//! `snapshot record`: attach the probes, run until the target exits (or Ctrl-C / SIGTERM),
//! then print the recorded events and the accounting.

use std::{ffi::OsString, io::Write as _, path::Path};

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    buffer::CpuAccount,
    event::{self, EventView},
    recorder::Recorder,
    size,
    spec::ProbeSpec,
    target::{Held, PidFd, TargetError, pid_exists},
};

/// Arguments of `snapshot record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Probe to attach, bpftrace style: kprobe:FUNC[+OFF], kretprobe:FUNC, fentry:FUNC,
    /// fexit:FUNC, tracepoint:CAT:NAME, rawtp:NAME, uprobe:PATH:SYM[+OFF], uretprobe:PATH:SYM.
    /// Prefix NAME= to name it. Repeatable.
    #[arg(long = "probe", short = 'p', value_name = "SPEC", required = true)]
    pub probes: Vec<ProbeSpec>,
    /// Record this process (all its threads).
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Per-CPU size of each buffer half: bytes with K/M/G (`1M`) or events (`65536ev`).
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = size::parse_events)]
    pub buffer_size: u32,
    /// Print events as JSON lines (one object per event) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Command to start and record; it is held until every probe is attached.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

enum Stop {
    TargetExited(Option<std::process::ExitStatus>),
    Signal(&'static str),
}

/// Runs `snapshot record`; returns the process exit code.
pub async fn run(args: RecordArgs) -> anyhow::Result<i32> {
    let mut held = None;
    let targets = if let Some(pid) = args.pid {
        if !pid_exists(Path::new("/proc"), pid) {
            return Err(TargetError::NoSuchPid(pid).into());
        }
        vec![pid]
    } else if !args.command.is_empty() {
        let h = Held::spawn(&args.command)?;
        let pid = h.pid();
        held = Some(h);
        vec![pid]
    } else {
        log::warn!("no --pid and no command: recording every process on the system (high volume)");
        Vec::new()
    };
    let mut recorder = Recorder::start(&args.probes, args.buffer_size, &targets)?;
    let pidfd = match targets.first() {
        Some(&pid) => Some(PidFd::open(pid).with_context(|| format!("cannot watch pid {pid}"))?),
        None => None,
    };
    if let Some(h) = held.as_mut() {
        h.release().context("cannot release the held command")?;
    }
    log::info!("recording: {} probe(s) attached", recorder.probes().len());

    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let exited = async {
        match pidfd {
            Some(fd) => fd.exited().await,
            None => std::future::pending().await,
        }
    };
    let stop = tokio::select! {
        r = exited => { r.context("waiting for the target failed")?; Stop::TargetExited(None) }
        _ = sigint.recv() => Stop::Signal("SIGINT"),
        _ = sigterm.recv() => Stop::Signal("SIGTERM"),
    };
    let (events, accounts) = recorder.stop_and_drain()?;
    let probes = recorder.probes().to_vec();
    recorder.close()?;
    let stop = match (stop, held.as_mut()) {
        (Stop::TargetExited(_), Some(h)) => Stop::TargetExited(h.wait().ok()),
        (s, _) => s,
    };

    let mut out = std::io::stdout().lock();
    for ev in &events {
        let v: EventView = event::view(ev, &probes);
        if args.json {
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        } else {
            let names = probes
                .iter()
                .find(|p| p.id == ev.probe_id)
                .map_or(&[][..], |p| p.arg_names.as_slice());
            writeln!(out, "{}", event::text_line(&v, names))?;
        }
    }
    out.flush()?;
    summary(&stop, &accounts);
    Ok(0)
}

fn summary(stop: &Stop, accounts: &[CpuAccount]) {
    let why = match stop {
        Stop::TargetExited(Some(status)) => format!("target exited ({status})"),
        Stop::TargetExited(None) => "target exited".to_owned(),
        Stop::Signal(s) => format!("{s} received"),
    };
    let sum = |f: fn(&CpuAccount) -> u64| accounts.iter().map(f).sum::<u64>();
    eprintln!(
        "snapshot: stopped: {why}; recorded {}, overwritten {}, dropped {}, torn {}",
        sum(|a| a.recorded),
        sum(|a| a.overwritten),
        sum(|a| a.dropped),
        sum(|a| a.torn)
    );
}
