//! The kernel side's debug records (aya-log, shown with `RUST_LOG=debug`): a trigger won with
//! its value and snapshot, a trigger missed for want of an armed spare, the stop policy
//! engaged, a `--post` window closed; and none of them at the default level.

use std::process::Command;

use snapshot_userspace::snapshot::SnapshotKind;

use super::common::{
    OutDir, Run, SNAPSHOT, WORKLOAD, burst_on_one_thread_args, collect, require_root,
    workload_probe,
};

/// [`burst_on_one_thread_args`] under a policy, with the exit snapshot.
fn burst_args(probe: &str, policy: &str) -> Vec<String> {
    burst_on_one_thread_args(probe, &["--on-no-spare", policy, "--dump-on-exit"])
}

/// Log target of the kernel side's records.
const TARGET: &str = "snapshot_ebpf";

/// Runs `snapshot record --out DIR ARGS…` with `RUST_LOG=level`, or with no `RUST_LOG` at
/// all (the default level); asserts it succeeded.
fn record_at(level: Option<&str>, args: &[String]) -> Run {
    let out = OutDir::new();
    let mut cmd = Command::new(&*SNAPSHOT);
    cmd.args(["record", "--out", &out.arg()]).args(args);
    match level {
        Some(level) => cmd.env("RUST_LOG", level),
        None => cmd.env_remove("RUST_LOG"),
    };
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", *SNAPSHOT));
    let run = collect(&output, out);
    assert_eq!(run.code, Some(0), "snapshot record failed: {}", run.stderr);
    run
}

/// The messages of the kernel side's records in `run`'s stderr.
fn kernel_records(run: &Run) -> Vec<&str> {
    let tag = format!(" {TARGET}] ");
    run.stderr
        .lines()
        .filter_map(|l| Some(l.split_once(&tag)?.1))
        .collect()
}

/// The total of missed triggers in the summary line.
fn missed_total(run: &Run) -> u64 {
    let summary = run
        .stderr
        .lines()
        .find(|l| l.starts_with("snapshot: stopped:"))
        .unwrap_or_else(|| panic!("no summary line: {}", run.stderr));
    let (_, n) = summary
        .rsplit_once("missed triggers ")
        .unwrap_or_else(|| panic!("no missed count in {summary}"));
    n.trim()
        .parse()
        .unwrap_or_else(|e| panic!("bad missed count in {summary}: {e}"))
}

/// The pid of the workload, from the first trigger snapshot.
fn workload_pid(run: &Run) -> u32 {
    let first = run.of_kind(SnapshotKind::Condition);
    let first = first.first().expect("a trigger snapshot");
    first.header.fired.as_ref().expect("trigger context").pid
}

/// Asserts that each trigger snapshot of `run` has its `trigger won` record, with its value.
fn assert_won_lines(run: &Run, records: &[&str]) {
    let pid = workload_pid(run);
    for s in run.of_kind(SnapshotKind::Condition) {
        let fired = s.header.fired.as_ref().expect("trigger context");
        let line = format!(
            "trigger won on probe 0 (pid {pid}): value {}, snapshot {}",
            fired.value, s.header.seq
        );
        assert!(
            records.contains(&line.as_str()),
            "no `{line}` among the kernel's records: {records:#?}\n{}",
            run.stderr
        );
    }
}

#[test]
fn debug_records_show_triggers_won_and_missed() {
    require_root();
    let probe = workload_probe("uprobe");
    let run = record_at(Some("debug"), &burst_args(&probe, "skip"));
    let records = kernel_records(&run);
    assert_won_lines(&run, &records);
    let missed = missed_total(&run);
    assert!(missed >= 1, "the burst missed no trigger: {}", run.stderr);
    // Logged when the count reaches 1, 2, 4, …: one record per power of two up to `missed`.
    let pid = workload_pid(&run);
    let prefix = format!("trigger missed on probe 0 (pid {pid}): value ");
    let mut counts = Vec::new();
    for r in records.iter().filter(|r| r.starts_with("trigger missed")) {
        let rest = r
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("unexpected record `{r}`"));
        let (value, rest) = rest.split_once(", no armed spare (").expect(r);
        let value: u64 = value.parse().expect(r);
        assert!((6..=10).contains(&value), "{r}: the burst is calls 5..=10");
        let count = rest
            .strip_suffix(" missed so far; logged at powers of two)")
            .expect(r);
        counts.push(count.parse::<u64>().expect(r));
    }
    let expected: Vec<u64> = (0..64)
        .map(|k| 1 << k)
        .take_while(|&c| c <= missed)
        .collect();
    assert_eq!(
        counts, expected,
        "{missed} missed triggers: {records:#?}\n{}",
        run.stderr
    );
    assert!(
        !records.iter().any(|r| r.contains("stop")),
        "no stop under --on-no-spare skip: {records:#?}"
    );
}

#[test]
fn debug_records_show_the_stop_policy_engaged() {
    require_root();
    let probe = workload_probe("uprobe");
    let run = record_at(Some("debug"), &burst_args(&probe, "stop"));
    let records = kernel_records(&run);
    assert_won_lines(&run, &records);
    let stop = run.of_kind(SnapshotKind::NoSpareStop);
    assert_eq!(stop.len(), 1, "{}", run.stderr);
    let marker = stop[0].events.last().expect("the marker record");
    let line = format!(
        "--on-no-spare stop: the trigger on probe 0 (pid {}, value {}) found no armed spare; recording stopped",
        workload_pid(&run),
        marker.args[0]
    );
    assert!(
        records.contains(&line.as_str()),
        "no `{line}`: {records:#?}\n{}",
        run.stderr
    );
    // The trigger that stops logs the stop, not a miss; none comes after it.
    assert!(
        !records.iter().any(|r| r.starts_with("trigger missed")),
        "{records:#?}"
    );
}

#[test]
fn debug_records_show_a_post_window_open_and_close() {
    require_root();
    let probe = workload_probe("uprobe");
    let args = [
        "--probe",
        &probe,
        "--trigger",
        "snapshot_workload_fn.arg0 == 5",
        "--post",
        "3",
        "--",
        WORKLOAD,
        "calls",
        "10",
    ];
    let run = record_at(Some("debug"), &args.map(str::to_owned));
    let records = kernel_records(&run);
    let pid = workload_pid(&run);
    let expected = [
        format!("trigger won on probe 0 (pid {pid}): value 5, --post window open"),
        "--post window closed: snapshot 1 (trigger on probe 0, value 5)".to_owned(),
    ];
    assert_eq!(records, expected, "{}", run.stderr);
}

#[test]
fn default_level_shows_no_kernel_records() {
    require_root();
    let probe = workload_probe("uprobe");
    let skip = record_at(None, &burst_args(&probe, "skip"));
    assert!(missed_total(&skip) >= 1, "{}", skip.stderr);
    let stop = record_at(None, &burst_args(&probe, "stop"));
    assert_eq!(
        stop.of_kind(SnapshotKind::NoSpareStop).len(),
        1,
        "{}",
        stop.stderr
    );
    for run in [&skip, &stop] {
        for text in [
            TARGET,
            "trigger won",
            "trigger missed",
            "--on-no-spare stop:",
        ] {
            assert!(
                !run.stderr.contains(text),
                "`{text}` at the default level: {}",
                run.stderr
            );
        }
    }
}
