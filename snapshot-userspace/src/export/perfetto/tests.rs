use std::collections::{BTreeMap, BTreeSet};

use snapshot_common::{EVENT_HAS_ARGS, Event};

use super::{proto::*, *};

/// The export's sample (one thread: an entry, then its return) plus an event of a second thread
/// of the same process and one of another process.
fn sample() -> Snapshot {
    let mut s = crate::export::tests::sample();
    let other = |pid: u64, tid: u64, ts| Event {
        seq: 1,
        ts_ns: ts,
        pid_tgid: (pid << 32) | tid,
        comm: *b"other\0\0\0\0\0\0\0\0\0\0\0",
        probe_id: 0,
        flags: EVENT_HAS_ARGS,
        args: [0x10, 2, 3, 4, 5, 6],
        ..Event::default()
    };
    s.events.push(other(7, 9, 6000));
    s.events.push(other(11, 11, 7000));
    s
}

/// Decodes what [`encode`] wrote.
fn decoded(s: &Snapshot) -> Trace {
    Trace::decode(encode(s).as_slice()).expect("the export decodes as a Trace")
}

fn annotations(te: &TrackEvent) -> BTreeMap<String, DebugAnnotation> {
    te.debug_annotations
        .iter()
        .map(|a| (a.name.clone().unwrap_or_default(), a.clone()))
        .collect()
}

#[test]
fn tracks_are_declared_before_use_and_events_land_on_their_thread() {
    let t = decoded(&sample());
    let mut declared = BTreeMap::new();
    let mut threads = BTreeMap::new();
    let mut processes = BTreeMap::new();
    for p in &t.packet {
        assert_eq!(p.trusted_packet_sequence_id, Some(SEQUENCE_ID));
        if let Some(d) = &p.track_descriptor {
            let uuid = d.uuid.expect("every track has a uuid");
            assert!(
                declared.insert(uuid, d.clone()).is_none(),
                "uuid {uuid} twice"
            );
            if let Some(th) = &d.thread {
                threads.insert((th.pid.unwrap(), th.tid.unwrap()), uuid);
                let parent = d
                    .parent_uuid
                    .expect("a thread track has its process as parent");
                assert_eq!(
                    declared[&parent].process.as_ref().and_then(|p| p.pid),
                    th.pid,
                    "the parent is the thread's process"
                );
            }
            if let Some(pr) = &d.process {
                processes.insert(pr.pid.unwrap(), uuid);
            }
        }
        if let Some(te) = &p.track_event {
            let track = te.track_uuid.expect("every event names its track");
            assert!(
                declared.contains_key(&track),
                "event on undeclared track {track}"
            );
            assert_eq!(p.timestamp_clock_id, Some(BuiltinClock::Boottime as u32));
            assert!(p.timestamp.is_some());
        }
    }
    assert_eq!(
        threads.keys().copied().collect::<Vec<_>>(),
        [(7, 8), (7, 9), (11, 11)],
        "a track per thread"
    );
    assert_eq!(processes.keys().copied().collect::<Vec<_>>(), [7, 11]);
    assert_eq!(
        t.packet[0].sequence_flags,
        Some(SEQ_INCREMENTAL_STATE_CLEARED),
        "the first packet clears the incremental state"
    );
    assert!(t.packet[1..].iter().all(|p| p.sequence_flags.is_none()));
    let name = |key| {
        let d = &declared[&threads[&key]];
        d.thread.as_ref().unwrap().thread_name.clone().unwrap()
    };
    assert_eq!(
        (name((7, 8)), name((11, 11))),
        ("work".into(), "other".into())
    );

    let on = |track: u64| -> Vec<(u64, TrackEvent)> {
        t.packet
            .iter()
            .filter_map(|p| Some((p.timestamp?, p.track_event.clone()?)))
            .filter(|(_, te)| te.track_uuid == Some(track))
            .collect()
    };
    let main = on(threads[&(7, 8)]);
    let kinds: Vec<(u64, Option<i32>)> = main.iter().map(|(ts, te)| (*ts, te.r#type)).collect();
    assert_eq!(
        kinds,
        [
            (1000, Some(TrackEventType::Instant as i32)),
            (1000, Some(TrackEventType::SliceBegin as i32)),
            (5000, Some(TrackEventType::SliceEnd as i32)),
        ],
        "the entry as an instant, the call as a slice from entry to return"
    );
    let slice = annotations(&main[1].1);
    assert_eq!(slice["ret"].int_value, Some(3));
    assert_eq!(main[1].1.name.as_deref(), Some("f"));
    let second = on(threads[&(7, 9)]);
    let args = annotations(&second[0].1);
    assert_eq!(
        (args["arg0"].pointer_value, args["arg5"].pointer_value),
        (Some(0x10), Some(6)),
        "uprobe arguments in hex, named as the text export names them"
    );
}

#[test]
fn trigger_and_accounting_are_on_the_snapshot_track() {
    let s = sample();
    let t = decoded(&s);
    let events: Vec<(u64, &TrackEvent)> = t
        .packet
        .iter()
        .filter_map(|p| Some((p.timestamp?, p.track_event.as_ref()?)))
        .collect();
    let trigger: Vec<_> = events
        .iter()
        .filter(|(_, te)| te.track_uuid == Some(SNAPSHOT_TRACK))
        .collect();
    assert_eq!(trigger.len(), 1);
    let (ts, te) = trigger[0];
    assert_eq!(*ts, 5000);
    assert_eq!(te.r#type, Some(TrackEventType::Instant as i32));
    let a = annotations(te);
    assert_eq!(a["value"].int_value, Some(3));
    assert_eq!(a["expression"].string_value.as_deref(), Some("f.ret == 3"));
    assert_eq!(a["probe"].string_value.as_deref(), Some("f"));
    assert_eq!(
        (a["pid"].uint_value, a["tid"].uint_value),
        (Some(7), Some(8))
    );
    assert_eq!(a["comm"].string_value.as_deref(), Some("work"));
    assert!(!a.contains_key("kernel_stack"), "no stack, no annotation");

    let mut counters = BTreeMap::new();
    let mut names = BTreeMap::new();
    for p in &t.packet {
        if let Some(d) = p.track_descriptor.as_ref().filter(|d| d.counter.is_some()) {
            assert_eq!(d.parent_uuid, Some(SNAPSHOT_TRACK));
            names.insert(d.uuid.unwrap(), d.name.clone().unwrap());
        }
    }
    for (ts, te) in &events {
        if te.r#type == Some(TrackEventType::Counter as i32) {
            assert_eq!(
                *ts, 1000,
                "at the first event, as in the Chrome JSON export"
            );
            counters.insert(names[&te.track_uuid.unwrap()].clone(), te.counter_value);
        }
    }
    let expected: BTreeMap<String, Option<i64>> = [
        ("recorded", 2),
        ("overwritten", 4),
        ("dropped", 1),
        ("torn", 0),
        ("missed triggers", 2),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), Some(v)))
    .collect();
    assert_eq!(counters, expected, "a zero is written, not left out");
    let sorted: Vec<u64> = events.iter().map(|(ts, _)| *ts).collect();
    assert!(sorted.is_sorted(), "events in time order: {sorted:?}");
}

