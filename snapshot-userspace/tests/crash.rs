//! Built-in crash and kill triggers (root): a workload that segfaults and one that aborts each
//! leave a snapshot taken in the kernel as the signal is delivered, naming the signal, the
//! faulting thread and, on a user stack symbolized after the process died, the workload's
//! faulting function; `signal(SIGTERM)` sees a handled SIGTERM, and an unhandled one another
//! process sends (which the kernel delivers as SIGKILL); `oom` sees the OOM killer
//! choose a workload inside a small memory cgroup (32 MiB, removed afterwards).

mod common;

use std::{path::PathBuf, process::Child};

use common::{OutDir, WORKLOAD, collect, held_workload, record, require_root, workload_probe};
use snapshot_userspace::snapshot::{
    Snapshot, SnapshotKind,
    symbols::{self, Frame},
};

/// Records `--pid` of a workload started first (held until the recorder records, so its
/// memory map is read before it runs), with `args`; returns the run and the workload's pid
/// and exit status.
fn record_held(
    workload: &[&str],
    args: &[&str],
    before: impl FnOnce(u32),
) -> (common::Run, u32, std::process::ExitStatus) {
    let out = OutDir::new();
    let mut child: Child = held_workload(&out, workload);
    let pid = child.id();
    before(pid);
    let (dir, pid_arg) = (out.arg(), pid.to_string());
    let mut full = vec!["record", "--out", &dir, "--pid", &pid_arg];
    full.extend_from_slice(args);
    let output = common::snapshot(&full);
    let status = child.wait().expect("the workload ends");
    (collect(&output, out), pid, status)
}

/// The one condition snapshot of a run.
fn only_condition(run: &common::Run) -> &Snapshot {
    let c = run.of_kind(SnapshotKind::Condition);
    assert_eq!(c.len(), 1, "one condition snapshot: {}", run.stderr);
    c[0]
}

fn describe(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(Frame::describe).collect()
}

/// Asserts a crash snapshot of signal `sig` (named `name`) in thread `pid`, with the user
/// stack's top frame in `function`, and `show` printing the trigger as written and the signal
/// decoded.
fn assert_crash(run: &common::Run, pid: u32, sig: i64, name: &str, function: &str, trigger: &str) {
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let snap = only_condition(run);
    assert_eq!(snap.header.trigger, trigger);
    let fired = snap.header.fired.as_ref().expect("fired");
    assert_eq!(
        (fired.probe.as_str(), fired.value, fired.pid, fired.tid),
        ("signal_deliver", sig, pid, pid),
        "{fired:?}"
    );
    let user = describe(&fired.user_stack);
    assert!(
        user.first()
            .is_some_and(|f| f.starts_with(function) && f.ends_with("(snapshot-workload)")),
        "the user stack's top frame is {function}: {user:?} (maps {:?})",
        fired.user_maps
    );
    assert!(
        fired.user_maps.is_some(),
        "the header says where the map came from"
    );
    let kernel = describe(&fired.kernel_stack);
    assert!(
        kernel.iter().any(|f| f.contains("signal")),
        "the kernel stack is in the signal path: {kernel:?}"
    );
    // The event that fired it is in the snapshot, with the signal decoded.
    let file = run.out.0.join("snapshot-0001-condition.snap");
    let shown = common::snapshot(&["show", &file.to_string_lossy()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("trigger `{trigger}`")), "{text}");
    assert!(
        text.contains(&format!("signal_deliver value={sig} {name}")),
        "{text}"
    );
    assert!(text.contains(&format!("sig={name}")), "{text}");
    assert!(text.contains(&format!("{function}+")), "{text}");
    assert!(text.contains("# user stack's memory map: "), "{text}");
}

#[test]
fn a_segfault_leaves_a_snapshot_naming_the_faulting_function() {
    require_root();
    let probe = workload_probe("uprobe");
    let (run, pid, status) = record_held(
        &["segfault"],
        &[
            "--probe",
            &probe,
            "--trigger",
            "crash",
            "--trigger",
            "snapshot_workload_fn.arg0 == 7",
        ],
        |_| {},
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(11)
    );
    assert_crash(
        &run,
        pid,
        11,
        "SIGSEGV",
        "snapshot_workload_segfault",
        "crash || snapshot_workload_fn.arg0 == 7",
    );
}

