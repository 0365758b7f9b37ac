//! Probes and targets on the host (root): raw tracepoints, durations of uprobe/uretprobe
//! pairs, the tid, comm and pid filters, held commands, following forks, --keep-going, and the
//! errors for names that do not exist (with the closest valid ones).

mod common;

use std::{process::Command, time::Duration};

use common::{
    OutDir, SNAPSHOT, WORKLOAD, collect, record, record_workload, require_root, workload_probe,
};

#[test]
fn raw_tracepoint_sees_every_syscall_with_its_number() {
    require_root();
    let run = record_workload(&["rawtp:sys_enter"], &["getpid", "1000"]);
    let getpid = run
        .events
        .iter()
        .filter(|e| e.args[1] == libc::SYS_getpid as u64)
        .count();
    assert_eq!(getpid, 1000, "one event per getpid, arg1 = syscall number");
}

#[test]
fn held_command_is_recorded_from_its_first_syscall_and_names_follow_exec() {
    require_root();
    // raw_tp sys_enter sees the held command's last syscalls before exec (as `snapshot`) and
    // the workload's after it: the per-CPU comm cache must not carry the old name over.
    let run = record_workload(&["rawtp:sys_enter"], &["calls", "1"]);
    let execve = run
        .events
        .iter()
        .position(|e| e.args[1] == libc::SYS_execve as u64)
        .expect("execve recorded");
    let first = &run.events[execve + 1];
    assert_eq!(
        first.args[1],
        libc::SYS_brk as u64,
        "the program's first syscall (ld.so's brk) is there: {first:?}"
    );
    assert!(
        run.events[..execve].iter().all(|e| e.comm == "snapshot"),
        "before exec: {:?}",
        &run.events[..execve]
    );
    let after: Vec<_> = run.events[execve + 1..]
        .iter()
        .map(|e| e.comm.as_str())
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|c| *c == "snapshot-worklo"),
        "after exec: {after:?}"
    );
}

/// Each return of a uprobe/uretprobe pair carries the call's duration, as the workload
/// measured it around the call (see `assert_duration_close` for the tolerance).
#[test]
fn uprobe_pairs_carry_call_durations() {
    require_root();
    let entry = common::sleep_probe("uprobe");
    let ret = common::sleep_probe("uretprobe");
    let run = record_workload(&[&entry, &ret], &["timed-sleeps", "5", "30", "12"]);
    let returns: Vec<_> = run.events.iter().filter(|e| e.ret.is_some()).collect();
    let measured = common::slept_ns(&run.stdout);
    assert_eq!(returns.len(), 3, "{:?}", run.events);
    assert_eq!(measured.len(), 3, "{}", run.stdout);
    for (r, m) in returns.iter().zip(&measured) {
        let d = r
            .duration_ns
            .unwrap_or_else(|| panic!("return without duration: {r:?}"));
        common::assert_duration_close(d, *m, "a call's duration");
    }
    let entries: Vec<_> = run.events.iter().filter(|e| e.ret.is_none()).collect();
    assert!(
        entries.iter().all(|e| e.duration_ns.is_none()),
        "entries carry no duration"
    );
    for (e, r) in entries.iter().zip(&returns) {
        assert!(
            r.ts_ns - e.ts_ns >= r.duration_ns.unwrap(),
            "duration within entry..return"
        );
    }
}

#[test]
fn tid_filter_records_one_thread() {
    require_root();
    let out = OutDir::new();
    let mut target = common::held_workload(&out, &["threads-calls", "0", "6"]);
    let tid = target.id().to_string(); // the main thread's tid is the pid
    let probe = workload_probe("uprobe");
    let run = common::record_into(
        out,
        &[
            "--trigger",
            "manual",
            "--dump-on-exit",
            "--probe",
            &probe,
            "--tid",
            &tid,
        ],
    );
    target.wait().expect("target");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.events.len(),
        6,
        "only the main thread's calls: {:?}",
        run.events
    );
    assert!(
        run.events
            .iter()
            .all(|e| e.args[2] == 0 && e.tid.to_string() == tid)
    );
}

#[test]
fn comm_filter_records_tasks_by_name_and_follows_renames() {
    require_root();
    let out = OutDir::new();
    let probe = workload_probe("uprobe");
    let recorder = common::spawn_recorder(
        &out,
        &[
            "--trigger",
            "manual",
            "--dump-on-exit",
            "--probe",
            &probe,
            "--comm",
            "snapwl-named",
        ],
    );
    // The target renames itself (prctl) before its calls; the bystander keeps another name.
    let mut target = Command::new(WORKLOAD)
        .args(["named", "snapwl-named", "200", "4"])
        .spawn()
        .expect("target");
    let mut bystander = Command::new(WORKLOAD)
        .args(["named", "snapwl-other", "200", "9"])
        .spawn()
        .expect("bystander");
    target.wait().expect("target");
    bystander.wait().expect("bystander");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    let run = collect(&recorder.wait_with_output().expect("recorder"), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.events.len(), 4, "{:?}", run.events);
    assert!(run.events.iter().all(|e| e.comm == "snapwl-named"));
}

