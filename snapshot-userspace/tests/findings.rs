//! What an adversarial run broke (issue 11), one test per finding, each run against the real
//! binary as root: a hostile local user's links in `--out`, races at start-up, signals, two
//! recorders, a full disk, limits that were off by one, values that should be refused.

mod common;

use std::{
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    OutDir, SNAPSHOT, Tmpfs, WORKLOAD, collect, record, require_root, snapshot, workload_probe,
};
use snapshot_userspace::snapshot::SnapshotKind;

/// Sends `sig` to `pid`.
fn kill(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Starts `snapshot record --out OUT ARGS…` without waiting for it to record.
fn start(out: &OutDir, args: &[&str]) -> std::process::Child {
    Command::new(&*SNAPSHOT)
        .args(["record", "--out", &out.arg()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", *SNAPSHOT))
}

/// Waits until `path` exists (up to `secs` seconds), polling as fast as possible.
fn wait_for(path: &Path, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if path.symlink_metadata().is_ok() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// A manual-trigger recording of a workload that calls 5 times, then sleeps `ms`.
fn manual_args(probe: &str, ms: &str) -> Vec<String> {
    [
        "--probe",
        probe,
        "--trigger",
        "manual",
        "--",
        WORKLOAD,
        "calls-sleep",
        "5",
        ms,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Finding 1: a header whose tracepoint lists more argument names than an event carries.
#[test]
fn finding_01_too_many_arg_names_is_no_panic_in_any_subcommand() {
    require_root();
    let dir = OutDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("snapshot-0001-condition.snap");
    std::fs::write(&file, common::seven_arg_names_snapshot()).unwrap();
    let f = file.to_string_lossy().into_owned();
    let out = dir.0.join("out").to_string_lossy().into_owned();
    let runs: [&[&str]; 6] = [
        &["show", &f],
        &["show", "--json", &f],
        &["list", &dir.arg()],
        &["export", &f, "--format", "text", "-o", &out],
        &["export", &f, "--format", "chrome-json", "-o", &out],
        &["export", &f, "--format", "perfetto", "-o", &out],
    ];
    for args in runs {
        let o = snapshot(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            matches!(o.status.code(), Some(0 | 1)) && !stderr.contains("panicked"),
            "{args:?}: {:?} {stderr}",
            o.status
        );
        if o.status.code() == Some(1) {
            assert!(stderr.contains("argument names"), "{args:?}: {stderr}");
        }
    }
}

/// Finding 2: deep nesting is refused with a clear error, not a stack overflow.
#[test]
fn finding_02_deep_nesting_is_a_clear_error() {
    require_root();
    let probe = workload_probe("uprobe");
    for expr in [
        format!(
            "{}snapshot_workload_fn.arg1 == 1{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        ),
        format!("{}snapshot_workload_fn.arg1 == 1", "!".repeat(20_000)),
        vec!["snapshot_workload_fn.arg1 == 1"; 3_000].join(" || "),
    ] {
        let run = record(&[
            "--probe",
            &probe,
            "--trigger",
            &expr,
            "--",
            WORKLOAD,
            "calls",
            "1",
        ]);
        assert_eq!(
            run.code,
            Some(2),
            "{}",
            &run.stderr[..run.stderr.len().min(2000)]
        );
        assert!(
            run.stderr.contains("nests too deeply") || run.stderr.contains("too long"),
            "{}",
            &run.stderr[..run.stderr.len().min(2000)]
        );
    }
}

/// Finding 3: SIGUSR1 sent the moment the pid file appears does not kill the recorder; each
/// request ends as a snapshot (or a counted missed trigger) and the pid file goes away.
#[test]
fn finding_03_sigusr1_at_start_up_is_a_snapshot_not_a_death() {
    require_root();
    let probe = workload_probe("uprobe");
    let args = manual_args(&probe, "1000");
    for round in 0..10 {
        let out = OutDir::new();
        let mut child = start(&out, &strs(&args));
        if !wait_for(&out.0.join(".recorder.pid"), 20) {
            let _ = child.kill();
            let run = collect(&child.wait_with_output().unwrap(), out);
            panic!("round {round}: no pid file: {}", run.stderr);
        }
        kill(child.id(), libc::SIGUSR1);
        let ids = common::held_bpf_ids(Some(child.id()));
        let run = collect(&child.wait_with_output().unwrap(), out);
        common::assert_gone(&ids, "after an early SIGUSR1");
        assert_eq!(run.code, Some(0), "round {round}: {}", run.stderr);
        let manual = run.of_kind(SnapshotKind::Manual).len() as u64;
        let missed: u64 = run.snapshots.iter().map(|s| s.header.missed_triggers).sum();
        let discarded = run.stderr.contains("missed triggers 1");
        assert!(
            manual == 1 || missed == 1 || discarded,
            "round {round}: the request vanished: {}",
            run.stderr
        );
        assert!(!run.out.0.join(".recorder.pid").exists(), "round {round}");
    }
}

/// Finding 4: links planted in `--out` by another user are never written through.
#[test]
fn finding_04_planted_links_are_not_followed() {
    require_root();
    let victims = OutDir::new();
    std::fs::create_dir_all(&victims.0).unwrap();
    let victim = victims.0.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let out = OutDir::new();
    std::fs::create_dir_all(&out.0).unwrap();
    std::fs::set_permissions(&out.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&victim, out.0.join(".recorder.pid")).unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for pid in last..last + 400 {
        let _ = std::os::unix::fs::symlink(&victim, out.0.join(format!(".write-test-{pid}")));
    }
    let probe = workload_probe("uprobe");
    let output = Command::new(&*SNAPSHOT)
        .args(["record", "--out", &out.arg()])
        .args([
            "--probe",
            &probe,
            "--trigger",
            "snapshot_workload_fn.arg0 == 2",
        ])
        .args(["--", WORKLOAD, "calls", "3"])
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run = collect(&output, out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.snapshots.len(), 1);

    // An --out another user can write to is refused unless allowed.
    let shared = OutDir::new();
    std::fs::create_dir_all(&shared.0).unwrap();
    std::fs::set_permissions(&shared.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let args = [
        "--probe",
        &probe,
        "--trigger",
        "manual",
        "--",
        WORKLOAD,
        "calls",
        "1",
    ];
    let o = Command::new(&*SNAPSHOT)
        .args(["record", "--out", &shared.arg()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("other users can write") && stderr.contains("--allow-shared-out"),
        "{stderr}"
    );
    let o = Command::new(&*SNAPSHOT)
        .args(["record", "--allow-shared-out", "--out", &shared.arg()])
        .args(args)
        .output()
        .unwrap();
    common::assert_success(&o);
}

/// Finding 5: `export -o` writes through devices and pipes, honours `-`, and replaces neither
/// a link nor a special file.
#[test]
fn finding_05_export_output_respects_what_is_there() {
    require_root();
    let run = common::record_workload(&[&workload_probe("uprobe")], &["calls", "3"]);
    let file = common::snapshot_files(&run.out.0).remove(0);
    let f = file.to_string_lossy().into_owned();
    let dir = OutDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = |n: &str| dir.0.join(n).to_string_lossy().into_owned();
    let export = |o: &str| snapshot(&["export", &f, "--format", "text", "-o", o]);

    // A replica of /dev/null: still a character device afterwards.
    let null = path("null");
    let c = std::ffi::CString::new(null.clone()).unwrap();
    // SAFETY: mknod with a valid path; makes a character device (1, 3).
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
        0
    );
    let o = export(&null);
    common::assert_success(&o);
    assert!(
        std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device()
    );

    // A link to it (as /dev/stdout is): written through, still a link.
    let link = path("link-to-null");
    std::os::unix::fs::symlink(&null, &link).unwrap();
    let o = export(&link);
    common::assert_success(&o);
    assert!(common::file_type(&link).is_symlink());

    // `-`: standard output.
    let o = export("-");
    common::assert_success(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("snapshot_workload_fn"));

    // A pipe with a reader gets the bytes.
    let fifo = path("fifo");
    common::mkfifo(Path::new(&fifo));
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let o = export(&fifo);
    common::assert_success(&o);
    assert!(reader.join().unwrap().contains("snapshot_workload_fn"));
    assert!(Path::new(&fifo).metadata().unwrap().file_type().is_fifo());

    // A link to a regular file is refused, the file untouched.
    let victim = path("victim");
    std::fs::write(&victim, b"keep").unwrap();
    let link = path("link-to-file");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let o = export(&link);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(common::file_type(&link).is_symlink());

    // A socket is refused and stays a socket.
    let sock = path("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let o = export(&sock);
    assert_eq!(o.status.code(), Some(1));
    assert!(common::file_type(&sock).is_socket());
}

/// Finding 6: a second recording into the same `--out` continues the numbering, and a second
/// recorder at the same time is refused.
#[test]
fn finding_06_nothing_is_overwritten() {
    require_root();
    let out = OutDir::new();
    let probe = workload_probe("uprobe");
    let args = [
        "--probe",
        &probe,
        "--trigger",
        "snapshot_workload_fn.arg0 == 2",
    ];
    let record_into = |out: &OutDir| {
        Command::new(&*SNAPSHOT)
            .args(["record", "--out", &out.arg()])
            .args(args)
            .args(["--", WORKLOAD, "calls", "3"])
            .output()
            .unwrap()
    };
    assert!(record_into(&out).status.success());
    let first = std::fs::read(out.0.join("snapshot-0001-condition.snap")).unwrap();
    let o = record_into(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(out.0.join("snapshot-0001-condition.snap")).unwrap() == first,
        "the first recording's snapshot is kept"
    );
    assert!(
        out.0.join("snapshot-0002-condition.snap").exists(),
        "numbering continues"
    );

    // Two recorders, one directory: the second is refused and names the first.
    let child = common::spawn_recorder(&out, &strs(&manual_args(&probe, "3000")));
    let o = record_into(&out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another recorder") && stderr.contains(&child.id().to_string()),
        "{stderr}"
    );
    let ids = common::held_bpf_ids(Some(child.id()));
    kill(child.id(), libc::SIGINT);
    let run = collect(&child.wait_with_output().unwrap(), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    common::assert_gone(&ids, "two recorders");
}

/// Fills the file system of `dir` with `dir/filler` until it is full, but for 16 KiB.
fn fill(dir: &Path) {
    use std::io::Write as _;
    std::fs::write(dir.join("room"), vec![0u8; 16 << 10]).unwrap();
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    std::fs::remove_file(dir.join("room")).unwrap();
}

/// Finding 7: a full disk is logged once per change, retried with backoff, and bounded in
/// memory; what is past the bound is counted as lost, in the summary and in the next file.
#[test]
fn finding_07_disk_full_is_bounded_and_counted() {
    require_root();
    let fs = Tmpfs::new("256k");
    let out = fs.0.0.join("snaps");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    fill(&fs.0.0);
    let probe = workload_probe("uprobe");
    let child = Command::new(&*SNAPSHOT)
        .args(["record", "--out"])
        .arg(&out)
        .args([
            "--probe",
            &probe,
            "--trigger",
            "snapshot_workload_fn.arg1 == 1",
        ])
        .args(["--buffer-size", "16ev", "--max-pending", "8K"])
        .args(["--", WORKLOAD, "calls-gap", "80", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(&out.join(".recorder.pid"), 20),
        "the recorder did not start"
    );
    let ids = common::held_bpf_ids(Some(child.id()));
    // About 30 triggers find the disk full, then space comes back.
    std::thread::sleep(Duration::from_millis(800));
    std::fs::remove_file(fs.0.0.join("filler")).unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    common::assert_gone(&ids, "disk full");
    assert_eq!(o.status.code(), Some(1), "snapshots were lost: {stderr}");
    assert!(
        stderr.contains("were lost while") && stderr.contains("--max-pending"),
        "{stderr}"
    );
    let errors = stderr
        .lines()
        .filter(|l| l.contains("cannot write"))
        .count();
    assert!(
        errors <= 2,
        "one line per change of state, not {errors}: {stderr}"
    );
    let files = common::read_snapshots(&out);
    assert!(!files.is_empty(), "written once space came back: {stderr}");
    let lost_in_files: u64 = common::snapshot_files(&out)
        .iter()
        .map(|f| {
            common::header_json(f)["lost_snapshots"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        lost_in_files > 0,
        "the next file counts the lost snapshots: {stderr}"
    );
    let summary = stderr
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_default();
    assert!(
        summary.contains(&format!("lost {lost_in_files} snapshot")),
        "{summary}"
    );
    let seqs: Vec<u64> = files.iter().map(|s| s.header.seq).collect();
    let last = *seqs.last().unwrap();
    assert_eq!(
        seqs.len() as u64 + lost_in_files,
        last,
        "every snapshot up to the last is a file or counted as lost: {seqs:?}"
    );
}

/// Finding 8: under `--on-no-spare stop`, a flip and a stop are ordered (one decides): two
/// triggers at the same moment on two CPUs never give an empty condition snapshot numbered
/// after the stop snapshot; each condition snapshot holds its trigger's event.
#[test]
fn finding_08_flip_and_stop_are_ordered() {
    require_root();
    let probe = workload_probe("uprobe");
    for round in 0..25 {
        let run = record(&[
            "--probe",
            &probe,
            "--trigger",
            "snapshot_workload_fn.arg1 == 1",
            "--on-no-spare",
            "stop",
            "--",
            WORKLOAD,
            "pairs",
            "3",
            "0",
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let kinds: Vec<_> = run.snapshots.iter().map(|s| s.header.kind).collect();
        if let Some(stop) = kinds.iter().position(|k| *k == SnapshotKind::NoSpareStop) {
            assert_eq!(
                stop + 1,
                kinds.len(),
                "round {round}: the stop comes last: {kinds:?}"
            );
        }
        for s in run.of_kind(SnapshotKind::Condition) {
            let fired = s.header.fired.as_ref().unwrap();
            assert!(
                s.events
                    .iter()
                    .any(|e| e.args[1] == 1 && e.ts_ns == fired.ts_ns),
                "round {round}: snapshot {} ({} events) lacks its trigger's event: {kinds:?}",
                s.header.seq,
                s.events.len()
            );
        }
    }
}

/// Finding 9: `--max-snapshots N` writes exactly N files.
#[test]
fn finding_09_max_snapshots_is_exact() {
    require_root();
    let probe = workload_probe("uprobe");
    for n in ["1", "10"] {
        for _ in 0..3 {
            let run = record(&[
                "--probe",
                &probe,
                "--trigger",
                "snapshot_workload_fn.arg1 == 1",
                "--buffer-size",
                "64ev",
                "--max-snapshots",
                n,
                "--dump-on-exit",
                "--",
                WORKLOAD,
                "seq-threads",
                "200000",
                "97",
            ]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            assert_eq!(run.snapshots.len().to_string(), n, "{}", run.stderr);
            assert!(
                run.stderr.contains("--max-snapshots reached"),
                "{}",
                run.stderr
            );
        }
    }
}

/// Finding 10: `snapshot trigger` never signals a process that is not the recorder.
#[test]
fn finding_10_trigger_never_signals_a_stranger() {
    require_root();
    let out = OutDir::new();
    std::fs::create_dir_all(&out.0).unwrap();
    let mut stranger = Command::new(WORKLOAD)
        .args(["calls-sleep", "0", "3000"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(out.0.join(".recorder.pid"), stranger.id().to_string()).unwrap();
    let o = snapshot(&["trigger", &out.arg()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no recorder"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}

/// Finding 11: a FIFO named `*.snap` does not hang `show` or `list`.
#[test]
fn finding_11_special_files_do_not_hang_the_reader() {
    require_root();
    let dir = OutDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let fifo = dir.0.join("snapshot-0001-condition.snap");
    common::mkfifo(&fifo);
    let f = fifo.to_string_lossy().into_owned();
    for args in [vec!["show", f.as_str()], vec!["list", &dir.arg()]] {
        let o = common::output_within(Command::new(&*SNAPSHOT).args(&args), 5)
            .unwrap_or_else(|| panic!("{args:?} hung"));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Finding 12: values that cannot work are refused before anything is recorded.
#[test]
fn finding_12_values_that_cannot_work_are_refused() {
    require_root();
    let probe = workload_probe("uprobe");
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--probe",
                &probe,
                "--trigger",
                "manual",
                "--post",
                "18446744073s",
            ],
            "--post",
        ),
        (
            &[
                "--probe",
                &probe,
                "--trigger",
                "manual",
                "--holdoff",
                "18446744073s",
            ],
            "--holdoff",
        ),
        (
            &["--probe", &probe, "--trigger", "manual", "--comm", ""],
            "--comm",
        ),
        (
            &[
                "--probe",
                &format!("x={probe}"),
                "--probe",
                "x=tracepoint:syscalls:sys_enter_close",
                "--trigger",
                "x.arg0 == 1",
            ],
            "`x`",
        ),
    ];
    for (args, needle) in cases {
        let mut full = args.to_vec();
        if !args.contains(&"--comm") {
            full.extend(["--", WORKLOAD, "calls", "1"]);
        }
        let run = record(&full);
        assert!(matches!(run.code, Some(1 | 2)), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.snapshots.is_empty());
    }
}

/// Finding 13: the smaller ones.
#[test]
fn finding_13_list_errors_go_to_stderr() {
    require_root();
    let dir = OutDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(
        dir.0.join("snapshot-0001-condition.snap"),
        b"EBPFSNAP garbage",
    )
    .unwrap();
    let o = snapshot(&["list", &dir.arg()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("snapshot-0001-condition.snap"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn finding_13_non_root_creates_nothing_and_names_no_xtask() {
    require_root();
    let out = OutDir::new();
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            SNAPSHOT.as_str(),
            "record",
        ])
        .args(["--out", &out.arg(), "--trigger", "manual"])
        .args([
            "--probe",
            "tracepoint:syscalls:sys_enter_close",
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs root") && !stderr.contains("xtask"),
        "{stderr}"
    );
    assert!(!out.0.exists(), "--out created before the root check");
}

#[test]
fn finding_13_export_to_a_directory_names_it() {
    require_root();
    let run = common::record_workload(&[&workload_probe("uprobe")], &["calls", "2"]);
    let file = common::snapshot_files(&run.out.0).remove(0);
    let target = OutDir::new();
    std::fs::create_dir_all(target.0.join("sub")).unwrap();
    let o = snapshot(&[
        "export",
        &file.to_string_lossy(),
        "--format",
        "text",
        "-o",
        &format!("{}/sub/", target.arg()),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}/sub/ is a directory", target.arg())),
        "{stderr}"
    );
}

#[test]
fn finding_13_temporary_files_of_a_killed_writer_are_cleaned() {
    require_root();
    let out = OutDir::new();
    std::fs::create_dir_all(&out.0).unwrap();
    std::fs::set_permissions(&out.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let tmp = out.0.join(".snapshot-0001-condition.snap.tmp");
    std::fs::write(&tmp, b"half a snapshot").unwrap();
    let probe = workload_probe("uprobe");
    let child = common::spawn_recorder(&out, &strs(&manual_args(&probe, "200")));
    let run = collect(&child.wait_with_output().unwrap(), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!tmp.exists(), "left-over temporary file");
}

/// Every manual request ends as a snapshot or as a counted missed trigger, even when they
/// come faster than snapshots are written.
#[test]
fn finding_13_every_manual_request_is_answered() {
    require_root();
    let out = OutDir::new();
    let probe = workload_probe("uprobe");
    let child = common::spawn_recorder(&out, &strs(&manual_args(&probe, "6000")));
    let requests = 120;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let dir = out.arg();
            std::thread::spawn(move || {
                for _ in 0..requests / 4 {
                    let _ = snapshot(&["trigger", &dir]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    kill(child.id(), libc::SIGINT);
    let run = collect(&child.wait_with_output().unwrap(), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let manual = run.of_kind(SnapshotKind::Manual).len() as u64;
    let missed = common::summary_number(&run.stderr, "missed triggers");
    assert_eq!(manual + missed, requests, "{}", run.stderr);
}
