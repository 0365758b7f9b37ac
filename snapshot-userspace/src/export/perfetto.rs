//! Perfetto's protobuf trace format (`TrackEvent`), which `ui.perfetto.dev` opens natively.
//!
//! Layout: a process track and a thread track per thread (named by pid, tid and comm) holding
//! the probe events — entry/return pairs as slices (begin at entry, end at return), other events
//! as instants, each with its arguments as debug annotations named as the text export names
//! them; a "snapshot" track holding the trigger as an instant with its context (and, for a
//! sequence `A then B within T`, a slice from A to B named for it); one counter track per
//! accounting total under it. Timestamps are the events' boot-time ns
//! (`BUILTIN_CLOCK_BOOTTIME`), the same time base as the Chrome JSON export, and a clock
//! snapshot ties them to wall-clock time. Every packet is on one sequence; nothing is interned.

pub mod proto;

use std::collections::BTreeMap;

use prost::Message as _;

use self::proto::{
    BuiltinClock, Clock, ClockSnapshot, CounterDescriptor, CounterUnit, DebugAnnotation,
    ProcessDescriptor, ThreadDescriptor, Trace, TracePacket, TrackDescriptor, TrackEvent,
    TrackEventType,
};
use super::event::{self, ArgValue};
use crate::{snapshot::Snapshot, units::utc};

/// `trusted_packet_sequence_id` of every packet.
pub const SEQUENCE_ID: u32 = 1;
/// Uuid of the snapshot track: the trigger instant, parent of the counter tracks.
pub const SNAPSHOT_TRACK: u64 = 1;
/// Uuid of the first counter track (the others follow, in [`COUNTERS`] order).
const FIRST_COUNTER_TRACK: u64 = 2;
/// Uuid of the first process or thread track (numbered in order of appearance).
const FIRST_TASK_TRACK: u64 = 16;
/// Names of the accounting counter tracks, in uuid order.
pub const COUNTERS: [&str; 5] = [
    "recorded",
    "overwritten",
    "dropped",
    "torn",
    "missed triggers",
];

fn annotation(name: &str) -> DebugAnnotation {
    DebugAnnotation {
        name: Some(name.to_owned()),
        ..DebugAnnotation::default()
    }
}

fn string(name: &str, value: impl Into<String>) -> DebugAnnotation {
    DebugAnnotation {
        string_value: Some(value.into()),
        ..annotation(name)
    }
}

fn uint(name: &str, value: u64) -> DebugAnnotation {
    DebugAnnotation {
        uint_value: Some(value),
        ..annotation(name)
    }
}

fn int(name: &str, value: i64) -> DebugAnnotation {
    DebugAnnotation {
        int_value: Some(value),
        ..annotation(name)
    }
}

fn descriptor(d: TrackDescriptor) -> TracePacket {
    TracePacket {
        track_descriptor: Some(d),
        ..TracePacket::default()
    }
}

fn track_event(kind: TrackEventType, track: u64, name: Option<String>) -> TrackEvent {
    TrackEvent {
        r#type: Some(kind as i32),
        track_uuid: Some(track),
        name,
        ..TrackEvent::default()
    }
}

/// Process and thread tracks, declared on first use.
#[derive(Default)]
struct Tasks {
    processes: BTreeMap<u32, u64>,
    threads: BTreeMap<(u32, u32), u64>,
    descriptors: Vec<TracePacket>,
}

impl Tasks {
    fn next_uuid(&self) -> u64 {
        FIRST_TASK_TRACK + self.descriptors.len() as u64
    }

