//! Snapshots in formats other tools read: Perfetto's protobuf trace ([`perfetto`]), the Trace
//! Event Format (Chrome JSON, which the Perfetto UI and `chrome://tracing` open) and
//! ftrace-like text.

pub mod decode;
pub mod event;
pub mod perfetto;

use serde_json::{Value, json};

use self::event::{EventView, printable as p};
use crate::snapshot::{Snapshot, symbols::Frame};

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Where the accounting counters are placed: the first event, else the trigger, else 0.
fn start_ns(s: &Snapshot) -> u64 {
    s.events.first().map_or_else(
        || s.header.fired.as_ref().map_or(0, |f| f.ts_ns),
        |e| e.ts_ns,
    )
}

/// The strings and decoded values of an event as `name: text` pairs, as the text line shows
/// them (`filename: "/etc/hostname"`, `fd: 3</etc/hostname>`, `ret: -9 EBADF`).
#[must_use]
pub fn shown_fields(
    v: &EventView,
    probe: Option<&crate::probe::ProbeInfo>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = event::named_args(v, probe)
        .into_iter()
        .filter(|(name, _)| v.strings.contains_key(name) || v.decoded.contains_key(name))
        .map(|(name, raw)| {
            let text = event::shown(v, &name, &raw);
            (name, text)
        })
        .collect();
    if let Some(r) = v
        .ret
        .filter(|_| v.strings.contains_key("ret") || v.decoded.contains_key("ret"))
    {
        out.push(("ret".to_owned(), event::shown(v, "ret", &r)));
    }
    out
}

fn args_of(v: &EventView, probe: Option<&crate::probe::ProbeInfo>) -> Value {
    let mut args = serde_json::Map::new();
    for (i, a) in v.args.iter().enumerate() {
        args.insert(format!("arg{i}"), json!(format!("{a:#x}")));
    }
    if let Some(r) = v.ret {
        args.insert("ret".into(), json!(r));
    }
    if let Some(f) = &v.function {
        args.insert("function".into(), json!(f));
    }
    for (name, text) in shown_fields(v, probe) {
        args.insert(name, json!(text));
    }
    Value::Object(args)
}

/// The event that fired the snapshot's trigger (same time, thread and probe), if it is in it.
#[must_use]
pub fn trigger_event<'a>(s: &Snapshot, views: &'a [EventView]) -> Option<&'a EventView> {
    let f = s.header.fired.as_ref()?;
    views
        .iter()
        .find(|v| v.ts_ns == f.ts_ns && v.tid == f.tid && v.probe == f.probe)
}

/// The header lines of a sequence that fired: which, when A and B held, and A's event when
/// the snapshot holds it (B's is "the event").
fn sequence_lines(
    s: &Snapshot,
    views: &[EventView],
    f: &crate::snapshot::Fired,
    q: &crate::snapshot::SequenceFired,
) -> String {
    let at = |ns: u64| format!("{}.{:06}", ns / 1_000_000_000, (ns % 1_000_000_000) / 1000);
    let gap = q.then_ns.saturating_sub(q.first_ns);
    let mut out = format!(
        "# sequence {} `{}`: A at {}, B at {} ({}.{:03} ms later, same thread {})\n",
        q.index,
        q.text,
        at(q.first_ns),
        at(q.then_ns),
        gap / 1_000_000,
        (gap % 1_000_000) / 1000,
        f.tid
    );
    if let Some(v) = views
        .iter()
        .find(|v| v.ts_ns == q.first_ns && v.tid == f.tid)
    {
        let probe = s.header.probes.iter().find(|p| p.name == v.probe);
        out.push_str(&format!(
            "# the A event: {}:{}\n",
            v.probe,
            event::fields_text(v, probe)
        ));
    }
    out
}

/// The trigger's value as shown: `-9 EBADF` when its probe's return is an errno.
fn fired_value(s: &Snapshot, fired: &crate::snapshot::Fired) -> String {
    let errno = s
        .header
        .probes
        .iter()
        .find(|p| p.name == fired.probe)
        .filter(|p| p.ret_errno)
        .and_then(|_| crate::abi::errno_of_ret(fired.value));
    match errno
        .map(str::to_owned)
        .or_else(|| crate::trigger::builtin::describe_value(&fired.probe, fired.value))
    {
        Some(e) => format!("{} {e}", fired.value),
        None => fired.value.to_string(),
    }
}

