//! Reading the flight recorder's halves through `mmap` (zero copy until the records are taken).
//!
//! The eBPF side writes `EVENTS[(half * ncpu + cpu) * capacity + pos % capacity]` and advances
//! `CpuState::head[half]`; see `snapshot-ebpf/src/record.rs` for the writer protocol.

use std::{
    os::fd::{AsFd, BorrowedFd},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::{Ebpf, maps::Map};
use snapshot_common::{CpuState, Event, names};

use super::{
    control::{Tokens, Words},
    mmap::Mmap,
    strings::{self, Layout},
};

/// Accounting for one CPU's ring in one drained half.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuAccount {
    /// CPU number.
    pub cpu: u32,
    /// Records taken into the snapshot.
    pub recorded: u64,
    /// Records lost to wrap-around (the ring held only the newest `capacity`).
    pub overwritten: u64,
    /// Events not written because the CPU's writer was busy (nesting, preemption).
    pub dropped: u64,
    /// Slots whose commit word did not match (must stay 0).
    pub torn: u64,
}

/// Appends to `out` the valid records of one CPU's ring written since position `base`:
/// positions `head - min(head - base, cap) .. head` (slot `pos % cap` of `ring`), copied in at
/// most two contiguous runs, then each checked against its commit word. Returns the number of
/// records kept, the number lost to wrap-around and the number torn.
pub fn drain_ring_into(
    base: u64,
    head: u64,
    ring: &[Event],
    out: &mut Vec<Event>,
) -> (u64, u64, u64) {
    let cap = ring.len() as u64;
    let written = head.saturating_sub(base);
    let kept = written.min(cap);
    if kept == 0 {
        return (0, written, 0);
    }
    let start = head - kept;
    let (first, end) = ((start % cap) as usize, (head % cap) as usize);
    let from = out.len();
    if first < end {
        out.extend_from_slice(&ring[first..end]);
    } else {
        out.extend_from_slice(&ring[first..]);
        out.extend_from_slice(&ring[..end]);
    }
    let valid = |(i, e): (usize, &Event)| e.seq == start + i as u64 + 1;
    if !out[from..].iter().enumerate().all(valid) {
        let run = out.split_off(from);
        out.extend(
            run.into_iter()
                .enumerate()
                .filter(|(i, e)| valid((*i, e)))
                .map(|(_, e)| e),
        );
    }
    let taken = (out.len() - from) as u64;
    (taken, written - kept, kept - taken)
}

/// [`drain_ring_into`] into a new vector.
#[must_use]
pub fn drain_ring(base: u64, head: u64, ring: &[Event]) -> (Vec<Event>, u64, u64) {
    let mut out = Vec::new();
    let (_, overwritten, torn) = drain_ring_into(base, head, ring, &mut out);
    (out, overwritten, torn)
}

/// Orders drained records by time. Stable, so records of one CPU with equal timestamps keep
/// their ring order; run-adaptive, so already-ordered per-CPU runs are merged, not re-sorted.
pub fn order_by_time(events: &mut [Event]) {
    events.sort_by_key(|e| e.ts_ns);
}

/// Both halves, the per-CPU states and the controller state, mapped (and the payload slots
/// of captured strings, when a probe captures some).
pub struct Buffers {
    events: Mmap,
    states: Mmap,
    control: Mmap,
    payloads: Option<Mmap>,
    layout: Layout,
    ncpu: u32,
    capacity: u32,
    tokens: Option<Tokens>,
}

fn map_fd<'a>(ebpf: &'a Ebpf, name: &str) -> anyhow::Result<BorrowedFd<'a>> {
    match ebpf.map(name) {
        Some(Map::Array(data)) => Ok(data.fd().as_fd()),
        _ => anyhow::bail!(
            "array map {name} missing from the eBPF object: rebuild with `cargo xtask build`"
        ),
    }
}

