//! The snapshot controller: arms the spare half, handles flips (from the kernel or manual),
//! drains frozen halves into snapshot files while tracing goes on, and keeps the accounting.
//!
//! Draining a frozen half is safe once every writer that could still be writing into it has
//! finished: after a flip is published (an exchange on `Control::active`, then the notice),
//! [`Buffers::wait_writers`] waits until each CPU's writer is idle or has completed the write
//! in flight; any later writer takes `busy` after the flip and so reads the new half.
//! Heads only grow; each half remembers the head it had when it was last armed (its base),
//! so a drain takes exactly the records of one live period, each once.

mod context;
mod exit;
mod live;
mod post;
pub mod run;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use snapshot_common::{
    EVENT_MARKER, Event, MARKER_PROBE, NOTICE_FLIP, NOTICE_POST, NOTICE_STOPPED, NoSparePolicy,
    Notice,
};

pub use live::{Live, Spare};
pub use run::{Outcome, Recording, Reporter, StopReason, run};

use crate::{
    probe::ProbeInfo,
    session::{Post, Session, buffer::CpuAccount},
    snapshot::{
        self, ClockRef, Fired, Header, SnapshotKind, Strings,
        symbols::{Stacks, Symbolizer},
    },
    sys,
};

/// Totals over the whole recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Snapshot files written.
    pub snapshots: u64,
    /// Events in written snapshots.
    pub recorded: u64,
    /// Events lost to wrap-around.
    pub overwritten: u64,
    /// Events not written (writer busy on the CPU).
    pub dropped: u64,
    /// Torn records discarded (must be 0).
    pub torn: u64,
    /// Triggers that found no armed spare.
    pub missed_triggers: u64,
    /// Events still in the live half at exit, not written (no `--dump-on-exit`).
    pub discarded_at_exit: u64,
}

/// A snapshot written (or that could not be).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Written {
    /// File path.
    pub path: PathBuf,
    /// Sequence number.
    pub seq: u64,
    /// Why it was taken.
    pub kind: SnapshotKind,
    /// Events in it.
    pub events: u64,
    /// Events lost to wrap-around in it.
    pub overwritten: u64,
    /// Events dropped while it was live.
    pub dropped: u64,
    /// Triggers missed since the previous snapshot.
    pub missed_triggers: u64,
    /// Time from the trigger firing to the file being on disk (renamed, synced), ns.
    pub trigger_to_file_ns: Option<u64>,
    /// Time to wait for writers and drain the half (records read through mmap), ns.
    pub drain_ns: u64,
    /// Record bytes drained.
    pub drained_bytes: u64,
}

/// Static context every snapshot header carries.
struct Context {
    hostname: String,
    kernel_release: String,
    clock: ClockRef,
    trigger: String,
}

/// The controller.
pub struct Controller {
    session: Session,
    out: PathBuf,
    ctx: Context,
    bases: [Vec<u64>; 2],
    dropped_seen: Vec<u64>,
    missed_seen: u64,
    seq: u64,
    pending: Vec<(String, Vec<u8>)>,
    /// Drain buffer, one half's worth, allocated and touched up front (the
    /// `tracing_snapshot_alloc` of userspace): no page faults while draining.
    scratch: Vec<Event>,
    /// The drained events' string slots (reused like `scratch`).
    strings: Strings,
    totals: Totals,
    stopped: bool,
    /// `--post DURATION`: end (boot-time ns) of the open window, for userspace to close it
    /// when no event does.
    window_until: Option<u64>,
    /// The trigger context of the open `--post` window, read when it opened (the process may
    /// be gone by the time the window closes).
    window_fired: Option<(Fired, Stacks)>,
    symbolizer: Symbolizer,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

impl Controller {
    /// Takes over a started session, writing snapshots into `out`, and arms the spare;
    /// `trigger` is how snapshot headers show the trigger. Reads kallsyms now, so that
    /// symbolizing a trigger's stack costs nothing then.
    #[must_use]
    pub fn new(session: Session, out: &Path, trigger: &str) -> Self {
        let b = session.buffers();
        let ncpu = b.ncpu() as usize;
        let mut c = Self {
            ctx: Context {
                hostname: read_trimmed("/proc/sys/kernel/hostname"),
                kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
                clock: ClockRef::now(),
                trigger: trigger.to_owned(),
            },
            bases: [b.heads(0), b.heads(1)],
            dropped_seen: vec![0; ncpu],
            missed_seen: 0,
            seq: 0,
            pending: Vec::new(),
            scratch: prefaulted(ncpu * b.capacity() as usize),
            strings: Strings {
                slot: b.layout().slot,
                data: Vec::new(),
            },
            totals: Totals::default(),
            stopped: false,
            window_until: None,
            window_fired: None,
            symbolizer: Symbolizer::load(Path::new("/")),
            out: out.to_owned(),
            session,
        };
        c.arm();
        c
    }

