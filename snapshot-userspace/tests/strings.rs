//! Strings and buffers captured with their events (root): the workload's known strings
//! (empty, exactly `--string-size`, one byte longer, non-ASCII, NULL) through a tracepoint and
//! a uprobe, a `write`'s buffer, string triggers that fire and that do not, the kernel's string
//! comparisons against userspace's on random expressions, and strings never torn from their
//! events across many flips on two CPUs.

mod common;

use std::collections::HashSet;

use common::{WORKLOAD, of, record, require_root, snapshot};
use snapshot_userspace::{
    export::event::EventView,
    probe::{ProbeInfo, ProbeSpec},
    snapshot::SnapshotKind,
    testing::{Leaves, Rng, random_expr},
    trigger::{self, EventCtx},
};

/// `--string-size` of these tests: small, so truncation is easy to reach.
const SIZE: usize = 16;

fn exact() -> String {
    format!("/{}", "x".repeat(SIZE - 1))
}

fn longer() -> String {
    format!("/{}", "y".repeat(SIZE))
}

fn string<'a>(e: &'a EventView, name: &str) -> Option<&'a str> {
    e.strings.get(name).and_then(|s| s.as_deref())
}

fn truncated(e: &EventView, name: &str) -> bool {
    e.truncated.iter().any(|t| t == name)
}

/// The workload's own openat calls: the five cases, found by the empty path that starts them.
fn cases<'a>(events: &[&'a EventView]) -> Vec<&'a EventView> {
    let start = events
        .iter()
        .position(|e| string(e, "filename") == Some(""))
        .expect("the empty path's openat is recorded");
    events[start..start + 5].to_vec()
}