impl Buffers {
    /// Maps the buffers of a loaded object; `layout` is the payload slots' (`slot` 0: none).
    pub fn map(ebpf: &Ebpf, ncpu: u32, capacity: u32, layout: Layout) -> anyhow::Result<Self> {
        let n_events = 2 * ncpu as usize * capacity as usize;
        let payloads = if layout.slot == 0 {
            None
        } else {
            Some(
                Mmap::map(
                    map_fd(ebpf, names::PAYLOADS)?,
                    n_events * layout.slot as usize,
                )
                .context("mmap of the string buffer failed (the map must be BPF_F_MMAPABLE)")?,
            )
        };
        let events = Mmap::map(map_fd(ebpf, names::EVENTS)?, n_events * size_of::<Event>())
            .context("mmap of the event buffer failed (the map must be BPF_F_MMAPABLE)")?;
        let states = Mmap::map(
            map_fd(ebpf, names::CPU_STATE)?,
            ncpu as usize * size_of::<CpuState>(),
        )
        .context("mmap of the per-CPU state failed")?;
        let control = Mmap::map_rw(
            map_fd(ebpf, names::CONTROL)?,
            size_of::<snapshot_common::Control>(),
        )
        .context("mmap of the control word failed")?;
        Ok(Self {
            events,
            states,
            control,
            payloads,
            layout,
            ncpu,
            capacity,
            tokens: None,
        })
    }

    /// Uses the token queues of a kernel without BPF atomics (see [`Tokens`]).
    pub fn use_tokens(&mut self, tokens: Tokens) {
        self.tokens = Some(tokens);
    }

    /// The payload slots' layout (`slot` 0: no strings).
    #[must_use]
    pub const fn layout(&self) -> Layout {
        self.layout
    }