    /// The probe table.
    #[must_use]
    pub fn probes(&self) -> &[ProbeInfo] {
        self.session.probes()
    }

    /// Totals so far.
    #[must_use]
    pub const fn totals(&self) -> &Totals {
        &self.totals
    }

    /// True once recording has stopped for good (stop policy).
    #[must_use]
    pub const fn stopped(&self) -> bool {
        self.stopped
    }

    /// The session, e.g. to take its notification ring.
    pub const fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Makes the half that is not live the spare: records its base, then arms it.
    fn arm(&mut self) {
        let b = self.session.buffers();
        let spare = b.control().active() ^ 1;
        self.bases[spare] = b.heads(spare);
        b.control().arm();
    }

    /// Handles a notice from the kernel.
    pub fn on_notice(&mut self, n: &Notice) -> Vec<Written> {
        if n.kind == NOTICE_POST {
            // The snapshot comes with the flip that closes the window.
            self.window_until = match self.session.rules().post {
                Post::Nanos(ns) => Some(n.ts_ns + ns),
                _ => None,
            };
            self.window_fired = Some(self.fired(n));
            return Vec::new();
        }
        let fired = match self.window_fired.take() {
            Some(f) if n.kind == NOTICE_FLIP => f,
            _ => self.fired(n),
        };
        let fired = Some(fired);
        match n.kind {
            NOTICE_FLIP => {
                self.window_until = None;
                vec![self.snapshot_half(
                    n.half as usize,
                    SnapshotKind::Condition,
                    fired,
                    None,
                    Some(n.missed),
                )]
            }
            NOTICE_STOPPED => {
                self.stopped = true;
                vec![self.snapshot_half(
                    n.half as usize,
                    SnapshotKind::NoSpareStop,
                    fired,
                    None,
                    None,
                )]
            }
            other => {
                log::warn!("ignoring unknown notice kind {other} from the eBPF side");
                Vec::new()
            }
        }
    }

    /// A manual snapshot (SIGUSR1, `snapshot trigger`): the same flip as the kernel's, done
    /// from userspace, under the same one-winner rule.
    pub fn manual(&mut self) -> Vec<Written> {
        if self.stopped {
            return Vec::new();
        }
        let words = self.session.buffers().control();
        if words.window_open() {
            log::warn!(
                "a trigger's --post window is open: its snapshot comes when the window closes; ask again then"
            );
            return Vec::new();
        }
        let me = std::process::id();
        let fired = Fired {
            ts_ns: sys::boot_ns(),
            cpu: 0,
            pid: me,
            tid: me,
            comm: "snapshot".into(),
            probe: "manual".into(),
            value: 0,
            ..Fired::default()
        };
        let missed_before = words.missed();
        if words.take_spare() {
            let old = words.active();
            let _ = words.flip(old);
            return vec![self.snapshot_half(
                old,
                SnapshotKind::Manual,
                Some((fired, Stacks::default())),
                None,
                Some(missed_before),
            )];
        }
        words.count_missed();
        if self.session.rules().on_no_spare == NoSparePolicy::Stop && words.take_stopping() {
            words.stop();
            self.stopped = true;
            let live = words.active();
            let marker = Event {
                ts_ns: fired.ts_ns,
                pid_tgid: (u64::from(fired.pid) << 32) | u64::from(fired.tid),
                comm: *b"snapshot\0\0\0\0\0\0\0\0",
                probe_id: MARKER_PROBE,
                flags: EVENT_MARKER,
                ..Event::default()
            };
            return vec![self.snapshot_half(
                live,
                SnapshotKind::NoSpareStop,
                Some((fired, Stacks::default())),
                Some(marker),
                None,
            )];
        }
        Vec::new()
    }

