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
pub mod hooks;
mod live;
pub mod pending;
mod post;
pub mod requests;
pub mod retention;
pub mod run;

use std::{path::PathBuf, time::Duration};

use snapshot_common::{
    EVENT_MARKER, Event, MARKER_PROBE, NOTICE_FLIP, NOTICE_POST, NOTICE_STOPPED, NoSparePolicy,
    Notice,
};

pub use live::{Live, Spare};
pub use pending::WriteStatus;
pub use run::{Outcome, Recording, Reporter, StopReason, run};

use self::pending::Pending;
use crate::{
    probe::ProbeInfo,
    session::{Post, Session, buffer::CpuAccount},
    snapshot::{
        self, ClockRef, Fired, Header, SnapshotKind, Strings,
        dir::OutDir,
        symbols::{MapsCache, Stacks, Symbolizer},
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
    /// Events still in the live half at exit, not written (no `--dump-on-exit`, or
    /// `--max-snapshots` reached), and in halves frozen after `--max-snapshots` was reached.
    pub discarded_at_exit: u64,
    /// Snapshots that could not be written and were dropped (`--max-pending`, or still
    /// refused at exit).
    pub lost_snapshots: u64,
    /// The events in them (counted in `recorded` too: they were captured).
    pub lost_events: u64,
    /// Snapshot files deleted by `--keep` / `--max-disk` (this recording's or earlier ones').
    pub deleted_snapshots: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
}

/// A snapshot taken, and what became of its file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Written {
    /// File path.
    pub path: PathBuf,
    /// Whether the file is on disk, waits in memory, or was dropped.
    pub status: WriteStatus,
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
    /// Snapshot files deleted by `--keep` / `--max-disk` since the previous snapshot (this
    /// one's write included); left out of the JSON line when none were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<PathBuf>,
}

/// Static context every snapshot header carries.
struct Context {
    hostname: String,
    kernel_release: String,
    clock: ClockRef,
    trigger: String,
    /// The sequence triggers as written, by number (a notice's `sequence` - 1).
    sequences: Vec<String>,
}

/// Limits on what a recording writes and keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most snapshots taken (`--max-snapshots`), the exit snapshot included.
    pub max_snapshots: Option<u64>,
    /// Most bytes of snapshot files kept in memory while the disk refuses them
    /// (`--max-pending`; default [`DEFAULT_PENDING_HALVES`] halves).
    pub max_pending: Option<u64>,
    /// Most snapshot files kept in the directory (`--keep`); older ones are deleted.
    pub keep: Option<u64>,
    /// Most bytes of snapshot files kept in the directory (`--max-disk`).
    pub max_disk: Option<u64>,
}

/// `--max-pending` by default, in halves of the buffer.
pub const DEFAULT_PENDING_HALVES: u64 = 4;

/// Why a manual request took no snapshot (it is then counted as a missed trigger).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// The spare half is not armed yet (the last snapshot is still being drained).
    NotArmed,
    /// A trigger's `--post` window is open: its snapshot comes when it closes.
    WindowOpen,
    /// Recording has stopped.
    Stopped,
}

impl std::fmt::Display for Missed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotArmed => {
                "the spare half was not armed yet (the previous snapshot was being taken)"
            }
            Self::WindowOpen => {
                "a trigger's --post window is open; its snapshot comes when the window closes"
            }
            Self::Stopped => "recording has stopped",
        })
    }
}

/// What a manual request did.
#[derive(Debug)]
pub enum Manual {
    /// A snapshot was taken.
    Taken(Written),
    /// None was: counted as a missed trigger.
    Missed(Missed),
}

/// The controller.
pub struct Controller {
    session: Session,
    out: OutDir,
    ctx: Context,
    bases: [Vec<u64>; 2],
    dropped_seen: Vec<u64>,
    missed_seen: u64,
    /// Snapshots taken (written, waiting or lost), for `--max-snapshots`.
    taken: u64,
    limits: Limits,
    pending: Pending,
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
    /// The targets' memory maps as last read, for crash stacks (see [`MapsCache`]).
    maps_cache: MapsCache,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

impl Controller {
    /// Takes over a started session, writing snapshots into `out` within `limits`, and arms
    /// the spare; `trigger` is how snapshot headers show the trigger. Reads kallsyms now, so
    /// that symbolizing a trigger's stack costs nothing then.
    #[must_use]
    pub fn new(session: Session, out: OutDir, trigger: &str, limits: Limits) -> Self {
        Self::with_sequences(session, out, (trigger, Vec::new()), limits)
    }

