//! Host integration tests: real programs loaded into this kernel (root), on a workload the
//! test controls, asserting exact event counts and argument values, and the error messages.

mod common;

use common::{SNAPSHOT, WORKLOAD, of, record, record_workload, require_root, workload_probe};

#[test]
fn tracepoint_records_every_close_with_its_fd_and_errno() {
    require_root();
    let n = 200u64;
    let base = 300_000u64;
    let run = record_workload(
        &[
            "tracepoint:syscalls:sys_enter_close",
            "tracepoint:syscalls:sys_exit_close",
        ],
        &["close", &n.to_string(), &base.to_string()],
    );
    let mut fds: Vec<u64> = of(&run, "sys_enter_close")
        .iter()
        .map(|e| e.args[0])
        .filter(|&fd| fd >= base)
        .collect();
    fds.sort_unstable();
    assert_eq!(
        fds,
        (base..base + n).collect::<Vec<_>>(),
        "each closed fd exactly once"
    );
    let ebadf = of(&run, "sys_exit_close")
        .iter()
        .filter(|e| e.ret == Some(-9))
        .count();
    assert_eq!(ebadf as u64, n, "every close of a bad fd returns -EBADF");
    let pid = run.events[0].pid;
    assert!(
        run.events.iter().all(|e| e.pid == pid),
        "only the target is recorded"
    );
}

#[test]
fn uprobe_and_uretprobe_see_arguments_and_return_values() {
    require_root();
    let n = 100u64;
    let entry = workload_probe("uprobe");
    let ret = workload_probe("uretprobe");
    let run = record_workload(&[&entry, &ret], &["calls", &n.to_string()]);
    let calls = of(&run, "snapshot_workload_fn");
    let entries: Vec<_> = calls.iter().filter(|e| e.ret.is_none()).collect();
    let returns: Vec<_> = calls.iter().filter(|e| e.ret.is_some()).collect();
    assert_eq!(entries.len() as u64, n);
    assert_eq!(returns.len() as u64, n);
    for (i, (e, r)) in (1..=n).zip(entries.iter().zip(&returns)) {
        assert_eq!(e.args[..3], [i, 2 * i, 3 * i], "arguments of call {i}");
        assert_eq!(r.ret, Some((6 * i) as i64), "return value of call {i}");
        assert!(e.ts_ns <= r.ts_ns, "entry before return");
    }
}

#[test]
fn pid_filter_is_applied_in_the_kernel() {
    require_root();
    // Target: 7 calls. Bystander: same binary, 11 calls, not targeted. Both start calling
    // once the recorder records; the target only once the bystander is done, so that all the
    // bystander's calls are made while the recorder records (and the bystander cannot miss
    // the pid file of a recorder that is already gone).
    let out = common::OutDir::new();
    let marks = common::OutDir::new();
    std::fs::create_dir_all(&marks.0).expect("a directory for the bystander's mark");
    let done = marks.0.join("bystander-done");
    let mut bystander = std::process::Command::new(WORKLOAD)
        .args(["sleep-calls", "0", "11"])
        .env("SNAPSHOT_WORKLOAD_WAIT_FOR", out.0.join(".recorder.pid"))
        .env("SNAPSHOT_WORKLOAD_DONE", &done)
        .spawn()
        .expect("bystander");
    let mut target = std::process::Command::new(WORKLOAD)
        .args(["sleep-calls", "0", "7"])
        .env(
            "SNAPSHOT_WORKLOAD_WAIT_FOR",
            std::env::join_paths([out.0.join(".recorder.pid"), done]).expect("no `:` in them"),
        )
        .spawn()
        .expect("target");
    let pid = target.id().to_string();
    let probe = workload_probe("uprobe");
    let run = common::record_into(
        out,
        &[
            "--trigger",
            "manual",
            "--dump-on-exit",
            "--probe",
            &probe,
            "--pid",
            &pid,
        ],
    );
    assert!(
        target.wait().expect("target").success(),
        "the target failed"
    );
    assert!(
        bystander.wait().expect("bystander").success(),
        "the bystander failed"
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.events.len(),
        7,
        "only the target's 7 calls: {:?}",
        run.events
    );
    assert!(run.events.iter().all(|e| e.pid.to_string() == pid));
}