    /// Waits for writers, drains `half`, re-arms it as the spare when it was a trigger's or a
    /// manual snapshot (as soon as its records are copied out: symbolizing and writing the
    /// file come after), then writes its snapshot file.
    fn snapshot_half(
        &mut self,
        half: usize,
        kind: SnapshotKind,
        fired: Option<(Fired, Stacks)>,
        extra: Option<Event>,
        missed_at: Option<u64>,
    ) -> Written {
        let b = self.session.buffers();
        let drain_start = std::time::Instant::now();
        if !b.wait_writers(Duration::from_secs(1)) {
            log::warn!("a writer stayed busy for 1 s; records it was writing are counted as torn");
        }
        let mut cpus = b.drain_into(
            half,
            &self.bases[half],
            &mut self.scratch,
            &mut self.strings.data,
        );
        let drain_ns = drain_start.elapsed().as_nanos() as u64;
        self.bases[half] = b.heads(half);
        if matches!(kind, SnapshotKind::Condition | SnapshotKind::Manual) {
            self.arm();
        }
        let b = self.session.buffers();
        let fired = fired.map(|(mut f, stacks)| {
            self.symbolizer.apply(&mut f, &stacks);
            f
        });
        for acc in &mut cpus {
            let now = b.state(acc.cpu).dropped;
            let seen = &mut self.dropped_seen[acc.cpu as usize];
            acc.dropped = now - *seen;
            *seen = now;
        }
        // Triggers missed up to this snapshot's own trigger belong to it; later ones, to the next.
        let missed_now = missed_at.unwrap_or_else(|| b.control().missed());
        let missed = missed_now - self.missed_seen;
        self.missed_seen = missed_now;
        self.scratch.extend(extra);
        self.seq += 1;
        let header = Header {
            seq: self.seq,
            kind,
            hostname: self.ctx.hostname.clone(),
            kernel_release: self.ctx.kernel_release.clone(),
            clock: self.ctx.clock,
            probes: self.session.probes().to_vec(),
            trigger: self.ctx.trigger.clone(),
            fired,
            missed_triggers: missed,
            ncpu: b.ncpu(),
            capacity: b.capacity(),
            cpus: cpus.clone(),
            string_size: b.layout().string_size,
        };
        let sum = |f: fn(&CpuAccount) -> u64| cpus.iter().map(f).sum::<u64>();
        let fired_at = header.fired.as_ref().map(|f| f.ts_ns);
        let mut written = Written {
            trigger_to_file_ns: None,
            drain_ns,
            drained_bytes: (self.scratch.len() * size_of::<Event>() + self.strings.data.len())
                as u64,
            path: self.out.join(file_name(self.seq, kind)),
            seq: self.seq,
            kind,
            events: self.scratch.len() as u64,
            overwritten: sum(|a| a.overwritten),
            dropped: sum(|a| a.dropped),
            missed_triggers: missed,
        };
        self.totals.recorded += sum(|a| a.recorded);
        self.totals.overwritten += written.overwritten;
        self.totals.dropped += written.dropped;
        self.totals.torn += sum(|a| a.torn);
        self.totals.missed_triggers += missed;
        let name = file_name(self.seq, kind);
        let parts = snapshot::encode_parts(&header, &self.scratch, &self.strings);
        if let Err(e) = snapshot::write_atomic_parts(&self.out, &name, &parts.slices()) {
            log::error!(
                "cannot write {}: {e}; keeping it in memory and retrying",
                self.out.join(&name).display()
            );
            self.pending.push((name, parts.concat()));
        }
        if kind != SnapshotKind::Manual {
            written.trigger_to_file_ns = fired_at.map(|t| sys::boot_ns().saturating_sub(t));
        }
        self.flush();
        self.totals.snapshots += 1;
        written
    }
}

/// A vector with room for `n` events whose pages are already mapped.
fn prefaulted(n: usize) -> Vec<Event> {
    let mut v = Vec::with_capacity(n);
    // Writing every element faults every page in now, not during the first drain.
    v.resize(n, Event::default());
    v.clear();
    v
}

/// `snapshot-0001-condition.snap`.
#[must_use]
pub fn file_name(seq: u64, kind: SnapshotKind) -> String {
    let kind = match kind {
        SnapshotKind::Condition => "condition",
        SnapshotKind::Manual => "manual",
        SnapshotKind::NoSpareStop => "stop",
        SnapshotKind::Exit => "exit",
    };
    format!("snapshot-{seq:04}-{kind}.snap")
}