#[test]
fn follow_forks_catches_a_grandchild() {
    require_root();
    let probe = workload_probe("uprobe");
    let with = record(&[
        "--trigger",
        "manual",
        "--dump-on-exit",
        "--follow-forks",
        "--probe",
        &probe,
        "--",
        WORKLOAD,
        "fork-tree",
    ]);
    assert_eq!(with.code, Some(0), "{}", with.stderr);
    let mut depths: Vec<u64> = with.events.iter().map(|e| e.args[0]).collect();
    depths.sort_unstable();
    assert_eq!(depths, [0, 1, 2], "parent, child and grandchild");
    let pids: std::collections::HashSet<u32> = with.events.iter().map(|e| e.pid).collect();
    assert_eq!(pids.len(), 3, "three processes");
    let without = record(&[
        "--trigger",
        "manual",
        "--dump-on-exit",
        "--probe",
        &probe,
        "--",
        WORKLOAD,
        "fork-tree",
    ]);
    let depths: Vec<u64> = without.events.iter().map(|e| e.args[0]).collect();
    assert_eq!(
        depths,
        [0],
        "without --follow-forks only the command itself"
    );
}

#[test]
fn keep_going_outlives_the_target() {
    require_root();
    let out = OutDir::new();
    let probe = workload_probe("uprobe");
    let recorder = common::spawn_recorder(
        &out,
        &[
            "--trigger",
            "manual",
            "--dump-on-exit",
            "--keep-going",
            "--probe",
            &probe,
            "--",
            WORKLOAD,
            "calls",
            "3",
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let pid_file = out.0.join(".recorder.pid");
    assert!(pid_file.exists(), "still recording after the target exited");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGTERM) };
    let run = collect(&recorder.wait_with_output().expect("recorder"), out);
    assert!(run.stderr.contains("SIGTERM received"), "{}", run.stderr);
    assert_eq!(run.events.len(), 3);
}

#[test]
fn names_that_do_not_exist_get_the_closest_valid_ones() {
    require_root();
    let misspelt = format!("uprobe:{WORKLOAD}:snapshot_workload_fm");
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &[
                "--probe",
                "tracepoint:syscalls:sys_enter_opnat",
                "--",
                WORKLOAD,
                "calls",
                "1",
            ],
            &[
                "no tracepoint `syscalls:sys_enter_opnat`",
                "did you mean",
                "tracepoint:syscalls:sys_enter_openat",
            ],
        ),
        (
            &["--probe", &misspelt, "--", WORKLOAD, "calls", "1"],
            &[
                "has no function symbol `snapshot_workload_fm`",
                "did you mean `snapshot_workload_fn`",
            ],
        ),
        (
            &["--probe", "kprobe:vfs_*+4", "--", WORKLOAD],
            &["malformed probe", "kprobe:FUNCTION[+OFFSET]"],
        ),
    ];
    for (args, needles) in cases {
        let mut full = vec!["--trigger", "manual"];
        full.extend_from_slice(args);
        let run = record(&full);
        assert!(
            matches!(run.code, Some(1 | 2)),
            "{args:?}: {:?} {}",
            run.code,
            run.stderr
        );
        for n in needles {
            assert!(
                run.stderr.contains(n),
                "{args:?}: expected `{n}` in: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn a_pid_that_exits_during_attach_is_a_clear_error() {
    require_root();
    let mut target = Command::new(WORKLOAD)
        .args(["calls-sleep", "1", "100"])
        .spawn()
        .expect("target");
    let pid = target.id().to_string();
    let probe = workload_probe("uprobe");
    let out = OutDir::new();
    let output = Command::new(&*SNAPSHOT)
        .args([
            "record",
            "--out",
            &out.arg(),
            "--trigger",
            "manual",
            "--probe",
            &probe,
            "--pid",
            &pid,
        ])
        .env("SNAPSHOT_TEST_ATTACH_DELAY_MS", "600")
        .output()
        .expect("recorder");
    target.wait().expect("target");
    let run = collect(&output, out);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "process {pid} exited while the probes were being attached"
        )),
        "{}",
        run.stderr
    );
}
