//! Sequence triggers in the kernel (root): `A then B within T` on tracepoints, as the issue
//! writes it: an openat failing (here with ENOTDIR, which nothing else in a run does) followed
//! by the same thread's `exit_group`. Windows are far from the gaps (5 s against well under a
//! millisecond, 50 ms against 400 ms), so a loaded machine cannot change the outcome.

mod common;

use common::{WORKLOAD, record, require_root};
use snapshot_userspace::{export, snapshot::SnapshotKind};

const OPEN: &str = "tracepoint:syscalls:sys_exit_openat";
const EXIT: &str = "tracepoint:syscalls:sys_enter_exit_group";

/// Records the workload's `open-notdir THREAD MS` with the sequence `within` as trigger and
/// a final snapshot at exit.
fn run(within: &str, thread: &str, ms: &str) -> common::Run {
    let trigger =
        format!("sys_exit_openat.ret == -ENOTDIR then sys_enter_exit_group within {within}");
    let run = record(&[
        "--probe",
        OPEN,
        "--probe",
        EXIT,
        "--trigger",
        &trigger,
        "--dump-on-exit",
        "--",
        WORKLOAD,
        "open-notdir",
        thread,
        ms,
    ]);
    assert_eq!(run.code, Some(0), "{trigger}: {}", run.stderr);
    run
}

/// (tid of the failed openat, tid of `exit_group`), from every snapshot's events: both steps
/// were recorded, so a sequence that does not fire did not fire for its semantics.
fn steps(run: &common::Run) -> (u32, u32) {
    let open = run
        .events
        .iter()
        .find(|e| e.probe == "sys_exit_openat" && e.ret == Some(-20))
        .unwrap_or_else(|| panic!("the failed openat is recorded: {}", run.stderr));
    let exit = run
        .events
        .iter()
        .find(|e| e.probe == "sys_enter_exit_group")
        .unwrap_or_else(|| panic!("exit_group is recorded: {}", run.stderr));
    (open.tid, exit.tid)
}

/// The sequence took no snapshot and missed none.
fn assert_never_fired(run: &common::Run) {
    assert!(
        run.of_kind(SnapshotKind::Condition).is_empty(),
        "{}",
        run.stderr
    );
    let missed: u64 = run.snapshots.iter().map(|s| s.header.missed_triggers).sum();
    assert_eq!(missed, 0, "{}", run.stderr);
}

#[test]
fn a_then_b_on_the_same_thread_fires_and_the_header_names_both_steps() {
    require_root();
    let run = run("5s", "main", "0");
    let fired = run.of_kind(SnapshotKind::Condition);
    assert_eq!(fired.len(), 1, "{}", run.stderr);
    let s = fired[0];
    let f = s.header.fired.as_ref().expect("trigger context");
    assert_eq!(f.probe, "sys_enter_exit_group", "B fires it");
    let q = f.sequence.as_ref().expect("the header names the sequence");
    assert_eq!(q.index, 1);
    assert!(
        q.text.contains(" then sys_enter_exit_group within 5s"),
        "{q:?}"
    );
    assert_eq!(q.then_ns, f.ts_ns);
    let a = s
        .events
        .iter()
        .find(|e| e.ts_ns == q.first_ns)
        .expect("A's event is in the snapshot");
    assert_eq!(a.probe_id, 0, "A is the failed openat");
    assert_eq!(
        (a.ret as i64, a.pid_tgid as u32),
        (-20, f.tid),
        "on B's thread"
    );
    assert!(q.first_ns < q.then_ns && q.then_ns - q.first_ns < 5_000_000_000);
    let text = export::text(s);
    assert!(
        text.contains("# sequence 1 `sys_exit_openat.ret == -ENOTDIR then"),
        "{text}"
    );
    assert!(
        text.contains("# the A event: sys_exit_openat: ret=-20 ENOTDIR"),
        "{text}"
    );
    let json = export::chrome_json(s).to_string();
    assert!(
        json.contains("\"first_ns\""),
        "the trace's trigger names the sequence"
    );
}

#[test]
fn b_on_another_thread_does_not_complete_a() {
    require_root();
    let run = run("5s", "thread", "0");
    let (a, b) = steps(&run);
    assert_ne!(a, b, "the openat ran on the second thread");
    assert_never_fired(&run);
}

#[test]
fn b_after_the_window_does_not_complete_a() {
    require_root();
    let run = run("50ms", "main", "400");
    let (a, b) = steps(&run);
    assert_eq!(a, b, "one thread");
    assert_never_fired(&run);
}
