use snapshot_common::{EVENT_HAS_ARGS, EVENT_HAS_RET, EVENT_HAS_STRINGS, strings::payload_size};

use super::*;
use crate::{
    export::{self, event::text_line},
    probe::capture::{Capture, Memory},
    snapshot::Strings,
};

const SIZE: u32 = 16;

fn tp(id: u32, name: &str, args: &[&str], formats: &str) -> ProbeInfo {
    let spec: ProbeSpec = format!("tracepoint:syscalls:{name}").parse().unwrap();
    let mut p = ProbeInfo::new(id, &spec, args.iter().map(|a| (*a).to_owned()).collect());
    p.arg_formats = formats.into();
    p.ret_errno = name.starts_with("sys_exit_");
    p
}

fn filename() -> Capture {
    let mut c = Capture::new("filename", 1, CaptureKind::Str);
    c.memory = Memory::User;
    c
}

/// A string slot for the event (cpu 0, `seq`) with one string: `status` and its bytes.
fn slot(seq: u64, status: i32, bytes: &[u8]) -> Vec<u8> {
    let mut s = vec![0u8; payload_size(SIZE, 1) as usize];
    s[..8].copy_from_slice(&seq.to_le_bytes());
    s[16..20].copy_from_slice(&status.to_le_bytes());
    s[32..32 + bytes.len()].copy_from_slice(bytes);
    s
}

/// An openat of `path` (fd 3), a read of fd 3 that fails with EBADF, a close of fd 3, a read of
/// fd 3 again; then an openat of a NULL pointer and of a path longer than the string size.
fn snapshot() -> Snapshot {
    let mut open = tp(
        0,
        "sys_enter_openat",
        &["dfd", "filename", "flags", "mode"],
        "ixiu",
    );
    open.captures = vec![filename()];
    let probes = vec![
        open,
        tp(1, "sys_exit_openat", &[], ""),
        tp(2, "sys_enter_read", &["fd", "buf", "count"], "uxu"),
        tp(3, "sys_exit_read", &[], ""),
        tp(4, "sys_enter_close", &["fd"], "u"),
    ];
    let mut seq = 0;
    let mut ev = |probe_id, args: [u64; 6], ret: Option<i64>, strings: bool| {
        seq += 1;
        Event {
            seq,
            ts_ns: seq * 1000,
            pid_tgid: (7 << 32) | 8,
            comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
            probe_id,
            args,
            ret: ret.unwrap_or(0) as u64,
            flags: EVENT_HAS_ARGS
                | if ret.is_some() { EVENT_HAS_RET } else { 0 }
                | if strings { EVENT_HAS_STRINGS } else { 0 },
            ..Event::default()
        }
    };
    let at_fdcwd = u64::from((-100i32).cast_unsigned());
    let events = vec![
        ev(0, [at_fdcwd, 0x7ff0, 0o2_000_000, 0, 0, 0], None, true),
        ev(1, [0; 6], Some(3), false),
        ev(2, [3, 0x7ff8, 16, 0, 0, 0], None, false),
        ev(3, [0; 6], Some(-9), false),
        ev(4, [3, 0, 0, 0, 0, 0], None, false),
        ev(2, [3, 0x7ff8, 16, 0, 0, 0], None, false),
        ev(0, [at_fdcwd, 0, 0o1101, 0o644, 0, 0], None, true),
        ev(0, [at_fdcwd, 0x7ff0, 0, 0, 0, 0], None, true),
    ];
    let mut data = slot(1, 14, b"/etc/hostname\0");
    data.extend(slot(7, -14, b""));
    data.extend(slot(8, SIZE as i32 + 2, b"/0123456789abcdef"));
    let mut s = crate::export::tests::sample();
    s.header.probes = probes;
    s.header.string_size = SIZE;
    s.header.fired = None;
    s.events = events;
    s.strings = Strings {
        slot: payload_size(SIZE, 1),
        data,
    };
    s
}