#[test]
fn an_empty_snapshot_without_trigger_is_still_a_trace() {
    let mut s = sample();
    s.events.clear();
    s.header.fired = None;
    let t = decoded(&s);
    let uuids: BTreeSet<u64> = t
        .packet
        .iter()
        .filter_map(|p| p.track_descriptor.as_ref()?.uuid)
        .collect();
    assert_eq!(
        uuids.len(),
        1 + COUNTERS.len(),
        "the snapshot and counter tracks"
    );
    assert!(
        t.packet
            .iter()
            .filter_map(|p| p.track_event.as_ref())
            .all(|te| te.r#type == Some(TrackEventType::Counter as i32))
    );
}

#[test]
fn trigger_carries_the_post_window_and_the_stacks() {
    let mut s = sample();
    let f = s.header.fired.as_mut().unwrap();
    f.post = Some("5 events".into());
    f.kernel_stack = ["vfs_read+0x10", "ksys_read+0x5"]
        .map(|sym| crate::snapshot::symbols::Frame {
            addr: 1,
            symbol: Some(sym.into()),
            object: None,
            ..Default::default()
        })
        .to_vec();
    let t = decoded(&s);
    let te = t
        .packet
        .iter()
        .filter_map(|p| p.track_event.as_ref())
        .find(|te| te.track_uuid == Some(SNAPSHOT_TRACK))
        .expect("trigger instant");
    let a = annotations(te);
    assert_eq!(a["post"].string_value.as_deref(), Some("5 events"));
    assert_eq!(
        a["kernel_stack"].string_value.as_deref(),
        Some("vfs_read+0x10\nksys_read+0x5")
    );
    assert!(!a.contains_key("user_stack"));
}
