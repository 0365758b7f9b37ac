//! The trigger language in the kernel (root): compound conditions, latency, comm, and a
//! property test in which the kernel's evaluator, driven through a uprobe, agrees with the
//! userspace reference evaluator on random expressions and arguments.

mod common;

use common::{WORKLOAD, record, require_root, workload_probe};
use snapshot_userspace::{
    probe::{ProbeInfo, ProbeSpec},
    snapshot::SnapshotKind,
    testing::{Leaves, Rng, random_expr},
    trigger::{self, EventCtx},
};

fn flips(run: &common::Run) -> usize {
    run.of_kind(SnapshotKind::Condition).len()
}

#[test]
fn compound_conditions_fire_in_the_kernel() {
    require_root();
    let probe = workload_probe("uprobe");
    let cases = [
        (
            "snapshot_workload_fn.arg0 == 7 && snapshot_workload_fn.arg1 == 14",
            1,
        ),
        (
            "snapshot_workload_fn.arg0 == 7 || snapshot_workload_fn.arg0 == 300",
            1,
        ),
        (
            "!(snapshot_workload_fn.arg0 < 10) && snapshot_workload_fn.arg0 & 0x1",
            0,
        ),
        (
            "snapshot_workload_fn.arg2 >= 27 && comm == \"snapshot-worklo\"",
            1,
        ),
        (
            "snapshot_workload_fn.arg2 >= 27 && comm != \"snapshot-worklo\"",
            0,
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
        assert_eq!(flips(&run), want, "`{expr}`: {}", run.stderr);
    }
}

#[test]
fn latency_of_a_uprobe_pair_fires() {
    require_root();
    let entry = workload_probe("uprobe");
    let ret = workload_probe("uretprobe");
    let run = record(&[
        "--probe",
        &entry,
        "--probe",
        &ret,
        "--trigger",
        "snapshot_workload_fn.latency > 0ns",
        "--max-snapshots",
        "1",
        "--",
        WORKLOAD,
        "calls",
        "3",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(flips(&run), 1, "{}", run.stderr);
    let s = run.of_kind(SnapshotKind::Condition)[0];
    assert!(
        s.header.fired.as_ref().is_some_and(|f| f.value > 0),
        "the latency that fired it is the value"
    );
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

#[test]
fn property_kernel_and_userspace_evaluators_agree() {
    require_root();
    let probe = workload_probe("uprobe");
    let spec: ProbeSpec = probe.parse().expect("spec");
    let info = [ProbeInfo::new(0, &spec, vec![])];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut fired, mut quiet) = (0, 0);
    for _ in 0..40 {
        let text = random_expr(
            &mut rng,
            Leaves {
                fields: &[
                    "snapshot_workload_fn.arg0",
                    "snapshot_workload_fn.arg1",
                    "snapshot_workload_fn.arg2",
                ],
                values: (0, 5),
                strings: &[],
                texts: &[],
            },
            2,
        );
        let args = [rng.next_u64() % 6, rng.next_u64() % 6, rng.next_u64() % 6];
        let prog = trigger::compile(&[text.parse().expect("parses")], &info).expect("compiles");
        let ctx = EventCtx {
            probe: 0,
            args: [args[0], args[1], args[2], 0, 0, 0],
            ..EventCtx::default()
        };
        let want = trigger::evaluate(&prog, &ctx, &mut [(0, false); snapshot_common::MAX_SLOTS]);
        let a: Vec<String> = args.iter().map(u64::to_string).collect();
        let run = record(&[
            "--probe",
            &probe,
            "--trigger",
            &text,
            "--",
            WORKLOAD,
            "call",
            &a[0],
            &a[1],
            &a[2],
        ]);
        assert_eq!(run.code, Some(0), "{text}: {}", run.stderr);
        assert_eq!(
            flips(&run) == 1,
            want,
            "kernel and userspace disagree on `{text}` with args {args:?}"
        );
        if want { fired += 1 } else { quiet += 1 }
    }
    assert!(
        fired > 3 && quiet > 3,
        "the random cases should both fire and not ({fired}/{quiet})"
    );
}

/// Six triggers 80 ms apart (userspace re-arms in a few ms): each takes a snapshot, unless a
/// modifier says otherwise.
fn spaced_triggers(extra: &[&str]) -> common::Run {
    let mut options = vec!["--dump-on-exit"];
    options.extend_from_slice(extra);
    common::record_uprobe(
        "snapshot_workload_fn.arg1 == 1",
        &options,
        &["calls-gap", "6", "80"],
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
        flips(&plain),
        6,
        "baseline: every trigger flips ({} missed)",
        missed(&plain)
    );
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