#[test]
fn events_read_like_strace() {
    let s = snapshot();
    let views = views(&s);
    let lines: Vec<String> = views
        .iter()
        .zip(&s.events)
        .map(|(v, e)| {
            let p = s.header.probes.iter().find(|p| p.id == e.probe_id);
            text_line(v, p)
        })
        .collect();
    let tail = |i: usize| lines[i].split_once(": ").map(|x| x.1).unwrap().to_owned();
    assert_eq!(
        tail(0),
        "sys_enter_openat: dfd=AT_FDCWD filename=\"/etc/hostname\" flags=O_RDONLY|O_CLOEXEC mode=0"
    );
    assert_eq!(
        tail(2),
        "sys_enter_read: fd=3</etc/hostname> buf=0x7ff8 count=16"
    );
    assert_eq!(tail(3), "sys_exit_read: ret=-9 EBADF");
    assert_eq!(
        tail(4),
        "sys_enter_close: fd=3</etc/hostname>",
        "annotated, then forgotten"
    );
    assert_eq!(tail(5), "sys_enter_read: fd=3 buf=0x7ff8 count=16");
    assert_eq!(
        tail(6),
        "sys_enter_openat: dfd=AT_FDCWD filename=NULL flags=O_WRONLY|O_CREAT|O_TRUNC mode=0644"
    );
    assert_eq!(
        tail(7),
        "sys_enter_openat: dfd=AT_FDCWD filename=\"/0123456789abcde\"... flags=O_RDONLY mode=0"
    );
    let json = serde_json::to_value(&views[3]).unwrap();
    assert_eq!(json["ret"], -9, "the raw number stays");
    assert_eq!(json["decoded"]["ret"], "EBADF");
    let json = serde_json::to_value(&views[0]).unwrap();
    assert_eq!(json["strings"]["filename"], "/etc/hostname");
    assert_eq!(json["decoded"]["flags"], "O_RDONLY|O_CLOEXEC");
    assert_eq!(json["args"][2], 0o2_000_000);
    let json = serde_json::to_value(&views[6]).unwrap();
    assert!(json["strings"]["filename"].is_null());
    assert_eq!(json["unreadable"]["filename"], "NULL");
    let json = serde_json::to_value(&views[7]).unwrap();
    assert_eq!(json["truncated"][0], "filename");
}

#[test]
fn the_trigger_context_shows_the_event() {
    let mut s = snapshot();
    s.header.trigger = "sys_exit_read.ret < 0".into();
    s.header.fired = Some(crate::snapshot::Fired {
        ts_ns: 4000,
        pid: 7,
        tid: 8,
        comm: "work".into(),
        probe: "sys_exit_read".into(),
        value: -9,
        ..crate::snapshot::Fired::default()
    });
    let text = export::text(&s);
    assert!(text.contains("sys_exit_read value=-9 EBADF\n"), "{text}");
    assert!(
        text.contains("# the event: sys_exit_read: ret=-9 EBADF\n"),
        "{text}"
    );
    let chrome = export::chrome_json(&s);
    let trigger = chrome["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cat"] == "trigger")
        .unwrap();
    assert_eq!(trigger["args"]["ret"], "-9 EBADF");
    let open = chrome["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "sys_enter_openat")
        .unwrap();
    assert_eq!(open["args"]["filename"], "\"/etc/hostname\"");
    assert_eq!(open["args"]["arg1"], "0x7ff0", "the raw word stays");
}

#[test]
fn bytes_are_escaped_like_c() {
    assert_eq!(escape(b"plain /path"), "plain /path");
    assert_eq!(escape("café".as_bytes()), "café", "valid UTF-8 stays");
    assert_eq!(escape(b"a\"b\\c\n\t\0"), "a\\\"b\\\\c\\n\\t\\0");
    assert_eq!(escape(b"\xff\xfe\x01"), "\\xff\\xfe\\x01");
}