#[test]
fn kprobe_on_a_kernel_without_kprobes_names_the_cause_and_the_way_out() {
    require_root();
    // Hidden on any kernel by the test switch; this host has no kprobes anyway.
    let run = common::record_with_env(
        &[
            "--trigger",
            "manual",
            "--probe",
            "kprobe:vfs_read",
            "--",
            WORKLOAD,
            "calls",
            "1",
        ],
        &[("SNAPSHOT_HIDE_PROBE_KINDS", "kprobe")],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for needle in [
        "needs kprobes",
        "CONFIG_KPROBES",
        "cargo xtask vm",
        "tracepoint",
    ] {
        assert!(
            run.stderr.contains(needle),
            "missing `{needle}` in: {}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn fentry_where_the_kernel_refuses_it_names_the_cause_and_the_way_out() {
    require_root();
    let run = common::record_with_env(
        &[
            "--trigger",
            "manual",
            "--probe",
            "fentry:vfs_read",
            "--",
            WORKLOAD,
            "calls",
            "1",
        ],
        &[("SNAPSHOT_HIDE_PROBE_KINDS", "fentry")],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for needle in ["needs BPF trampolines", "cargo xtask vm", "tracepoint"] {
        assert!(
            run.stderr.contains(needle),
            "missing `{needle}` in: {}",
            run.stderr
        );
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    require_root();
    let sym = format!("uprobe:{WORKLOAD}:no_such_symbol");
    let m = "manual";
    let cases: [(&[&str], &str); 8] = [
        (
            &[
                "--trigger",
                m,
                "--probe",
                "kprob:vfs_read",
                "--",
                WORKLOAD,
                "calls",
                "1",
            ],
            "unknown probe kind `kprob`",
        ),
        (
            &[
                "--trigger",
                m,
                "--probe",
                "tracepoint:syscalls:sys_enter_nope",
                "--",
                WORKLOAD,
                "calls",
                "1",
            ],
            "no tracepoint `syscalls:sys_enter_nope`",
        ),
        (
            &[
                "--trigger",
                m,
                "--probe",
                "uprobe:/no/such/binary:main",
                "--",
                WORKLOAD,
                "calls",
                "1",
            ],
            "/no/such/binary does not exist",
        ),
        (
            &[
                "--trigger",
                m,
                "--probe",
                &sym,
                "--",
                WORKLOAD,
                "calls",
                "1",
            ],
            "no_such_symbol",
        ),
        (
            &[
                "--trigger",
                m,
                "--probe",
                "tracepoint:syscalls:sys_enter_close",
                "--pid",
                "999999999",
            ],
            "no process with pid 999999999",
        ),
        (
            &[
                "--trigger",
                m,
                "--probe",
                "tracepoint:syscalls:sys_enter_close",
                "--buffer-size",
                "12Q",
                "--",
                WORKLOAD,
            ],
            "bad buffer size `12Q`",
        ),
        (
            &[
                "--trigger",
                "sys_enter_close.fdd == 1",
                "--probe",
                "tracepoint:syscalls:sys_enter_close",
                "--",
                WORKLOAD,
                "calls",
                "1",
            ],
            "has no field `fdd`",
        ),
        (
            &[
                "--trigger",
                "nope.ret < 0",
                "--probe",
                "tracepoint:syscalls:sys_enter_close",
                "--",
                WORKLOAD,
                "calls",
                "1",
            ],
            "unknown probe `nope`",
        ),
    ];
    for (args, needle) in cases {
        let run = record(args);
        assert_ne!(run.code, Some(0), "{args:?} should fail");
        assert!(
            run.stderr.contains(needle),
            "{args:?}: expected `{needle}` in: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("panicked"),
            "{args:?} panicked: {}",
            run.stderr
        );
        assert!(run.snapshots.is_empty(), "{args:?} wrote snapshots");
    }
}

#[test]
fn without_root_the_error_says_so() {
    require_root();
    // Run the binary as `nobody`: it must refuse with the cause and the fix, not crash.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            SNAPSHOT.as_str(),
            "record",
            "--out",
            "/tmp/snapshot-nobody",
        ])
        .args([
            "--trigger",
            "manual",
            "--probe",
            "tracepoint:syscalls:sys_enter_close",
            "--",
            "/bin/true",
        ])
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all("/tmp/snapshot-nobody");
}

/// Six triggers 150 ms apart, each taking a snapshot, plus the exit snapshot: about a second
/// of recording, long enough for a few status refreshes.
fn spaced_snapshots(extra: &[&str], env: &[(&str, &str)]) -> common::Run {
    let probe = workload_probe("uprobe");
    let mut args = vec![
        "--probe",
        &probe,
        "--trigger",
        "snapshot_workload_fn.arg1 == 1",
        "--dump-on-exit",
    ];
    args.extend_from_slice(extra);
    args.extend(["--", WORKLOAD, "calls-gap", "6", "150"]);
    let run = common::record_with_env(&args, env);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.snapshots.len(), 7, "6 triggers and the exit snapshot");
    run
}

#[test]
fn quiet_prints_nothing_on_a_successful_recording() {
    require_root();
    // Even with the status line forced on, --quiet wins.
    let run = spaced_snapshots(&["-q"], &[("SNAPSHOT_STATUS", "always")]);
    assert_eq!(run.stdout, "", "stdout");
    assert_eq!(run.stderr, "", "stderr");
}

#[test]
fn json_lines_are_kept_apart_from_the_commands_output() {
    require_root();
    // The workload prints `ns_per_op …` on its stdout.
    let args = [
        "--probe",
        "tracepoint:syscalls:sys_enter_getpid",
        "--trigger",
        "manual",
        "--dump-on-exit",
    ];
    let tail = ["--", WORKLOAD, "getpid", "1000"];
    let run = record(&[&args[..], &["--json"], &tail[..]].concat());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(lines.len(), 1, "the exit snapshot: {}", run.stdout);
    assert!(
        run.stderr.contains("ns_per_op"),
        "the command's output moves to stderr: {}",
        run.stderr
    );

    // --json-out FILE: the lines go to the file, stdout stays the command's.
    let dir = common::OutDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("snapshots.jsonl");
    let file_arg = file.to_string_lossy().into_owned();
    let run = record(&[&args[..], &["--json-out", &file_arg], &tail[..]].concat());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("ns_per_op"), "{}", run.stdout);
    let text = std::fs::read_to_string(&file).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(line["kind"], "exit", "{line}");

    // A link planted at the name is refused before anything is recorded.
    let victim = dir.0.join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    let link = dir.0.join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let link_arg = link.to_string_lossy().into_owned();
    let run = record(&[&args[..], &["--json-out", &link_arg], &tail[..]].concat());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("is a symbolic link to a file"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(run.snapshots.is_empty(), "nothing recorded");
}

#[test]
fn json_stays_pure_while_the_status_line_is_shown() {
    require_root();
    let run = spaced_snapshots(&["--json"], &[("SNAPSHOT_STATUS", "always")]);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(lines.len(), 7, "one JSON line per snapshot: {}", run.stdout);
    for (seq, line) in (1..).zip(&lines) {
        assert_eq!(line["seq"], seq, "{line}");
    }
    let status: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("events/s"))
        .collect();
    assert!(
        status.len() >= 2,
        "a second of recording refreshes the status line several times: {}",
        run.stderr
    );
    for field in [
        "events/s | snapshots ",
        "| overwritten ",
        "| dropped 0 ",
        "| missed triggers 0 ",
        "| spare ",
    ] {
        assert!(
            status.iter().all(|l| l.contains(field)),
            "`{field}` missing from the status: {status:#?}"
        );
    }
    assert!(
        status.iter().any(|l| l.ends_with("| spare armed")),
        "the spare is re-armed after each snapshot: {status:#?}"
    );
    assert!(
        status.iter().any(|l| !l.contains("snapshots 0 ")),
        "the status follows the snapshots: {status:#?}"
    );
    assert!(!run.stdout.contains("events/s"), "status on stdout");
}

#[test]
fn the_status_line_is_off_when_stderr_is_not_a_terminal() {
    require_root();
    let run = spaced_snapshots(&[], &[]);
    assert!(!run.stderr.contains("events/s"), "{}", run.stderr);
    let per_snapshot = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("snapshot ") && l.contains(" events, "))
        .count();
    assert_eq!(per_snapshot, 7, "one line per snapshot: {}", run.stderr);
    assert!(run.stderr.contains("snapshot: stopped: target exited"));
}