    /// The uuid of the thread track of `pid`/`tid`, declaring it (and its process) if new.
    fn thread(&mut self, pid: u32, tid: u32, comm: &str) -> u64 {
        if let Some(&uuid) = self.threads.get(&(pid, tid)) {
            return uuid;
        }
        let process = if let Some(&uuid) = self.processes.get(&pid) {
            uuid
        } else {
            let uuid = self.next_uuid();
            self.processes.insert(pid, uuid);
            self.descriptors.push(descriptor(TrackDescriptor {
                uuid: Some(uuid),
                process: Some(ProcessDescriptor {
                    pid: Some(pid as i32),
                    process_name: Some(comm.to_owned()),
                }),
                ..TrackDescriptor::default()
            }));
            uuid
        };
        let uuid = self.next_uuid();
        self.threads.insert((pid, tid), uuid);
        self.descriptors.push(descriptor(TrackDescriptor {
            uuid: Some(uuid),
            parent_uuid: Some(process),
            thread: Some(ThreadDescriptor {
                pid: Some(pid as i32),
                tid: Some(i64::from(tid)),
                thread_name: Some(comm.to_owned()),
            }),
            ..TrackDescriptor::default()
        }));
        uuid
    }
}

/// The snapshot as a Perfetto `Trace` (see the module documentation for the layout).
#[must_use]
pub fn trace(s: &Snapshot) -> Trace {
    let h = &s.header;
    let mut header = Vec::new();
    if h.clock.boot_ns != 0 {
        let clock = |id: BuiltinClock, ns| Clock {
            clock_id: Some(id as u32),
            timestamp: Some(ns),
        };
        header.push(TracePacket {
            clock_snapshot: Some(ClockSnapshot {
                clocks: vec![
                    clock(BuiltinClock::Boottime, h.clock.boot_ns),
                    clock(BuiltinClock::Realtime, h.clock.realtime_ns),
                ],
                primary_trace_clock: Some(BuiltinClock::Boottime as i32),
            }),
            ..TracePacket::default()
        });
    }
    header.push(descriptor(TrackDescriptor {
        uuid: Some(SNAPSHOT_TRACK),
        name: Some(format!(
            "snapshot {} ({:?}) on {}",
            h.seq, h.kind, h.hostname
        )),
        ..TrackDescriptor::default()
    }));
    for (uuid, name) in (FIRST_COUNTER_TRACK..).zip(COUNTERS) {
        header.push(descriptor(TrackDescriptor {
            uuid: Some(uuid),
            parent_uuid: Some(SNAPSHOT_TRACK),
            name: Some(name.to_owned()),
            counter: Some(CounterDescriptor {
                unit: Some(CounterUnit::Count as i32),
            }),
            ..TrackDescriptor::default()
        }));
    }

    let mut tasks = Tasks::default();
    let mut timed: Vec<(u64, TrackEvent)> = Vec::new();
    let views = super::decode::views(s);
    for (e, v) in s.events.iter().zip(&views) {
        let track = tasks.thread(v.pid, v.tid, &v.comm);
        let probe = h.probes.iter().find(|p| p.id == e.probe_id);
        let mut args: Vec<DebugAnnotation> = Vec::new();
        for (name, value) in event::named_args(v, probe) {
            // A captured string or a decoded value is the arg; the raw word stays beside it.
            let raw = if v.strings.contains_key(&name) || v.decoded.contains_key(&name) {
                args.push(string(&name, event::shown(v, &name, &value)));
                format!("{name}_raw")
            } else {
                name
            };
            args.push(match value {
                ArgValue::Signed(x) => int(&raw, x),
                ArgValue::Unsigned(x) => uint(&raw, x),
                ArgValue::Hex(x) => DebugAnnotation {
                    pointer_value: Some(x),
                    ..annotation(&raw)
                },
            });
        }
        args.extend(v.ret.map(|r| int("ret", r)));
        args.extend(v.decoded.get("ret").map(|e| string("errno", e.as_str())));
        args.extend(
            v.strings
                .get("ret")
                .map(|_| string("ret_str", event::shown(v, "ret", &0))),
        );
        args.extend(v.function.as_deref().map(|f| string("function", f)));
        args.push(uint("cpu", u64::from(v.cpu)));
        let name = v.function.clone().unwrap_or_else(|| v.probe.clone());
        let kind = if v.duration_ns.is_some() {
            TrackEventType::SliceBegin
        } else {
            TrackEventType::Instant
        };
        let mut te = track_event(kind, track, Some(name));
        te.categories = vec!["probe".into()];
        te.debug_annotations = args;
        match v.duration_ns {
            Some(d) => {
                timed.push((v.ts_ns.saturating_sub(d), te));
                timed.push((v.ts_ns, track_event(TrackEventType::SliceEnd, track, None)));
            }
            None => timed.push((v.ts_ns, te)),
        }
    }
    if let Some(f) = &h.fired {
        let mut te = track_event(
            TrackEventType::Instant,
            SNAPSHOT_TRACK,
            Some(format!("trigger: {}", h.trigger)),
        );
        te.categories = vec!["trigger".into()];
        te.debug_annotations = vec![
            string("expression", h.trigger.as_str()),
            string("kind", format!("{:?}", h.kind)),
            string("probe", f.probe.as_str()),
            int("value", f.value),
            uint("pid", u64::from(f.pid)),
            uint("tid", u64::from(f.tid)),
            string("comm", f.comm.as_str()),
            uint("cpu", u64::from(f.cpu)),
            uint("time_ns", f.ts_ns),
            string("time", utc(h.clock.to_realtime(f.ts_ns))),
        ];
        if let Some(post) = &f.post {
            te.debug_annotations.push(string("post", post.as_str()));
        }
        if let Some(q) = &f.sequence {
            te.debug_annotations.extend([
                string("sequence", q.text.as_str()),
                uint("sequence_index", u64::from(q.index)),
                uint("sequence_a_ns", q.first_ns),
                uint("sequence_b_ns", q.then_ns),
            ]);
            // The window from A to B, on the snapshot track, before the trigger's instant.
            let mut begin = track_event(
                TrackEventType::SliceBegin,
                SNAPSHOT_TRACK,
                Some(format!("sequence {}: {}", q.index, q.text)),
            );
            begin.categories = vec!["trigger".into()];
            timed.push((q.first_ns, begin));
            timed.push((
                q.then_ns,
                track_event(TrackEventType::SliceEnd, SNAPSHOT_TRACK, None),
            ));
        }
        if let Some(v) = super::trigger_event(s, &views) {
            let probe = h.probes.iter().find(|p| p.name == v.probe);
            for (name, text) in super::shown_fields(v, probe) {
                te.debug_annotations.push(string(&name, text));
            }
        }
        for (name, frames) in [
            ("kernel_stack", &f.kernel_stack),
            ("user_stack", &f.user_stack),
        ] {
            if !frames.is_empty() {
                te.debug_annotations
                    .push(string(name, super::stack_lines(frames).join("\n")));
            }
        }
        timed.push((f.ts_ns, te));
    }
    let at = super::start_ns(s);
    let values = [
        h.total(|a| a.recorded),
        h.total(|a| a.overwritten),
        h.total(|a| a.dropped),
        h.total(|a| a.torn),
        h.missed_triggers,
    ];
    for (uuid, value) in (FIRST_COUNTER_TRACK..).zip(values) {
        let mut te = track_event(TrackEventType::Counter, uuid, None);
        te.counter_value = Some(value as i64);
        timed.push((at, te));
    }
    // Stable: a return's end stays after its own begin when both have the same time.
    timed.sort_by_key(|(ts, _)| *ts);

    let mut packets = header;
    packets.append(&mut tasks.descriptors);
    packets.extend(timed.into_iter().map(|(ts, te)| TracePacket {
        timestamp: Some(ts),
        timestamp_clock_id: Some(BuiltinClock::Boottime as u32),
        track_event: Some(te),
        ..TracePacket::default()
    }));
    for p in &mut packets {
        p.trusted_packet_sequence_id = Some(SEQUENCE_ID);
    }
    if let Some(first) = packets.first_mut() {
        first.sequence_flags = Some(proto::SEQ_INCREMENTAL_STATE_CLEARED);
    }
    Trace { packet: packets }
}

/// The snapshot as the bytes of a Perfetto trace file.
#[must_use]
pub fn encode(s: &Snapshot) -> Vec<u8> {
    trace(s).encode_to_vec()
}

#[cfg(test)]
mod tests;