/// The Trace Event Format: a track per thread (named by comm), an instant per event, a slice
/// per return with a known duration (entry/return pairs), the trigger as a global instant with
/// its context, and the accounting as counters. Timestamps are boot-time microseconds.
#[must_use]
pub fn chrome_json(s: &Snapshot) -> Value {
    let probes = &s.header.probes;
    let mut out = Vec::new();
    let mut named = std::collections::BTreeSet::new();
    let views = decode::views(s);
    for (e, v) in s.events.iter().zip(&views) {
        let probe = probes.iter().find(|p| p.id == e.probe_id);
        if named.insert((v.pid, v.tid)) {
            out.push(json!({"ph": "M", "name": "thread_name", "pid": v.pid, "tid": v.tid, "args": {"name": v.comm}}));
            out.push(json!({"ph": "M", "name": "process_name", "pid": v.pid, "tid": v.tid, "args": {"name": format!("{} ({})", v.comm, v.pid)}}));
        }
        let name = v.function.clone().unwrap_or_else(|| v.probe.clone());
        match v.duration_ns {
            Some(d) => out.push(json!({"ph": "X", "name": name, "cat": "probe", "ts": us(v.ts_ns.saturating_sub(d)), "dur": us(d), "pid": v.pid, "tid": v.tid, "args": args_of(v, probe)})),
            None => out.push(json!({"ph": "i", "s": "t", "name": name, "cat": "probe", "ts": us(v.ts_ns), "pid": v.pid, "tid": v.tid, "args": args_of(v, probe)})),
        }
    }
    let h = &s.header;
    if let Some(f) = &h.fired {
        let mut args = json!({"probe": f.probe, "value": f.value, "cpu": f.cpu, "comm": f.comm, "kind": h.kind, "post": f.post,
                "kernel_stack": stack_lines(&f.kernel_stack), "user_stack": stack_lines(&f.user_stack)});
        if let Some(q) = &f.sequence {
            args["sequence"] = json!(q);
        }
        if let Some(v) = trigger_event(s, &views) {
            let probe = probes.iter().find(|p| p.name == v.probe);
            for (name, text) in shown_fields(v, probe) {
                args[name] = json!(text);
            }
        }
        out.push(json!({"ph": "i", "s": "g", "name": format!("trigger: {}", h.trigger), "cat": "trigger", "ts": us(f.ts_ns), "pid": f.pid, "tid": f.tid,
            "args": args}));
    }
    out.push(json!({"ph": "C", "name": "accounting", "ts": us(start_ns(s)), "pid": 0, "args": {
        "recorded": h.total(|a| a.recorded), "overwritten": h.total(|a| a.overwritten), "dropped": h.total(|a| a.dropped), "torn": h.total(|a| a.torn), "missed_triggers": h.missed_triggers}}));
    json!({"traceEvents": out, "displayTimeUnit": "ns", "metadata": {"snapshot": h.seq, "hostname": h.hostname, "kernel_release": h.kernel_release, "trigger": h.trigger}})
}

/// A stack as one line per frame, innermost first.
fn stack_lines(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(Frame::describe).collect()
}

