//! The trigger language in the kernel (root): compound conditions, latency, comm, and a
//! property test in which the kernel's evaluator, driven through a uprobe, agrees with the
//! userspace reference evaluator on random expressions and arguments.

mod common;

use common::{WORKLOAD, record, require_root, workload_probe};
use snapshot_common::{EVENT_HAS_DURATION, EVENT_HAS_RET, Event, MAX_SLOTS};
use snapshot_userspace::{
    probe::{ProbeInfo, ProbeSpec},
    snapshot::SnapshotKind,
    testing::{BOUNDARY_ARGS, BOUNDARY_VALUES, Leaves, Rng, random_expr},
    trigger::{self, EventCtx, Trigger},
};

fn flips(run: &common::Run) -> usize {
    run.of_kind(SnapshotKind::Condition).len()
}

#[test]
fn compound_conditions_fire_in_the_kernel() {
    require_root();
    let probe = workload_probe("uprobe");
    // (expression, the call that fires it, the value the header reports)
    let cases: [(&str, Option<(u64, i64)>); 5] = [
        (
            "snapshot_workload_fn.arg0 == 7 && snapshot_workload_fn.arg1 == 14",
            Some((7, 7)),
        ),
        (
            "snapshot_workload_fn.arg0 == 7 || snapshot_workload_fn.arg0 == 300",
            Some((7, 7)),
        ),
        (
            "!(snapshot_workload_fn.arg0 < 10) && snapshot_workload_fn.arg0 & 0x1",
            None,
        ),
        (
            "snapshot_workload_fn.arg2 >= 27 && comm == \"snapshot-worklo\"",
            Some((9, 27)),
        ),
        (
            "snapshot_workload_fn.arg2 >= 27 && comm != \"snapshot-worklo\"",
            None,
        ),
    ];
    for (expr, want) in cases {
        let run = record(&[
            "--probe",
            &probe,
            "--trigger",
            expr,
            "--max-snapshots",
            "1",
            "--",
            WORKLOAD,
            "calls",
            "9",
        ]);
        assert_eq!(run.code, Some(0), "{expr}: {}", run.stderr);
        assert_eq!(
            flips(&run),
            usize::from(want.is_some()),
            "`{expr}`: {}",
            run.stderr
        );
        if let Some((call, value)) = want {
            let s = run.of_kind(SnapshotKind::Condition)[0];
            let f = s.header.fired.as_ref().expect("trigger context");
            assert_eq!(f.value, value, "`{expr}`: the value that fired");
            let at = s
                .events
                .iter()
                .find(|e| e.ts_ns == f.ts_ns)
                .expect("the trigger's own event is in its snapshot");
            assert_eq!(
                at.args[..3],
                [call, 2 * call, 3 * call],
                "`{expr}` fired on call {call}"
            );
            assert_eq!(
                s.events.last().map(|e| e.args[0]),
                Some(call),
                "it is the last event"
            );
        }
    }
}