    /// As [`Controller::new`], with the sequence triggers as written (in the order the
    /// compiled program numbers them: [`crate::trigger::sequences`]), named in the headers of
    /// the snapshots they take.
    #[must_use]
    pub fn with_sequences(
        session: Session,
        out: OutDir,
        (trigger, sequences): (&str, Vec<String>),
        limits: Limits,
    ) -> Self {
        let b = session.buffers();
        let ncpu = b.ncpu() as usize;
        let half = ncpu as u64
            * u64::from(b.capacity())
            * (size_of::<Event>() as u64 + u64::from(b.layout().slot));
        let max_pending = limits.max_pending.unwrap_or(DEFAULT_PENDING_HALVES * half);
        let mut c = Self {
            ctx: Context {
                hostname: read_trimmed("/proc/sys/kernel/hostname"),
                kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
                clock: ClockRef::now(),
                trigger: trigger.to_owned(),
                sequences,
            },
            bases: [b.heads(0), b.heads(1)],
            dropped_seen: vec![0; ncpu],
            missed_seen: 0,
            taken: 0,
            limits,
            pending: Pending::new(
                max_pending,
                retention::Retention::new(limits.keep, limits.max_disk),
            ),
            scratch: prefaulted(ncpu * b.capacity() as usize),
            strings: Strings {
                slot: b.layout().slot,
                data: Vec::new(),
            },
            totals: Totals::default(),
            stopped: false,
            window_until: None,
            window_fired: None,
            symbolizer: Symbolizer::load(
                std::path::Path::new("/"),
                crate::snapshot::buildid::BuildIdIndex::from_env(),
            ),
            maps_cache: MapsCache::default(),
            out,
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

    /// True once `--max-snapshots` snapshots were taken.
    #[must_use]
    pub fn at_limit(&self) -> bool {
        self.limits.max_snapshots.is_some_and(|m| self.taken >= m)
    }

    /// The output directory.
    #[must_use]
    pub const fn out(&self) -> &OutDir {
        &self.out
    }

    /// When snapshot files waiting for the disk are next retried.
    #[must_use]
    pub fn retry_at(&self) -> Option<std::time::Instant> {
        self.pending.retry_at()
    }

    /// Retries the snapshot files waiting for the disk.
    pub fn retry_pending(&mut self) {
        self.pending.retry(&mut self.out);
        self.count_deleted();
    }

    /// The snapshot files that reached the disk since the last call (for `--on-snapshot`).
    pub fn take_durable(&mut self) -> Vec<PathBuf> {
        self.pending.take_durable()
    }

    /// Brings the totals up to date with what retention deleted.
    fn count_deleted(&mut self) {
        let d = self.pending.retention_mut().total();
        self.totals.deleted_snapshots = d.snapshots;
        self.totals.deleted_bytes = d.bytes;
    }

    /// Looks at the output directory's path again (SIGHUP): see
    /// [`OutDir::reopen_on_request`].
    pub fn reopen_out(&mut self) -> Result<snapshot::dir::Reopened, snapshot::dir::OutDirError> {
        self.out.reopen_on_request()
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
        // The kernel logs before it notifies: its debug records print before the snapshot.
        self.session.flush_log();
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
                self.snapshot_half(
                    n.half as usize,
                    SnapshotKind::Condition,
                    fired,
                    None,
                    Some(n.missed),
                )
                .into_iter()
                .collect()
            }
            NOTICE_STOPPED => {
                self.stopped = true;
                self.snapshot_half(
                    n.half as usize,
                    SnapshotKind::NoSpareStop,
                    fired,
                    None,
                    None,
                )
                .into_iter()
                .collect()
            }
            other => {
                log::warn!("ignoring unknown notice kind {other} from the eBPF side");
                Vec::new()
            }
        }
    }