    /// The shared [`snapshot_common::Control`] words and userspace's side of their protocol.
    #[must_use]
    pub const fn control(&self) -> Words<'_> {
        Words::new(&self.control, self.tokens.as_ref())
    }

    /// Events per CPU per half.
    #[must_use]
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Current heads of `half`, per CPU.
    #[must_use]
    pub fn heads(&self, half: usize) -> Vec<u64> {
        (0..self.ncpu).map(|c| self.state(c).head[half]).collect()
    }

    /// Events written so far into both halves on every CPU (the sum of the heads): a cheap
    /// read of the shared state, nothing is drained.
    #[must_use]
    pub fn written(&self) -> u64 {
        (0..self.ncpu)
            .map(|c| self.state(c).head.iter().sum::<u64>())
            .sum()
    }

    /// Events dropped so far on every CPU (writer busy).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        (0..self.ncpu).map(|c| self.state(c).dropped).sum()
    }

    /// Number of CPUs the buffer is laid out for.
    #[must_use]
    pub const fn ncpu(&self) -> u32 {
        self.ncpu
    }

    /// The current writer state of `cpu`.
    #[must_use]
    pub fn state(&self, cpu: u32) -> CpuState {
        self.states.read(cpu as usize)
    }

    /// Waits until no writer that started before this call is still writing, on any CPU: for
    /// each CPU, `busy == 0` or its `generation` moved. Returns false on timeout.
    #[must_use]
    pub fn wait_writers(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let before: Vec<CpuState> = (0..self.ncpu).map(|c| self.state(c)).collect();
        for (cpu, old) in (0..self.ncpu).zip(before) {
            if old.busy == 0 {
                continue;
            }
            loop {
                let now = self.state(cpu);
                if now.busy == 0 || now.generation != old.generation {
                    break;
                }
                if start.elapsed() > timeout {
                    return false;
                }
                std::thread::yield_now();
            }
        }
        true
    }

    /// One CPU's ring of one half: `len` events from element `start` of the event buffer.
    fn ring(&self, start: usize, len: usize) -> &[Event] {
        // SAFETY: Event is a map value type valid for any bit pattern. The caller of `drain`
        // guarantees no writer touches this half while the slice lives (writers were waited
        // for after the flip).
        unsafe { self.events.slice(start, len) }
    }

    /// Replaces the content of `out` with every valid record of `half` written since `bases`
    /// (per CPU), merged in time order, and `strings` with their payload slots, and returns
    /// the per-CPU accounting (`dropped` is left to the caller). Reusing `out` (allocated
    /// once, up front) keeps page faults off the drain. The caller must make sure no writer
    /// still writes into `half` (see [`Self::wait_writers`]).
    pub fn drain_into(
        &self,
        half: usize,
        bases: &[u64],
        out: &mut Vec<Event>,
        strings: &mut Vec<u8>,
    ) -> Vec<CpuAccount> {
        let cap = u64::from(self.capacity);
        out.clear();
        strings.clear();
        let mut accounts = Vec::with_capacity(self.ncpu as usize);
        for cpu in 0..self.ncpu {
            let state = self.state(cpu);
            let base = (half as u64 * u64::from(self.ncpu) + u64::from(cpu)) * cap;
            let from = bases.get(cpu as usize).copied().unwrap_or(0);
            let ring = self.ring(base as usize, cap as usize);
            let taken = out.len();
            let (recorded, overwritten, torn) = drain_ring_into(from, state.head[half], ring, out);
            if let Some(payloads) = &self.payloads {
                let size = self.layout.slot as usize;
                let slot_of = |e: &Event| {
                    let index = base + e.seq.wrapping_sub(1) % cap.max(1);
                    // SAFETY: bytes are valid for any pattern, and no writer touches this half
                    // while the drain runs (see `ring`).
                    unsafe { payloads.slice::<u8>(index as usize * size, size) }
                };
                let lost = strings::take_all(self.layout, &mut out[taken..], slot_of, strings);
                if lost > 0 {
                    log::warn!(
                        "CPU {cpu}: the strings of {lost} event(s) were not theirs at the drain; they are kept without them"
                    );
                }
            }
            accounts.push(CpuAccount {
                cpu,
                recorded,
                overwritten,
                dropped: 0,
                torn,
            });
        }
        order_by_time(out);
        accounts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, ts: u64) -> Event {
        Event {
            seq,
            ts_ns: ts,
            pid_tgid: 0,
            args: [0; 6],
            ret: 0,
            comm: [0; 16],
            cpu: 0,
            probe_id: 0,
            flags: 0,
            pad: 0,
            ..Event::default()
        }
    }

    #[test]
    fn drain_without_wrap() {
        let ring: Vec<Event> = (0..3)
            .map(|p| ev(p + 1, p * 10))
            .chain([ev(0, 0)])
            .collect();
        let (events, overwritten, torn) = drain_ring(0, 3, &ring);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!((overwritten, torn), (0, 0));
    }

    #[test]
    fn drain_after_wrap_keeps_newest_and_counts_lost() {
        // 10 records into a ring of 4: positions 6..10 remain, in slots 2,3,0,1.
        let mut ring = vec![ev(0, 0); 4];
        for pos in 0..10u64 {
            ring[(pos % 4) as usize] = ev(pos + 1, pos);
        }
        let (events, overwritten, torn) = drain_ring(0, 10, &ring);
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [7, 8, 9, 10]
        );
        assert_eq!((overwritten, torn), (6, 0));
    }

    #[test]
    fn drain_from_a_base_takes_only_the_new_round() {
        // Positions 0..10 were drained before (base 10); 3 new records 10..13.
        let mut ring = vec![ev(0, 0); 4];
        for pos in 0..13u64 {
            ring[(pos % 4) as usize] = ev(pos + 1, pos);
        }
        let (events, overwritten, torn) = drain_ring(10, 13, &ring);
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [11, 12, 13]
        );
        assert_eq!((overwritten, torn), (0, 0));
        let (events, overwritten, _) = drain_ring(2, 13, &ring);
        assert_eq!((events.len(), overwritten), (4, 7));
    }

    #[test]
    fn torn_slot_is_counted_not_returned() {
        let mut ring: Vec<Event> = (0..4).map(|p| ev(p + 1, p)).collect();
        ring[2].seq = 99;
        let (events, _, torn) = drain_ring(0, 4, &ring);
        assert_eq!(events.len(), 3);
        assert_eq!(torn, 1);
    }

    #[test]
    fn merge_orders_across_cpus() {
        let mut merged = vec![ev(1, 5), ev(2, 20), ev(3, 20), ev(1, 1), ev(2, 10)];
        order_by_time(&mut merged);
        let order: Vec<_> = merged.iter().map(|e| (e.ts_ns, e.seq)).collect();
        assert_eq!(
            order,
            [(1, 1), (5, 1), (10, 2), (20, 2), (20, 3)],
            "stable for equal times"
        );
    }
}
