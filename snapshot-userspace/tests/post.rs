//! Trigger modifiers and context in the kernel (root): `--post N|DURATION` windows (exact
//! counts, exact time bounds, closed by userspace when no event comes), `--count` and
//! `--holdoff` under bursts of triggers on two CPUs, and the stacks taken at the trigger.

mod common;

use common::{WORKLOAD, record, record_uprobe, require_root};
use snapshot_userspace::snapshot::{Snapshot, SnapshotKind};

/// The first argument of every event of a snapshot (the workload's sequence numbers).
fn arg0s(s: &Snapshot) -> Vec<u64> {
    s.events.iter().map(|e| e.args[0]).collect()
}

fn only_condition(run: &common::Run) -> &Snapshot {
    let c = run.of_kind(SnapshotKind::Condition);
    assert_eq!(c.len(), 1, "one trigger snapshot expected: {}", run.stderr);
    c[0]
}

#[test]
fn post_events_records_exactly_n_events_after_the_trigger() {
    require_root();
    for post in [1u64, 25, 149] {
        let run = record_uprobe(
            "snapshot_workload_fn.arg0 == 50",
            &["--post", &post.to_string(), "--dump-on-exit"],
            &["calls", "300"],
        );
        let snap = only_condition(&run);
        let want: Vec<u64> = (1..=50 + post).collect();
        assert_eq!(
            arg0s(snap),
            want,
            "--post {post}: the calls up to the trigger (50) and exactly {post} after it"
        );
        let fired = snap.header.fired.as_ref().expect("trigger context");
        assert_eq!(
            fired.post.as_deref(),
            Some(format!("{post} events").as_str())
        );
        let exit = run.of_kind(SnapshotKind::Exit);
        let rest: Vec<u64> = exit.iter().flat_map(|s| arg0s(s)).collect();
        let want: Vec<u64> = (51 + post..=300).collect();
        assert_eq!(
            rest, want,
            "--post {post}: the later calls are in the next half, once"
        );
    }
}

#[test]
fn post_events_on_two_cpus_lose_and_duplicate_nothing() {
    require_root();
    let total = 200_000u64;
    let run = record_uprobe(
        "snapshot_workload_fn.arg1 == 1",
        &[
            "--post",
            "500",
            "--buffer-size",
            "65536ev",
            "--dump-on-exit",
        ],
        &["seq-threads", &total.to_string(), "20000"],
    );
    let flips = run.of_kind(SnapshotKind::Condition);
    assert!(flips.len() >= 2, "several windows expected: {}", run.stderr);
    let mut seen = vec![0u8; total as usize];
    for s in &run.snapshots {
        for e in &s.events {
            seen[e.args[0] as usize] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n <= 1), "a call was recorded twice");
    let recorded = seen.iter().map(|&n| u64::from(n)).sum::<u64>();
    let lost = run.total(|a| a.overwritten) + run.total(|a| a.dropped);
    assert_eq!(
        recorded + lost,
        total,
        "every call is recorded or counted as lost"
    );
    assert_eq!(run.total(|a| a.torn), 0);
    let mut checked = 0;
    for s in flips {
        let fired = s.header.fired.as_ref().expect("trigger context");
        let trigger_seq = s
            .events
            .iter()
            .find(|e| e.ts_ns == fired.ts_ns && e.args[1] == 1)
            .map(|e| e.args[0])
            .expect("the trigger's own event is in its snapshot");
        if trigger_seq + 2000 > total {
            // Too close to the end for 500 more events: closed at exit with fewer.
            continue;
        }
        checked += 1;
        let after = s.events.iter().filter(|e| e.ts_ns > fired.ts_ns).count();
        // Tickets go to the events recorded once the window is open; on the other CPU, an
        // event can fall between the trigger and the opening (or take its time just before
        // the trigger and its ticket just after), so allow a few either way.
        assert!(
            (499..=503).contains(&after),
            "snapshot {}: {after} events after the trigger, --post 500",
            s.header.seq
        );
    }
    assert!(
        checked >= 2,
        "too few windows closed by events: {}",
        run.stderr
    );
}

#[test]
fn post_duration_splits_the_events_at_the_window_end() {
    require_root();
    let run = record_uprobe(
        "snapshot_workload_fn.arg1 == 1",
        &["--count", "1", "--post", "100ms", "--dump-on-exit"],
        &["calls-gap", "8", "40"],
    );
    let snap = only_condition(&run);
    let fired = snap.header.fired.as_ref().expect("trigger context");
    let end = fired.ts_ns + 100_000_000;
    assert!(
        snap.events.iter().all(|e| e.ts_ns < end),
        "nothing after the window in the snapshot"
    );
    assert!(
        snap.events.iter().filter(|e| e.ts_ns > fired.ts_ns).count() >= 1,
        "the calls 40 ms after the trigger are in the snapshot"
    );
    let exit = run.of_kind(SnapshotKind::Exit);
    assert!(
        exit.iter().flat_map(|s| &s.events).all(|e| e.ts_ns >= end),
        "nothing from inside the window in the next half"
    );
    let total: usize = run.snapshots.iter().map(|s| s.events.len()).sum();
    assert_eq!(total, 8, "every call once");
}