    /// A manual snapshot (SIGUSR1, `snapshot trigger`): the same flip as the kernel's, done
    /// from userspace, under the same rules (one winner; a flip and a stop are decided one at
    /// a time through `stopping`). Every request ends as a snapshot or a missed trigger.
    pub fn manual(&mut self) -> Manual {
        let words = self.session.buffers().control();
        if self.stopped || self.at_limit() || words.stopped() {
            words.count_missed();
            return Manual::Missed(Missed::Stopped);
        }
        if words.window_open() {
            words.count_missed();
            return Manual::Missed(Missed::WindowOpen);
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
            if !words.take_stopping() {
                // A trigger is deciding a stop: this request comes after it. The spare goes
                // back (the trigger may find a window open and not stop after all).
                words.arm();
                words.count_missed();
                return Manual::Missed(Missed::Stopped);
            }
            let old = words.active();
            let _ = words.flip(old);
            words.release_stopping();
            return self
                .snapshot_half(
                    old,
                    SnapshotKind::Manual,
                    Some((fired, Stacks::default())),
                    None,
                    Some(missed_before),
                )
                .map_or(Manual::Missed(Missed::Stopped), Manual::Taken);
        }
        words.count_missed();
        if self.session.rules().on_no_spare == NoSparePolicy::Stop && words.take_stopping() {
            if words.window_open() {
                // A window opened meanwhile: the request belongs to it.
                words.release_stopping();
                return Manual::Missed(Missed::WindowOpen);
            }
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
            if let Some(w) = self.snapshot_half(
                live,
                SnapshotKind::NoSpareStop,
                Some((fired, Stacks::default())),
                Some(marker),
                None,
            ) {
                return Manual::Taken(w);
            }
        }
        Manual::Missed(Missed::NotArmed)
    }

    /// Counts the records of `half` since its base as discarded (a half frozen after
    /// `--max-snapshots` was reached, or the live half at exit), with its losses.
    fn discard_half(&mut self, half: usize) {
        let b = self.session.buffers();
        if !b.wait_writers(Duration::from_secs(1)) {
            log::warn!("a writer stayed busy for 1 s; records it was writing are counted as torn");
        }
        let cpus = b.drain_into(
            half,
            &self.bases[half],
            &mut self.scratch,
            &mut self.strings.data,
        );
        self.bases[half] = b.heads(half);
        self.totals.discarded_at_exit += self.scratch.len() as u64;
        self.totals.overwritten += cpus.iter().map(|a| a.overwritten).sum::<u64>();
        self.totals.torn += cpus.iter().map(|a| a.torn).sum::<u64>();
    }

    /// Waits for writers, drains `half`, re-arms it as the spare when it was a trigger's or a
    /// manual snapshot (as soon as its records are copied out: symbolizing and writing the
    /// file come after) unless this was the last snapshot `--max-snapshots` allows, then
    /// writes its snapshot file. Past the limit nothing is taken: the half is discarded.
    fn snapshot_half(
        &mut self,
        half: usize,
        kind: SnapshotKind,
        fired: Option<(Fired, Stacks)>,
        extra: Option<Event>,
        missed_at: Option<u64>,
    ) -> Option<Written> {
        if self.at_limit() {
            self.discard_half(half);
            return None;
        }
        self.taken += 1;
        if self.at_limit() {
            // The last snapshot allowed: nothing records, flips or stops any more.
            self.session.buffers().control().stop();
        }
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
        if matches!(kind, SnapshotKind::Condition | SnapshotKind::Manual) && !self.at_limit() {
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
        let seq = self.out.next_seq();
        let lost = self.pending.take_unreported();
        let header = Header {
            seq,
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
            lost_snapshots: lost.snapshots,
            lost_events: lost.events,
            // Only when a probe captures strings: a header without strings does not name them.
            string_size: if b.layout().slot == 0 {
                0
            } else {
                b.layout().string_size
            },
        };
        let sum = |f: fn(&CpuAccount) -> u64| cpus.iter().map(f).sum::<u64>();
        let fired_at = header.fired.as_ref().map(|f| f.ts_ns);
        let name = file_name(seq, kind);
        let events = self.scratch.len() as u64;
        let parts = snapshot::encode_parts(&header, &self.scratch, &self.strings);
        let (status, path) =
            self.pending
                .submit(&mut self.out, &name, &parts.slices(), events, lost);
        let written = Written {
            trigger_to_file_ns: (kind != SnapshotKind::Manual && status == WriteStatus::Written)
                .then_some(fired_at)
                .flatten()
                .map(|t| sys::boot_ns().saturating_sub(t)),
            drain_ns,
            drained_bytes: (self.scratch.len() * size_of::<Event>() + self.strings.data.len())
                as u64,
            path,
            status,
            seq,
            kind,
            events,
            overwritten: sum(|a| a.overwritten),
            dropped: sum(|a| a.dropped),
            missed_triggers: missed,
            deleted: self.pending.retention_mut().take_deleted(),
        };
        self.count_deleted();
        self.totals.recorded += sum(|a| a.recorded);
        self.totals.overwritten += written.overwritten;
        self.totals.dropped += written.dropped;
        self.totals.torn += sum(|a| a.torn);
        self.totals.missed_triggers += missed;
        self.totals.snapshots += 1;
        Some(written)
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