/// `snapshot check` with `env`: (exit code, stdout).
fn check(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(&*SNAPSHOT)
        .arg("check")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run snapshot check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_tells_what_this_kernel_offers_and_fails_without_a_required_feature() {
    require_root();
    let (code, json) = check(&["--json"], &[]);
    assert_eq!(code, Some(0), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(report["kernel"], release.trim());
    assert_eq!(report["can_record"], true);
    let feature = |r: &serde_json::Value, name: &str| {
        r["features"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no feature {name}"))
    };
    // Probing agrees with what the system shows.
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    assert_eq!(feature(&report, "kprobes")["present"], kprobes);
    let kprobe = &report["probe_kinds"][0];
    assert_eq!(kprobe["kind"], "kprobe");
    assert_eq!(
        kprobe["uses"].is_null(),
        !kprobes && feature(&report, "trampolines")["present"] == false
    );

    // A hidden required feature: exit 1, and the text names it, its use, its kernel and the
    // way out; recording refuses with the same words.
    let hide = [("SNAPSHOT_HIDE_FEATURES", "ringbuf")];
    let (code, text) = check(&[], &hide);
    assert_eq!(code, Some(1), "{text}");
    for needle in [
        "recording CANNOT work here",
        "BPF ring buffer",
        "flip and stop notices",
        "Linux 5.8",
        "Ways out",
    ] {
        assert!(text.contains(needle), "`{needle}` in: {text}");
    }
    let run = common::record_with_env(
        &[
            "--trigger",
            "manual",
            "--probe",
            "tracepoint:syscalls:sys_enter_close",
            "--",
            WORKLOAD,
            "write",
            "1",
        ],
        &hide,
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("lacks BPF ring buffer maps"),
        "{}",
        run.stderr
    );

    // Without atomics, the fallbacks are what the recorder says it uses.
    let (_, json) = check(&["--json"], &[("SNAPSHOT_HIDE_FEATURES", "atomics")]);
    let old: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(old["can_record"], true);
    assert_eq!(old["recorder"][0]["uses"], "counting lock (atomic add)");
    assert_eq!(old["recorder"][1]["uses"], "token in a queue map");
    assert_eq!(feature(&old, "atomic_xchg")["present"], false);
}