#[test]
fn an_abort_leaves_a_snapshot_naming_the_aborting_function() {
    require_root();
    let (run, pid, status) = record_held(&["abort"], &["--trigger", "crash"], |_| {});
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(6)
    );
    assert_crash(&run, pid, 6, "SIGABRT", "snapshot_workload_abort", "crash");
}

#[test]
fn a_started_command_that_crashes_is_caught_too() {
    require_root();
    // The command is started by the recorder: its map is cached after it starts (every
    // 100 ms) or read at the trigger; it sleeps first so that one of them sees it.
    let run = record(&["--trigger", "crash", "--", WORKLOAD, "segfault", "1000"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let fired = only_condition(&run).header.fired.clone().expect("fired");
    assert_eq!((fired.probe.as_str(), fired.value), ("signal_deliver", 11));
    let user = describe(&fired.user_stack);
    assert!(
        user.first()
            .is_some_and(|f| f.starts_with("snapshot_workload_segfault")),
        "{user:?} ({:?})",
        fired.user_maps
    );
}

/// Asserts the top user frame of `run`'s one crash snapshot is the workload's faulting
/// function, resolved by build id (its memory map never read): returns the header's note.
fn assert_named_by_build_id(run: &common::Run) -> String {
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let fired = only_condition(run).header.fired.clone().expect("fired");
    assert_eq!((fired.probe.as_str(), fired.value), ("signal_deliver", 11));
    let user = describe(&fired.user_stack);
    let note = fired.user_maps.clone().unwrap_or_default();
    assert!(
        user.first()
            .is_some_and(|f| f.starts_with("snapshot_workload_segfault")
                && f.ends_with("(snapshot-workload)")),
        "{user:?} ({note})"
    );
    assert!(
        fired.user_stack[0].build_id.is_some(),
        "the frame keeps its build id"
    );
    note
}

#[test]
fn a_command_that_segfaults_right_after_exec_is_named_by_build_id() {
    require_root();
    // No sleep: the process is gone, its map never read (the cache reads every 100 ms, from
    // after the exec), by the time its trigger is handled; the build-id frames name the
    // started command's file.
    let args = ["--trigger", "crash", "--", WORKLOAD, "segfault"];
    let note = assert_named_by_build_id(&record(&args));
    // Whether the map was read in time depends on the timing: with it never read (the test
    // switch), the frames resolve by build id alone.
    let run = common::record_with_env(&args, &[(symbols::NO_MAPS_ENV, "1")]);
    let alone = assert_named_by_build_id(&run);
    assert_eq!(
        alone, "by build id: the process had exited and no map of it was cached",
        "(without the switch: {note})"
    );
}

#[test]
fn a_comm_target_that_segfaults_is_named_by_build_id() {
    require_root();
    // `--comm`: no memory map is cached (and, with the test switch, none is read at the
    // trigger either). The crashed process's command name (cut to 15 characters) names an
    // executable on the recorder's PATH, whose build id matches.
    let out = OutDir::new();
    let dir = std::path::Path::new(WORKLOAD)
        .parent()
        .expect("a directory");
    let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("a PATH");
    let recorder = common::spawn_recorder_with_env(
        &out,
        &["--comm", "snapshot-worklo", "--trigger", "crash"],
        &[("PATH", &path), (symbols::NO_MAPS_ENV, "1".as_ref())],
    );
    let status = std::process::Command::new(WORKLOAD)
        .arg("segfault")
        .status()
        .expect("the workload runs");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(11)
    );
    for _ in 0..2000 {
        if !common::snapshot_files(&out.0).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    common::send_signal(recorder.id(), libc::SIGINT);
    let run = collect(&recorder.wait_with_output().expect("recorder"), out);
    let note = assert_named_by_build_id(&run);
    assert_eq!(
        note,
        "by build id: the process had exited and no map of it was cached"
    );
}

#[test]
fn signal_sees_a_handled_sigterm_and_not_other_signals() {
    require_root();
    let run = record(&[
        "--trigger",
        "signal(SIGTERM)",
        "--trigger",
        "crash",
        "--",
        WORKLOAD,
        "signal-self",
        "15",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let snap = only_condition(&run);
    assert_eq!(snap.header.trigger, "signal(SIGTERM) || crash");
    let fired = snap.header.fired.as_ref().expect("fired");
    assert_eq!((fired.probe.as_str(), fired.value), ("signal_generate", 15));
    // SIGUSR1, handled the same way, is no SIGTERM and no crash: nothing fires.
    let run = record(&[
        "--trigger",
        "signal(TERM)",
        "--trigger",
        "crash",
        "--",
        WORKLOAD,
        "signal-self",
        "10",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.of_kind(SnapshotKind::Condition).is_empty(),
        "{}",
        run.stderr
    );
}

#[test]
fn signal_sees_an_unhandled_sigterm_sent_by_another_process() {
    require_root();
    // The workload sleeps with no SIGTERM handler: the kernel delivers the SIGTERM this test
    // process sends as SIGKILL, and the sending runs in this process, not in the target.
    let out = OutDir::new();
    let mut workload = held_workload(&out, &["naps", "20000"]);
    let pid = workload.id();
    let recorder = common::spawn_recorder(
        &out,
        &["--pid", &pid.to_string(), "--trigger", "signal(SIGTERM)"],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    common::send_signal(pid, libc::SIGTERM);
    let status = workload.wait().expect("the workload ends");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    let run = collect(&recorder.wait_with_output().expect("recorder"), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let snap = only_condition(&run);
    let fired = snap.header.fired.as_ref().expect("fired");
    assert_eq!(
        (fired.probe.as_str(), fired.value, fired.pid),
        ("signal_generate", 15, std::process::id()),
        "sent by this process: {fired:?}"
    );
    let sent = common::of(&run, "signal_generate");
    assert_eq!(sent.len(), 1, "{}", run.stderr);
    assert_eq!(
        sent[0].args[3],
        u64::from(pid),
        "the victim is the workload"
    );
}

#[test]
fn unknown_signals_and_taken_names_are_clear_errors() {
    require_root();
    let run = record(&["--trigger", "signal(SIGFOO)", "--", WORKLOAD, "calls", "1"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown signal `SIGFOO`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("kill -l"), "{}", run.stderr);
    let taken = format!("signal_deliver=uprobe:{WORKLOAD}:snapshot_workload_fn");
    let run = record(&[
        "-p",
        &taken,
        "--trigger",
        "crash",
        "--",
        WORKLOAD,
        "calls",
        "1",
    ]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("rename yours"), "{}", run.stderr);
    let run = record(&["--trigger", "manual", "--", WORKLOAD, "calls", "1"]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("nothing to record"), "{}", run.stderr);
}

/// A memory cgroup of 32 MiB for one test, removed on drop (cgroup v2 when its memory
/// controller is there, else v1's memory hierarchy).
struct MemCgroup(PathBuf);

impl MemCgroup {
    fn new() -> Self {
        let name = format!("snapshot-test-oom-{}", std::process::id());
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let v2_memory = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (dir, limit) = if v2_memory {
            (v2.join(&name), "memory.max")
        } else {
            (
                PathBuf::from("/sys/fs/cgroup/memory").join(&name),
                "memory.limit_in_bytes",
            )
        };
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!("cannot create the memory cgroup {}: {e} (cgroup v2 with the memory controller, or v1's memory hierarchy, is needed)", dir.display())
        });
        let cg = Self(dir);
        std::fs::write(cg.0.join(limit), "33554432")
            .unwrap_or_else(|e| panic!("cannot limit {}: {e}", cg.0.display()));
        if v2_memory {
            let _ = std::fs::write(cg.0.join("memory.swap.max"), "0");
        } else {
            let _ = std::fs::write(cg.0.join("memory.swappiness"), "0");
        }
        cg
    }

    fn enter(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("cannot move {pid} into {}: {e}", self.0.display()));
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        eprintln!("cannot remove the cgroup {}", self.0.display());
    }
}

#[test]
fn oom_sees_the_oom_killer_choose_a_target() {
    require_root();
    let cg = MemCgroup::new();
    let (run, pid, status) =
        record_held(&["oom", "256"], &["--trigger", "oom"], |pid| cg.enter(pid));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the OOM killer kills the workload"
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let snap = only_condition(&run);
    let fired = snap.header.fired.as_ref().expect("fired");
    assert_eq!(
        (fired.probe.as_str(), fired.value, fired.pid),
        ("mark_victim", i64::from(pid), pid)
    );
    let kernel = describe(&fired.kernel_stack);
    assert!(kernel.iter().any(|f| f.contains("oom")), "{kernel:?}");
    let user = describe(&fired.user_stack);
    assert!(
        user.iter().any(|f| f.contains("snapshot_workload::oom")),
        "{user:?}"
    );
    drop(cg);
}