#[test]
fn a_tracepoint_captures_paths_and_a_write_s_buffer() {
    require_root();
    let size = SIZE.to_string();
    let run = record(&[
        "--probe",
        "tracepoint:syscalls:sys_enter_openat",
        "--probe",
        "tracepoint:syscalls:sys_exit_openat",
        "--probe",
        "tracepoint:syscalls:sys_enter_write",
        "--string-size",
        &size,
        "--trigger",
        "manual",
        "--dump-on-exit",
        "--",
        WORKLOAD,
        "strings",
        &size,
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let opens = of(&run, "sys_enter_openat");
    let c = cases(&opens);
    assert_eq!(
        (string(c[0], "filename"), truncated(c[0], "filename")),
        (Some(""), false)
    );
    assert_eq!(
        (string(c[1], "filename"), truncated(c[1], "filename")),
        (Some(exact().as_str()), false),
        "exactly --string-size bytes: complete"
    );
    assert_eq!(
        (string(c[2], "filename"), truncated(c[2], "filename")),
        (Some(&longer()[..SIZE]), true),
        "one byte more: cut, and shown so"
    );
    assert_eq!(
        string(c[3], "filename"),
        Some("/tmp/café-\\xff"),
        "UTF-8 kept, other bytes escaped"
    );
    assert_eq!(string(c[4], "filename"), None);
    assert_eq!(
        c[4].unreadable.get("filename").map(String::as_str),
        Some("NULL")
    );
    assert_eq!(c[4].args[1], 0, "the raw pointer stays");
    // Their returns: ENOENT for the paths (and the empty one), EFAULT for NULL.
    let exits = of(&run, "sys_exit_openat");
    let errnos: Vec<&str> = exits
        .iter()
        .filter_map(|e| e.decoded.get("ret").map(String::as_str))
        .collect();
    assert!(
        errnos.ends_with(&["ENOENT", "ENOENT", "ENOENT", "ENOENT", "EFAULT"]),
        "{errnos:?}"
    );
    let writes = of(&run, "sys_enter_write");
    let last = writes.last().expect("the write to /dev/null");
    assert_eq!(string(last, "buf"), Some("hello\\n\\0world"), "buf(count)");
    assert_eq!(
        last.decoded.get("fd").map(String::as_str),
        Some("/dev/null")
    );

    // The text shows them as strace does.
    let file = run.snapshots[0].header.seq;
    assert_eq!(file, 1);
    let path = common::snapshot_files(&run.out.0).remove(0);
    let out = snapshot(&["show", &path.to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("filename=\"{}\"...", &longer()[..SIZE])),
        "{text}"
    );
    assert!(
        text.contains(&format!("filename=\"{}\" flags=O_RDONLY", exact())),
        "{text}"
    );
    assert!(text.contains("filename=NULL"), "{text}");
    assert!(text.contains("ret=-14 EFAULT"), "{text}");
    assert!(
        text.contains("</dev/null> buf=\"hello\\n\\0world\" count=12"),
        "{text}"
    );
    let json = snapshot(&["show", "--json", &path.to_string_lossy()]);
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(
        json.lines()
            .any(|l| l.contains(&format!("\"filename\":\"{}\"", exact()))),
        "JSON carries the string"
    );
}

#[test]
fn a_uprobe_captures_declared_strings_and_buffers() {
    require_root();
    let size = SIZE.to_string();
    let probe = format!("uprobe:{WORKLOAD}:snapshot_workload_str(arg0:str, arg1:buf(arg2))");
    let run = record(&[
        "--probe",
        &probe,
        "--string-size",
        &size,
        "--trigger",
        "manual",
        "--dump-on-exit",
        "--",
        WORKLOAD,
        "strings",
        &size,
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let c = of(&run, "snapshot_workload_str");
    assert_eq!(c.len(), 5);
    let got: Vec<(Option<&str>, bool, Option<&str>, bool)> = c
        .iter()
        .map(|e| {
            (
                string(e, "arg0"),
                truncated(e, "arg0"),
                string(e, "arg1"),
                truncated(e, "arg1"),
            )
        })
        .collect();
    let (exact, longer) = (exact(), longer());
    assert_eq!(
        got,
        [
            (Some(""), false, Some(""), false),
            (Some(exact.as_str()), false, Some(exact.as_str()), false),
            (Some(&longer[..SIZE]), true, Some(&longer[..SIZE]), true),
            (
                Some("/tmp/café-\\xff"),
                false,
                Some("/tmp/café-\\xff"),
                false
            ),
            (None, false, None, false),
        ]
    );
    assert_eq!(
        c[4].unreadable.get("arg0").map(String::as_str),
        Some("NULL")
    );
    assert_eq!(
        c[4].unreadable.get("arg1").map(String::as_str),
        Some("NULL")
    );
}

/// Records the workload's `strings` through `sys_enter_openat` with `trigger`; the flips.
fn flips_on_openat(trigger: &str) -> usize {
    let size = SIZE.to_string();
    let run = record(&[
        "--probe",
        "tracepoint:syscalls:sys_enter_openat",
        "--string-size",
        &size,
        "--trigger",
        trigger,
        "--",
        WORKLOAD,
        "strings",
        &size,
    ]);
    assert_eq!(run.code, Some(0), "`{trigger}`: {}", run.stderr);
    let flips = run.of_kind(SnapshotKind::Condition);
    for s in &flips {
        let fired = s
            .header
            .fired
            .as_ref()
            .expect("a condition snapshot has its trigger");
        assert!(
            s.events.iter().any(|e| e.ts_ns == fired.ts_ns),
            "the event that fired is in the snapshot"
        );
    }
    flips.len()
}

#[test]
fn string_triggers_fire_in_the_kernel_and_do_not_when_they_should_not() {
    require_root();
    let exact = exact();
    let cases = [
        (format!("sys_enter_openat.filename == \"{exact}\""), 1),
        (format!("filename == \"{}\"", &exact[..SIZE - 1]), 0),
        ("filename ~ \"/yyy*\"".to_owned(), 1),
        ("filename ~ \"*yy\"".to_owned(), 1),
        ("filename ~ \"/tmp/caf\\xc3\\xa9-?\"".to_owned(), 1),
        ("filename ~ \"/nope/*\"".to_owned(), 0),
        ("filename == \"\" && comm ~ \"snapshot-w*\"".to_owned(), 1),
        ("filename == \"\" && comm !~ \"snapshot-w*\"".to_owned(), 0),
        ("comm == \"nobody\" || filename == \"/none\"".to_owned(), 0),
    ];
    for (trigger, want) in cases {
        assert_eq!(flips_on_openat(&trigger), want, "`{trigger}`");
    }
}

#[test]
fn invalid_captures_and_string_triggers_are_refused_clearly() {
    require_root();
    let bad = |args: &[&str], want: &str| {
        let mut all = vec!["--trigger", "manual"];
        all.extend_from_slice(args);
        all.extend(["--", WORKLOAD, "strings", "16"]);
        let run = record(&all);
        assert_ne!(run.code, Some(0), "{args:?} must fail");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    };
    let unknown = format!("uprobe:{WORKLOAD}:snapshot_workload_str(arg7:str)");
    bad(&["--probe", &unknown], "no argument `arg7`");
    bad(
        &["--probe", "tracepoint:syscalls:sys_enter_openat(flags:str)"],
        "`flags` is `int`, not a pointer",
    );
    bad(
        &[
            "--probe",
            "tracepoint:syscalls:sys_enter_openat(filename:buf(99))",
        ],
        "buf(99) is out of range",
    );
    bad(
        &[
            "--probe",
            "tracepoint:syscalls:sys_enter_openat",
            "--string-size",
            "5000",
        ],
        "give 1 to 4096 bytes",
    );
    bad(
        &[
            "--probe",
            "tracepoint:syscalls:sys_enter_openat(filename:int)",
        ],
        "bad capture",
    );
    let e = record(&[
        "--probe",
        "tracepoint:syscalls:sys_enter_openat",
        "--trigger",
        "sys_enter_openat.flags ~ \"x*\"",
        "--",
        WORKLOAD,
        "strings",
        "16",
    ]);
    assert!(e.stderr.contains("`flags` is a number"), "{}", e.stderr);
    let long = format!("filename == \"{}x\"", exact());
    let e = record(&[
        "--probe",
        "tracepoint:syscalls:sys_enter_openat",
        "--string-size",
        "16",
        "--trigger",
        &long,
        "--",
        WORKLOAD,
        "strings",
        "16",
    ]);
    assert!(
        e.code != Some(0) && e.stderr.contains("can never match"),
        "{}",
        e.stderr
    );
}

#[test]
fn property_kernel_and_userspace_string_comparisons_agree() {
    require_root();
    let probe = format!("uprobe:{WORKLOAD}:snapshot_workload_str(arg0:str)");
    let spec: ProbeSpec = probe.parse().expect("spec");
    let mut info = ProbeInfo::new(0, &spec, vec![]);
    info.captures = snapshot_userspace::probe::capture::plan(
        &spec,
        snapshot_userspace::probe::capture::Known::Nothing,
        64,
    )
    .expect("plan");
    let texts = ["", "/tmp/a.lock", "/tmp/", "lock", "abcabc", "/etc/shadow"];
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let (mut fired, mut quiet) = (0, 0);
    for _ in 0..40 {
        let expr = random_expr(
            &mut rng,
            Leaves {
                fields: &["snapshot_workload_str.arg2"],
                values: &["0", "1", "3", "5", "12"],
                comms: &[],
                stateful: false,
                strings: &["snapshot_workload_str.arg0", "comm"],
                texts: &[
                    "/tmp/*",
                    "*.lock",
                    "/tmp/a.lock",
                    "",
                    "*",
                    "a?c*",
                    "snapshot-w*",
                    "*c",
                ],
            },
            2,
        );
        let Ok(prog) = trigger::compile(&[expr.parse().expect("parses")], &[info.clone()]) else {
            continue;
        };
        let text = texts[(rng.next_u64() % texts.len() as u64) as usize];
        let mut comm = [0u8; 16];
        comm[..15].copy_from_slice(b"snapshot-worklo");
        let ctx = EventCtx {
            probe: 0,
            args: [0, 0, text.len() as u64, 0, 0, 0],
            comm,
            strings: [Some(text.as_bytes().to_vec()), None, None, None],
            ..EventCtx::default()
        };
        let want = trigger::evaluate(&prog, &ctx, &mut [(0, false); snapshot_common::MAX_SLOTS]);
        let run = record(&[
            "--probe",
            &probe,
            "--trigger",
            &expr,
            "--",
            WORKLOAD,
            "str",
            text,
        ]);
        assert_eq!(run.code, Some(0), "{expr}: {}", run.stderr);
        assert_eq!(
            run.of_kind(SnapshotKind::Condition).len() == 1,
            want,
            "kernel and userspace disagree on `{expr}` with \"{text}\""
        );
        if want { fired += 1 } else { quiet += 1 }
    }
    assert!(fired > 3 && quiet > 3, "both outcomes ({fired}/{quiet})");
}

#[test]
fn strings_stay_with_their_events_across_flips_on_two_cpus() {
    require_root();
    let probe = format!("uprobe:{WORKLOAD}:snapshot_workload_str(arg0:str)");
    let total: u64 = 40_000;
    let run = record(&[
        "--probe",
        &probe,
        "--trigger",
        "snapshot_workload_str.arg0 ~ \"*!\"",
        "--buffer-size",
        "65536ev",
        "--dump-on-exit",
        "--",
        WORKLOAD,
        "str-threads",
        &total.to_string(),
        "400",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let flips = run.of_kind(SnapshotKind::Condition).len();
    // Every 400th call triggers: each trigger either flipped or, while userspace had not armed
    // the spare yet, was counted missed. How many flipped depends on the machine's load; the
    // strings must stay right across however many there were, and at least a few.
    let missed: u64 = run.snapshots.iter().map(|s| s.header.missed_triggers).sum();
    assert_eq!(
        flips as u64 + missed,
        total / 400,
        "every trigger flipped or was counted missed: {}",
        run.stderr
    );
    assert!(flips >= 3, "only {flips} flips: {}", run.stderr);
    let lost = run.total(|a| a.overwritten + a.dropped + a.torn);
    let mut seen = HashSet::new();
    for e in of(&run, "snapshot_workload_str") {
        let seq = e.args[2];
        let bang = if seq % 400 == 399 { "!" } else { "" };
        assert_eq!(
            string(e, "arg0"),
            Some(format!("{seq}{bang}").as_str()),
            "the string of call {seq} is its own"
        );
        assert!(seen.insert(seq), "call {seq} twice");
    }
    assert_eq!(
        seen.len() as u64 + lost,
        total,
        "every call is in a snapshot or counted lost"
    );
}