/// A latency threshold of 100 ms between calls of 20 ms and 200 ms: only the slow call fires,
/// and the value that fired is its duration as the workload measured it (a unit wrong by
/// 1000 either way would fire on both calls or on neither).
#[test]
fn latency_trigger_fires_on_the_slow_call_only() {
    require_root();
    let entry = common::sleep_probe("uprobe");
    let ret = common::sleep_probe("uretprobe");
    let run = record(&[
        "--probe",
        &entry,
        "--probe",
        &ret,
        "--trigger",
        "snapshot_workload_sleep.latency > 100ms",
        "--dump-on-exit",
        "--",
        WORKLOAD,
        "timed-sleeps",
        "20",
        "200",
        "20",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(fires(&run), 1, "only the 200 ms call: {}", run.stderr);
    let s = run.of_kind(SnapshotKind::Condition)[0];
    let f = s.header.fired.as_ref().expect("trigger context");
    let measured = common::slept_ns(&run.stdout);
    assert_eq!(measured.len(), 3, "{}", run.stdout);
    common::assert_duration_close(f.value as u64, measured[1], "the latency that fired");
}

/// A broad trigger on an entry/return pair (state, `comm`, bit and logic operations, every
/// kind of field, the pair's `ret` and `latency`) loads: the shape it is loaded for
/// (`snapshot_common::shape`) must keep each program within the verifier's million
/// instructions (guarding each operation by the shape once went past it on the uretprobe),
/// and the latency fires on the slow call.
#[test]
fn a_broad_trigger_on_a_pair_loads_and_fires() {
    require_root();
    let entry = common::sleep_probe("uprobe");
    let ret = common::sleep_probe("uretprobe");
    let f = "snapshot_workload_sleep";
    let trigger = format!(
        "max({f}.arg0) && comm == \"nobody\" || changed({f}.arg0) && !({f}.arg0 & 4) && pid == 1 \
         || tid == 1 && cpu == 4096 || {f}.ret < -4095 || {f}.latency > 100ms"
    );
    let run = record(&[
        "--probe",
        &entry,
        "--probe",
        &ret,
        "--trigger",
        &trigger,
        "--dump-on-exit",
        "--",
        WORKLOAD,
        "timed-sleeps",
        "20",
        "200",
        "20",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(fires(&run), 1, "only the 200 ms call: {}", run.stderr);
}

#[test]
fn bad_expressions_show_a_caret_and_a_hint() {
    require_root();
    let probe = workload_probe("uprobe");
    let run = record(&[
        "--probe",
        &probe,
        "--trigger",
        "snapshot_workload_fn.arg0 = 1",
        "--",
        WORKLOAD,
        "calls",
        "1",
    ]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("`=` is not an operator")
            && run.stderr.contains('^')
            && run.stderr.contains("hint: compare with `==`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"));
}

/// What the kernel's evaluator sees of a recorded event.
fn ctx_of(e: &Event) -> EventCtx {
    EventCtx {
        probe: e.probe_id,
        args: e.args,
        ret: (e.flags & EVENT_HAS_RET != 0).then_some(e.ret),
        latency: (e.flags & EVENT_HAS_DURATION != 0).then_some(e.duration_ns),
        pid: u64::from(e.tgid()),
        tid: u64::from(e.tid()),
        cpu: u64::from(e.cpu),
        comm: e.comm,
        strings: Default::default(),
    }
}

/// Triggers that fired in a recording: flips plus triggers counted as missed.
fn fires(run: &common::Run) -> u64 {
    flips(run) as u64
        + run
            .snapshots
            .iter()
            .map(|s| s.header.missed_triggers)
            .sum::<u64>()
}

/// The kernel's evaluator (through a uprobe/uretprobe pair, on calls whose arguments sit on
/// every sign boundary) fires exactly on the events where the syntax-tree semantics says it
/// should: arguments, `ret`, `latency`, `pid`, `tid`, `comm`, `max()` and `changed()`, and
/// literals negative, high-bit, hex, errno names and units.
#[test]
fn property_kernel_and_tree_agree_on_every_kind_of_field() {
    require_root();
    let entry = workload_probe("uprobe");
    let ret = workload_probe("uretprobe");
    let specs: Vec<ProbeSpec> = [&entry, &ret]
        .iter()
        .map(|s| s.parse().expect("spec"))
        .collect();
    let table: Vec<ProbeInfo> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| ProbeInfo::new(i as u32, s, vec![]))
        .collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut runs, mut fired, mut quiet) = (0, 0, 0);
    while runs < 30 {
        let text = random_expr(
            &mut rng,
            Leaves {
                fields: &[
                    "snapshot_workload_fn.arg0",
                    "snapshot_workload_fn.arg1",
                    "snapshot_workload_fn.arg2",
                    "snapshot_workload_fn.ret",
                    "snapshot_workload_fn.latency",
                    "pid",
                    "tid",
                ],
                values: &BOUNDARY_VALUES,
                comms: &["snapshot-worklo", "other"],
                stateful: true,
                strings: &[],
                texts: &[],
            },
            2,
        );
        let trigger: Trigger = text.parse().expect("the generator writes valid syntax");
        if trigger::compile(std::slice::from_ref(&trigger), &table).is_err() {
            continue;
        }
        runs += 1;
        let calls: Vec<String> = (0..6)
            .map(|_| {
                let mut pick = || BOUNDARY_ARGS[(rng.next_u64() % 12) as usize].to_string();
                format!("{},{},{}", pick(), pick(), pick())
            })
            .collect();
        let mut args = vec![
            "--probe",
            &entry,
            "--probe",
            &ret,
            "--trigger",
            &text,
            "--dump-on-exit",
            "--buffer-size",
            "1024ev",
            "--",
            WORKLOAD,
            "call-seq",
            "0",
        ];
        args.extend(calls.iter().map(String::as_str));
        let run = record(&args);
        assert_eq!(run.code, Some(0), "`{text}`: {}", run.stderr);
        let events: Vec<&Event> = run.snapshots.iter().flat_map(|s| &s.events).collect();
        assert_eq!(
            events.len(),
            12,
            "`{text}`: every call and return: {}",
            run.stderr
        );
        let probes = &run.snapshots[0].header.probes;
        let mut state = [(0, false); MAX_SLOTS];
        let want = events
            .iter()
            .filter(|e| {
                trigger::evaluate_tree(
                    std::slice::from_ref(&trigger),
                    probes,
                    &ctx_of(e),
                    &mut state,
                )
                .expect("evaluates")
            })
            .count() as u64;
        assert_eq!(
            fires(&run),
            want,
            "kernel and tree disagree on `{text}` with calls {calls:?}: {}",
            run.stderr
        );
        if want > 0 { fired += 1 } else { quiet += 1 }
    }
    assert!(
        fired > 5 && quiet > 5,
        "the random cases should both fire and not ({fired}/{quiet})"
    );
}

/// The conditions people write first, in the kernel: each fires on the right event, with the
/// right value.
#[test]
fn headline_triggers_fire_on_the_right_event() {
    require_root();
    // A tracepoint's `ret` below 0: close of a bad fd, -EBADF.
    let run = record(&[
        "--probe",
        "tracepoint:syscalls:sys_exit_close",
        "--trigger",
        "sys_exit_close.ret < 0",
        "--max-snapshots",
        "1",
        "--",
        WORKLOAD,
        "close",
        "3",
        "300000",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let s = run.of_kind(SnapshotKind::Condition)[0];
    let f = s.header.fired.as_ref().expect("trigger context");
    assert_eq!(f.value, -9, "the value that fired is the errno");
    let at = s
        .events
        .iter()
        .find(|e| e.ts_ns == f.ts_ns)
        .expect("the trigger's event");
    assert_eq!(at.ret as i64, -9);

    // An errno name: a read of an empty non-blocking pipe, -EAGAIN.
    let run = record(&[
        "--probe",
        "tracepoint:syscalls:sys_exit_read",
        "--trigger",
        "sys_exit_read.ret == -EAGAIN",
        "--max-snapshots",
        "1",
        "--",
        WORKLOAD,
        "eagain",
        "2",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(flips(&run), 1, "{}", run.stderr);
    let f = run.snapshots[0]
        .header
        .fired
        .as_ref()
        .expect("trigger context");
    assert_eq!(f.value, -11);

    // Signed and high-bit values, and a uretprobe's `ret` below 0 (1 + 2^63 - 2 wraps past
    // i64::MAX).
    let entry = workload_probe("uprobe");
    let ret = workload_probe("uretprobe");
    let seq = |trigger: &str, extra: &[&str], calls: &[&str]| {
        let mut args = vec![
            "--probe",
            entry.as_str(),
            "--probe",
            ret.as_str(),
            "--trigger",
            trigger,
        ];
        args.extend_from_slice(extra);
        args.extend(["--", WORKLOAD, "call-seq", "40"]);
        args.extend_from_slice(calls);
        let run = record(&args);
        assert_eq!(run.code, Some(0), "{trigger}: {}", run.stderr);
        run
    };
    let high = [
        "1,2,3",
        "18446744073709551615,9223372036854775808,5",
        "4,5,6",
    ];
    let run = seq(
        "snapshot_workload_fn.arg0 == -1 && snapshot_workload_fn.arg1 < 0 && snapshot_workload_fn.arg1 == 0x8000000000000000",
        &[],
        &high,
    );
    assert_eq!(fires(&run), 1, "{}", run.stderr);
    assert_eq!(
        run.snapshots[0].header.fired.as_ref().map(|f| f.value),
        Some(-1)
    );
    let run = seq("snapshot_workload_fn.arg0 > 4", &["--dump-on-exit"], &high);
    assert_eq!(fires(&run), 0, "u64::MAX is -1 signed: {}", run.stderr);
    let run = seq("snapshot_workload_fn.ret < 0", &[], &high);
    assert_eq!(fires(&run), 1, "{}", run.stderr);
    let f = run.snapshots[0].header.fired.as_ref().expect("context");
    assert_eq!(
        f.value,
        (u64::MAX.wrapping_add(1 << 63).wrapping_add(5)) as i64
    );

    // max(): fires on each new maximum, changed(): on each new value; the values that fired
    // are those.
    let values = |run: &common::Run| -> Vec<i64> {
        run.of_kind(SnapshotKind::Condition)
            .iter()
            .filter_map(|s| s.header.fired.as_ref().map(|f| f.value))
            .collect()
    };
    let run = seq(
        "max(snapshot_workload_fn.arg0)",
        &[],
        &["3,0,0", "1,0,0", "5,0,0", "5,0,0", "7,0,0"],
    );
    assert_eq!(values(&run), [3, 5, 7], "{}", run.stderr);
    let run = seq(
        "changed(snapshot_workload_fn.arg0)",
        &[],
        &["3,0,0", "3,0,0", "4,0,0", "4,0,0", "3,0,0"],
    );
    assert_eq!(values(&run), [4, 3], "{}", run.stderr);

    // Several --trigger options: any one fires.
    let mut args = vec![
        "--probe",
        entry.as_str(),
        "--trigger",
        "snapshot_workload_fn.arg0 == 2",
        "--trigger",
        "snapshot_workload_fn.arg0 == 4",
        "--",
        WORKLOAD,
        "call-seq",
        "40",
    ];
    args.extend(["1,0,0", "2,0,0", "3,0,0", "4,0,0", "5,0,0"]);
    let run = record(&args);
    assert_eq!(values(&run), [2, 4], "{}", run.stderr);
    assert_eq!(
        run.snapshots[0].header.trigger,
        "snapshot_workload_fn.arg0 == 2 || snapshot_workload_fn.arg0 == 4"
    );
}

/// Six triggers 300 ms apart (userspace re-arms in a few ms, more on a loaded machine): each
/// takes a snapshot, unless a modifier says otherwise.
fn spaced_triggers(extra: &[&str]) -> common::Run {
    let mut options = vec!["--dump-on-exit"];
    options.extend_from_slice(extra);
    common::record_uprobe(
        "snapshot_workload_fn.arg1 == 1",
        &options,
        &["calls-gap", "6", "300"],
    )
}

fn missed(run: &common::Run) -> u64 {
    run.snapshots.iter().map(|s| s.header.missed_triggers).sum()
}

#[test]
fn count_and_holdoff_limit_the_trigger() {
    require_root();
    let plain = spaced_triggers(&[]);
    assert_eq!(
        flips(&plain) as u64 + missed(&plain),
        6,
        "baseline: every trigger flips or is counted as missed"
    );
    assert!(flips(&plain) >= 3, "baseline: triggers flip");
    let counted = spaced_triggers(&["--count", "2"]);
    assert_eq!(flips(&counted), 2, "--count 2");
    assert_eq!(
        missed(&counted),
        0,
        "triggers past the count are ignored, not missed"
    );
    let held = spaced_triggers(&["--holdoff", "10s"]);
    assert_eq!(flips(&held), 1, "--holdoff 10s");
    assert_eq!(
        missed(&held),
        0,
        "triggers inside the hold-off are ignored, not missed"
    );
    let calls: usize = held.snapshots.iter().map(|s| s.events.len()).sum();
    assert_eq!(calls, 6, "recording goes on while the trigger is held off");
}

/// The probes are loaded for the trigger's shape (`snapshot_common::shape`): the verifier
/// walks only the instructions, operations and fields it has. A larger trigger installed
/// later would be evaluated only in part, so it is refused; one that fits is taken.
#[test]
fn a_trigger_larger_than_the_one_loaded_is_refused() {
    use snapshot_userspace::session::{
        Rules, Session, SessionConfig, SessionError, Targets, attach::DEFAULT_MAX_GLOB,
    };
    require_root();
    let specs: Vec<ProbeSpec> = vec!["rawtp:sys_enter".parse().expect("parses")];
    let loaded: Trigger = "sys_enter.arg1 == 39".parse().expect("parses");
    let session = Session::start(&SessionConfig {
        specs: &specs,
        capacity: 64,
        targets: &Targets::Processes(vec![std::process::id()]),
        follow_forks: false,
        strict: false,
        max_glob: DEFAULT_MAX_GLOB,
        rules: Rules::default(),
        string_size: 0,
        sequences: false,
        build_id_stacks: false,
        trigger: &|probes| Ok(trigger::compile(std::slice::from_ref(&loaded), probes)?),
    });
    let mut session = session.expect("the session starts");
    let probes = session.probes().to_vec();
    let compile = |text: &str| {
        let t: Trigger = text.parse().expect("parses");
        trigger::compile(&[t], &probes).expect("compiles")
    };
    // Fits: the same operations (any field, any comparison), or fewer.
    for text in ["sys_enter.arg0 > 40", "manual"] {
        let p = compile(text);
        session
            .set_trigger(&p)
            .unwrap_or_else(|e| panic!("`{text}`: {e:#}"));
    }
    // Does not: another operation, more instructions.
    for text in [
        "sys_enter.arg1 & 39",
        "sys_enter.arg1 == 39 && sys_enter.arg1 == 40",
    ] {
        let p = compile(text);
        let e = session.set_trigger(&p).expect_err(text);
        assert!(
            matches!(
                e.downcast_ref::<SessionError>(),
                Some(SessionError::TriggerDoesNotFit { .. })
            ),
            "`{text}`: {e:#}"
        );
        assert!(format!("{e}").contains("start a new recording"), "{e}");
    }
    session.close();
}