/// ftrace-like text, trigger context on top (what `snapshot show` prints); with a `--post`
/// window, a marker line shows where the trigger fired among the events.
#[must_use]
pub fn text(s: &Snapshot) -> String {
    let h = &s.header;
    let views = decode::views(s);
    let mut out = format!(
        "# snapshot {} ({:?}) on {} ({}), trigger `{}`\n",
        h.seq,
        h.kind,
        p(&h.hostname),
        p(&h.kernel_release),
        p(&h.trigger)
    );
    if let Some(f) = &h.fired {
        out.push_str(&format!(
            "# fired by {}-{} [{:03}] {}.{:06}: {} value={}\n",
            p(&f.comm),
            f.tid,
            f.cpu,
            f.ts_ns / 1_000_000_000,
            (f.ts_ns % 1_000_000_000) / 1000,
            p(&f.probe),
            fired_value(s, f)
        ));
        if let Some(q) = &f.sequence {
            out.push_str(&sequence_lines(s, &views, f, q));
        }
        if let Some(v) = trigger_event(s, &views) {
            let probe = h.probes.iter().find(|p| p.name == v.probe);
            out.push_str(&format!(
                "# the event: {}:{}\n",
                v.probe,
                event::fields_text(v, probe)
            ));
        }
        if let Some(post) = &f.post {
            out.push_str(&format!(
                "# then recorded {} before the snapshot\n",
                p(post)
            ));
        }
        for (what, frames) in [("kernel", &f.kernel_stack), ("user", &f.user_stack)] {
            if !frames.is_empty() {
                if let ("user", Some(maps)) = (what, &f.user_maps) {
                    out.push_str(&format!("# user stack's memory map: {}\n", p(maps)));
                }
                out.push_str(&format!("# {what} stack:\n"));
                for line in stack_lines(frames) {
                    out.push_str(&format!("#   {}\n", p(&line)));
                }
            }
        }
    }
    let mut marker = h
        .fired
        .as_ref()
        .filter(|f| f.post.is_some())
        .map(|f| f.ts_ns);
    out.push_str(&format!(
        "# events {}, overwritten {}, dropped {}, torn {}, missed triggers {}\n",
        s.events.len(),
        h.total(|a| a.overwritten),
        h.total(|a| a.dropped),
        h.total(|a| a.torn),
        h.missed_triggers
    ));
    if h.lost_snapshots > 0 {
        out.push_str(&format!(
            "# lost before this snapshot: {} snapshot(s), {} events (the disk refused them and --max-pending was full)\n",
            h.lost_snapshots, h.lost_events
        ));
    }
    for (e, v) in s.events.iter().zip(&views) {
        if marker.is_some_and(|t| e.ts_ns > t) {
            out.push_str("# ---- trigger fired here; the events below came after it ----\n");
            marker = None;
        }
        let probe = h.probes.iter().find(|p| p.id == e.probe_id);
        out.push_str(&event::text_line(v, probe));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use snapshot_common::{EVENT_HAS_ARGS, EVENT_HAS_DURATION, EVENT_HAS_RET, Event};

    use super::*;
    use crate::{
        probe::{ProbeInfo, ProbeSpec},
        session::buffer::CpuAccount,
        snapshot::{ClockRef, Fired, Header, SnapshotKind},
    };

    /// A snapshot of one thread: an entry, then its return (a 4 µs call) that fired the trigger.
    pub(super) fn sample() -> Snapshot {
        let entry: ProbeSpec = "uprobe:/bin/x:f".parse().unwrap();
        let ret: ProbeSpec = "uretprobe:/bin/x:f".parse().unwrap();
        let ev = |ts, probe_id, flags, duration_ns| Event {
            seq: 1,
            ts_ns: ts,
            pid_tgid: (7 << 32) | 8,
            comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
            probe_id,
            flags,
            duration_ns,
            ret: 3,
            ..Event::default()
        };
        Snapshot {
            header: Header {
                seq: 1,
                kind: SnapshotKind::Condition,
                hostname: "h".into(),
                kernel_release: "k".into(),
                clock: ClockRef::default(),
                probes: vec![
                    ProbeInfo::new(0, &entry, vec![]),
                    ProbeInfo::new(1, &ret, vec![]),
                ],
                trigger: "f.ret == 3".into(),
                fired: Some(Fired {
                    ts_ns: 5000,
                    cpu: 0,
                    pid: 7,
                    tid: 8,
                    comm: "work".into(),
                    probe: "f".into(),
                    value: 3,
                    ..Fired::default()
                }),
                missed_triggers: 2,
                ncpu: 1,
                capacity: 16,
                cpus: vec![CpuAccount {
                    cpu: 0,
                    recorded: 2,
                    overwritten: 4,
                    dropped: 1,
                    torn: 0,
                }],
                lost_snapshots: 0,
                lost_events: 0,
                string_size: 0,
            },
            events: vec![
                ev(1000, 0, EVENT_HAS_ARGS, 0),
                ev(5000, 1, EVENT_HAS_RET | EVENT_HAS_DURATION, 4000),
            ],
            strings: crate::snapshot::Strings::default(),
        }
    }

    #[test]
    fn chrome_json_structure() {
        let v = chrome_json(&sample());
        let evs = v["traceEvents"].as_array().unwrap();
        let phases: Vec<&str> = evs.iter().map(|e| e["ph"].as_str().unwrap()).collect();
        assert_eq!(phases, ["M", "M", "i", "X", "i", "C"]);
        assert_eq!(evs[0]["args"]["name"], "work");
        let slice = &evs[3];
        assert_eq!(
            (slice["ts"].as_f64(), slice["dur"].as_f64()),
            (Some(1.0), Some(4.0)),
            "the call spans entry..return"
        );
        assert_eq!(evs[4]["s"], "g");
        assert_eq!(evs[4]["args"]["value"], 3);
        assert_eq!(evs[5]["args"]["overwritten"], 4);
        assert_eq!(evs[5]["args"]["missed_triggers"], 2);
    }

    #[test]
    fn text_has_the_context_then_the_events() {
        let t = text(&sample());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("# snapshot 1 (Condition)"));
        assert!(lines[1].contains("fired by work-8"));
        assert_eq!(
            lines[2], "# the event: f: ret=3 duration=4.000us",
            "the triggering event, found in the snapshot"
        );
        assert!(lines[3].contains("overwritten 4, dropped 1"));
        assert!(lines[5].contains("ret=3 duration=4.000us"), "{}", lines[5]);
        assert!(
            !t.contains("trigger fired here"),
            "no marker without --post"
        );
    }

    #[test]
    fn text_shows_stacks_and_where_a_post_window_begins() {
        let mut s = sample();
        let f = s.header.fired.as_mut().unwrap();
        f.ts_ns = 2000;
        f.post = Some("1 events".into());
        f.kernel_stack = vec![Frame {
            addr: 0xffff_ffff_8100_0010,
            symbol: Some("vfs_read+0x10".into()),
            object: None,
            ..Default::default()
        }];
        f.user_stack = vec![Frame {
            addr: 0x1234,
            symbol: None,
            object: Some("work".into()),
            ..Default::default()
        }];
        let t = text(&s);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[2], "# then recorded 1 events before the snapshot");
        assert_eq!(
            &lines[3..7],
            [
                "# kernel stack:",
                "#   vfs_read+0x10",
                "# user stack:",
                "#   0x1234 (work)"
            ]
        );
        let marker = lines
            .iter()
            .position(|l| l.contains("trigger fired here"))
            .unwrap();
        assert!(
            lines[marker - 1].contains("f:"),
            "the event before the trigger is above it"
        );
        assert!(
            lines[marker + 1].contains("ret=3"),
            "the event after it is below"
        );
        let v = chrome_json(&s);
        let trig = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["cat"] == "trigger")
            .unwrap();
        assert_eq!(trig["args"]["kernel_stack"][0], "vfs_read+0x10");
        assert_eq!(trig["args"]["post"], "1 events");
    }

    /// Issue 11, finding 1: a header whose tracepoint lists more argument names than an event
    /// carries (checksums right) is refused clearly or shown, never a panic, on every path.
    #[test]
    fn too_many_argument_names_are_no_panic() {
        let mut s = crate::snapshot::tests::sample();
        s.header.probes[0].arg_names = (0..7).map(|i| format!("f{i}")).collect();
        s.header.probes[0].arg_formats = "ddddddd".into();
        match crate::snapshot::decode(&crate::snapshot::encode(&s), std::path::Path::new("x.snap"))
        {
            Err(e) => assert!(e.to_string().contains("argument names"), "{e}"),
            Ok(back) => {
                let text = super::text(&back);
                assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 5);
                let _ = super::chrome_json(&back);
                let _ = super::perfetto::encode(&back);
                for e in &back.events {
                    let _ = serde_json::to_string(&super::event::view(e, &back.header.probes));
                }
            }
        }
    }
}