#[test]
fn userspace_closes_a_window_no_event_closes() {
    require_root();
    // Three calls, then a 3 s sleep: no event comes after the 200 ms window, so the
    // recorder closes it; --max-snapshots 1 then stops the recording long before the exit.
    let run = record_uprobe(
        "snapshot_workload_fn.arg0 == 2",
        &["--post", "200ms", "--max-snapshots", "1"],
        &["calls-sleep", "3", "3000"],
    );
    assert!(
        run.stderr.contains("--max-snapshots reached"),
        "the window must close without waiting for the target: {}",
        run.stderr
    );
    assert_eq!(arg0s(only_condition(&run)), [1, 2, 3]);

    // --post N that never fills: the window is closed at exit, nothing is lost, and the
    // snapshot says how much of the window it holds.
    let run = record_uprobe(
        "snapshot_workload_fn.arg0 == 2",
        &["--post", "1000"],
        &["calls", "5"],
    );
    let snap = only_condition(&run);
    assert_eq!(arg0s(snap), [1, 2, 3, 4, 5]);
    let fired = snap.header.fired.as_ref().expect("trigger context");
    assert_eq!(
        fired.post.as_deref(),
        Some("3 of 1000 events (recording stopped first)"),
        "the window holds the 3 calls after the trigger"
    );
}

/// `--count` / `--holdoff` against every 50th call of two threads on two CPUs triggering.
#[test]
fn count_and_holdoff_hold_under_a_burst_of_triggers() {
    require_root();
    let free = common::burst_on_two_threads(&[]);
    assert!(
        free.of_kind(SnapshotKind::Condition).len() > 3,
        "baseline: the burst takes many snapshots ({})",
        free.stderr
    );
    let counted = common::burst_on_two_threads(&["--count", "3"]);
    assert_eq!(
        counted.of_kind(SnapshotKind::Condition).len(),
        3,
        "--count 3"
    );
    let held = common::burst_on_two_threads(&["--holdoff", "30s"]);
    assert_eq!(
        held.of_kind(SnapshotKind::Condition).len(),
        1,
        "--holdoff 30s"
    );
}

#[test]
fn trigger_context_has_symbolized_stacks() {
    require_root();
    // A syscall tracepoint: the kernel stack goes through the syscall entry, the user stack
    // through libc's close(). The workload stays a while: user frames are symbolized through
    // the live process's memory map.
    let run = record(&[
        "--probe",
        "tracepoint:syscalls:sys_enter_close",
        "--trigger",
        "sys_enter_close.fd == 100003",
        "--",
        WORKLOAD,
        "close",
        "10",
        "100000",
        "300",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let fired = only_condition(&run).header.fired.clone().unwrap();
    let kernel: Vec<String> = fired
        .kernel_stack
        .iter()
        .map(snapshot_userspace::snapshot::symbols::Frame::describe)
        .collect();
    assert!(
        kernel.iter().any(|f| f.contains("syscall")),
        "kernel stack without the syscall entry: {kernel:?}"
    );
    assert!(
        fired.kernel_stack.iter().all(|f| f.symbol.is_some()),
        "every kernel frame symbolized: {kernel:?}"
    );
    let user: Vec<String> = fired
        .user_stack
        .iter()
        .map(snapshot_userspace::snapshot::symbols::Frame::describe)
        .collect();
    assert!(
        user.iter()
            .any(|f| f.contains("close") && f.contains("libc")),
        "user stack without libc's close: {user:?}"
    );

    // A uprobe: the user stack starts in the probed function of the workload binary.
    let run = record_uprobe(
        "snapshot_workload_fn.arg0 == 3",
        &[],
        &["calls-sleep", "5", "300"],
    );
    let fired = only_condition(&run).header.fired.clone().unwrap();
    let top = fired
        .user_stack
        .first()
        .map(snapshot_userspace::snapshot::symbols::Frame::describe);
    assert_eq!(
        top.as_deref(),
        Some("snapshot_workload_fn (snapshot-workload)"),
        "{:?}",
        fired.user_stack
    );
    let shown = common::snapshot(&[
        "show",
        &run.out
            .0
            .join("snapshot-0001-condition.snap")
            .to_string_lossy(),
    ]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("# user stack:\n#   snapshot_workload_fn (snapshot-workload)"),
        "show prints the stack: {text}"
    );
}

#[test]
fn triggers_inside_a_window_belong_to_it() {
    require_root();
    // Every call triggers, 150 ms apart; with --post 1 the second call closes the first
    // call's window (its own trigger belongs to that window), the third opens the next one.
    let run = record_uprobe(
        "snapshot_workload_fn.arg1 == 1",
        &["--post", "1"],
        &["calls-gap", "4", "150"],
    );
    let flips = run.of_kind(SnapshotKind::Condition);
    assert_eq!(flips.len(), 2, "{}", run.stderr);
    let windows: Vec<usize> = flips.iter().map(|s| s.events.len()).collect();
    assert_eq!(
        windows,
        [2, 2],
        "each window: its trigger and the call after it"
    );
    assert_eq!(
        run.snapshots
            .iter()
            .map(|s| s.header.missed_triggers)
            .sum::<u64>(),
        0,
        "the closing call's trigger is not a missed one"
    );
}
