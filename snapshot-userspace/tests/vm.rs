//! VM integration tests: kprobe, kretprobe and fentry on Debian's kernels, `x86_64` and arm64,
//! run inside QEMU by `cargo xtask test` (this host's kernel has no kprobes and refuses fentry).
//!
//! `SNAPSHOT_TEST_BREAK=1` (`cargo xtask test --break`) makes every test probe a function the
//! workload never calls (and the error test spell its names right): each must then fail, which
//! shows the assertions can fail.
//!
//! A feature a kernel truly lacks is known here by architecture and version ([`missing`]:
//! BPF trampolines on arm64 before 6.4), not asked of the recorder, which finds it by probing.
//! Where it is missing, a test checks that the recorder falls back or refuses naming it (and
//! fails if the feature works after all), and reports it with [`unsupported`], which
//! `cargo xtask test` counts in its summary.

mod common;

use common::{of, record_workload, require_root};
use snapshot_userspace::snapshot::SnapshotKind;

fn require_vm() -> String {
    require_root();
    std::env::var("SNAPSHOT_VM_KERNEL").unwrap_or_else(|_| {
        panic!("VM tests run inside QEMU: use `cargo xtask test --layer vm` (or `cargo xtask vm -- <this test binary>`)")
    })
}

/// The (major, minor) of a release: `5.10.0-46-amd64` → (5, 10).
fn series(kernel: &str) -> (u32, u32) {
    let mut n = kernel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

/// True when this VM's kernel truly lacks `feature` (as `snapshot check` names it):
/// `trampolines` on arm64 before 6.4 (fentry/fexit need `DYNAMIC_FTRACE_WITH_DIRECT_CALLS`,
/// which came to arm64 in 6.4; attaching fails with error 524 on Debian's 6.1).
fn missing(feature: &str) -> bool {
    let kernel = std::env::var("SNAPSHOT_VM_KERNEL").unwrap_or_default();
    match feature {
        "trampolines" => std::env::consts::ARCH == "aarch64" && series(&kernel) < (6, 4),
        _ => false,
    }
}

/// Says, in yellow, that `what` cannot work on this kernel (the test checked how it fails
/// instead), and notes it for `cargo xtask test`'s summary, which counts these.
fn unsupported(kernel: &str, what: &str) {
    let (major, minor) = series(kernel);
    let line = format!(
        "unsupported on {major}.{minor} {}: {what}",
        std::env::consts::ARCH
    );
    eprintln!("\x1b[33;1m{line}\x1b[0m");
    if let Some(dir) = std::env::var_os("SNAPSHOT_VM_OUT") {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join("unsupported.txt"))
            .expect("the VM's output directory is writable");
        writeln!(f, "{line}").expect("write unsupported.txt");
    }
}

/// Checks the run of `spec` (fentry or fexit) on a kernel without BPF trampolines: the
/// recorder said why and used the kprobe kind instead; reports it.
fn fell_back_from_trampolines(kernel: &str, run: &common::Run, spec: &str) {
    let used = if spec.starts_with("fentry") {
        "kprobe"
    } else {
        "kretprobe"
    };
    let function = spec.split(':').nth(1).unwrap_or_default();
    for needle in [
        format!("`{spec}`: "),
        "cannot build a BPF trampoline here".to_owned(),
        format!("uses {used}:{function} instead"),
    ] {
        assert!(
            run.stderr.contains(&needle),
            "{spec} on {kernel}, declared without BPF trampolines: expected `{needle}` (is the feature there after all? then update `missing` in tests/vm.rs) in: {}",
            run.stderr
        );
    }
    unsupported(
        kernel,
        &format!("{spec} (no BPF trampolines: the recorder fell back to {used})"),
    );
}

/// The probed function: `vfs_write`, or with `SNAPSHOT_TEST_BREAK` one the workload never calls.
fn function() -> &'static str {
    if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "vfs_fsync"
    } else {
        "vfs_write"
    }
}

const N: u64 = 50;

fn expected_counts() -> Vec<u64> {
    (0..N).map(|i| 1000 + i).collect()
}

#[test]
fn kprobe_sees_each_write_with_its_count() {
    let kernel = require_vm();
    let spec = format!("kprobe:{}", function());
    let run = record_workload(&[&spec], &["write", &N.to_string()]);
    let counts: Vec<u64> = of(&run, function()).iter().map(|e| e.args[2]).collect();
    assert_eq!(
        counts,
        expected_counts(),
        "kprobe on {kernel}: one event per write, count in arg2"
    );
}

#[test]
fn kretprobe_sees_each_return_value() {
    let kernel = require_vm();
    let spec = format!("kretprobe:{}", function());
    let run = record_workload(&[&spec], &["write", &N.to_string()]);
    let rets: Vec<i64> = of(&run, function()).iter().filter_map(|e| e.ret).collect();
    let want: Vec<i64> = expected_counts().into_iter().map(|c| c as i64).collect();
    assert_eq!(
        rets, want,
        "kretprobe on {kernel}: vfs_write returns the bytes written"
    );
}

#[test]
fn fentry_sees_each_write_with_its_count() {
    let kernel = require_vm();
    let spec = format!("fentry:{}", function());
    let run = record_workload(&[&spec], &["write", &N.to_string()]);
    if missing("trampolines") {
        fell_back_from_trampolines(&kernel, &run, &spec);
        // `--strict` refuses, naming the feature and the kernel's error.
        let strict = common::record(&[
            "--strict",
            "--trigger",
            "manual",
            "--probe",
            &spec,
            "--",
            common::WORKLOAD,
            "write",
            "1",
        ]);
        assert_eq!(strict.code, Some(1), "{}", strict.stderr);
        for needle in [
            "needs BPF trampolines",
            "error 524",
            "--strict refuses kprobe",
        ] {
            assert!(
                strict.stderr.contains(needle),
                "--strict on {kernel}: expected `{needle}` in: {}",
                strict.stderr
            );
        }
    } else {
        assert!(!run.stderr.contains("notice:"), "{}", run.stderr);
    }
    let counts: Vec<u64> = of(&run, function()).iter().map(|e| e.args[2]).collect();
    assert_eq!(
        counts,
        expected_counts(),
        "fentry on {kernel}: one event per write, count in arg2"
    );
}

#[test]
fn kprobe_and_kretprobe_pair_up_in_order() {
    let kernel = require_vm();
    let entry = format!("kprobe:{}", function());
    let ret = format!("kretprobe:{}", function());
    let run = record_workload(&[&entry, &ret], &["write", &N.to_string()]);
    let events = of(&run, function());
    assert_eq!(events.len() as u64, 2 * N, "on {kernel}");
    for (pair, want) in events.chunks(2).zip(expected_counts()) {
        assert_eq!((pair[0].ret, pair[0].args[2]), (None, want), "entry first");
        assert_eq!(pair[1].ret, Some(want as i64), "then its return");
    }
}

#[test]
fn kretprobe_trigger_freezes_the_writes_up_to_it() {
    let kernel = require_vm();
    let f = function();
    let entry = format!("kprobe:{f}");
    let ret = format!("kretprobe:{f}");
    let trigger = format!("{f}.ret == 1025");
    let run = common::record(&[
        "--probe",
        &entry,
        "--probe",
        &ret,
        "--trigger",
        &trigger,
        "--dump-on-exit",
        "--",
        common::WORKLOAD,
        "write",
        &N.to_string(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let frozen = run.of_kind(SnapshotKind::Condition);
    assert_eq!(frozen.len(), 1, "one flip on {kernel}: {}", run.stderr);
    let s = frozen[0];
    assert_eq!(
        s.header.fired.as_ref().map(|f| f.value),
        Some(1025),
        "trigger context"
    );
    let rets: Vec<i64> = s
        .events
        .iter()
        .filter(|e| e.flags & snapshot_common::EVENT_HAS_RET != 0)
        .map(|e| e.ret as i64)
        .collect();
    assert_eq!(
        rets.last(),
        Some(&1025),
        "the snapshot ends with the return that fired it"
    );
    assert_eq!(
        rets,
        (1000..=1025).collect::<Vec<i64>>(),
        "every earlier return is in it, in order"
    );
    let later: Vec<i64> = run.of_kind(SnapshotKind::Exit)[0]
        .events
        .iter()
        .filter(|e| e.flags & snapshot_common::EVENT_HAS_RET != 0)
        .map(|e| e.ret as i64)
        .collect();
    assert_eq!(
        later,
        (1026..1050).collect::<Vec<i64>>(),
        "recording went on in the other half"
    );
}

/// The sleeping function: `hrtimer_nanosleep`, or with `SNAPSHOT_TEST_BREAK` one the workload
/// never calls.
fn sleeper() -> &'static str {
    if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "vfs_fsync"
    } else {
        "hrtimer_nanosleep"
    }
}

#[test]
fn latency_trigger_with_post_window_and_kernel_stack() {
    let kernel = require_vm();
    let f = sleeper();
    // 250 ms: a 1 ms nap in a TCG guest on a busy 2-core host has been measured at over 100 ms.
    let trigger = format!("{f}.latency > 250ms");
    for (entry, ret) in [("kprobe", "kretprobe"), ("fentry", "fexit")] {
        let e = format!("{entry}:{f}");
        let r = format!("{ret}:{f}");
        // Seven naps; the fourth (600 ms) fires; two more events (the fifth nap's entry and
        // return) go into the snapshot after it.
        let run = common::record(&[
            "--probe",
            &e,
            "--probe",
            &r,
            "--trigger",
            &trigger,
            "--post",
            "2",
            "--dump-on-exit",
            "--",
            common::WORKLOAD,
            "naps",
            "1",
            "1",
            "1",
            "600",
            "1",
            "1",
            "1",
        ]);
        assert_eq!(
            run.code,
            Some(0),
            "{entry}/{ret} on {kernel}: {}",
            run.stderr
        );
        if entry == "fentry" && missing("trampolines") {
            fell_back_from_trampolines(&kernel, &run, &e);
            fell_back_from_trampolines(&kernel, &run, &r);
        }
        let frozen = run.of_kind(SnapshotKind::Condition);
        assert_eq!(
            frozen.len(),
            1,
            "{entry}/{ret} on {kernel}: one flip: {}",
            run.stderr
        );
        let s = frozen[0];
        let fired = s.header.fired.as_ref().expect("trigger context");
        assert!(
            (600_000_000..10_000_000_000).contains(&fired.value),
            "{entry}/{ret} on {kernel}: the value that fired is the 600 ms call's latency: {}",
            fired.value
        );
        let durations: Vec<u64> = s
            .events
            .iter()
            .filter(|e| e.flags & snapshot_common::EVENT_HAS_DURATION != 0)
            .map(|e| e.duration_ns)
            .collect();
        assert_eq!(
            durations.len(),
            5,
            "{entry}/{ret} on {kernel}: four returns up to the trigger, one after: {durations:?}"
        );
        assert!(durations[3] >= 600_000_000, "{durations:?}");
        assert_eq!(
            s.events.len(),
            10,
            "{entry}/{ret} on {kernel}: 8 events up to it, --post 2"
        );
        let later: usize = run
            .of_kind(SnapshotKind::Exit)
            .iter()
            .map(|s| s.events.len())
            .sum();
        assert_eq!(
            later, 4,
            "{entry}/{ret} on {kernel}: the last two naps in the next half"
        );
        let stack: Vec<String> = fired
            .kernel_stack
            .iter()
            .map(snapshot_userspace::snapshot::symbols::Frame::describe)
            .collect();
        if ret == "kretprobe" && series(&kernel) < (5, 13) {
            // Before 5.13 the unwinder stops at the kretprobe trampoline (it has no unwind
            // hints): the stack is that one frame, whatever the recorder does.
            assert!(
                stack.len() == 1 && stack[0].starts_with("kretprobe_trampoline"),
                "{entry}/{ret} on {kernel}: {stack:?}"
            );
            unsupported(
                &kernel,
                "kernel stack at a kretprobe trigger (the unwinder stops at kretprobe_trampoline before Linux 5.13)",
            );
            continue;
        }
        assert!(
            stack.iter().any(|f| f.contains("nanosleep")),
            "{entry}/{ret} on {kernel}: kernel stack at the trigger: {stack:?}"
        );
    }
}

#[test]
fn kprobe_with_an_offset_fires() {
    let kernel = require_vm();
    // Past the first instruction. x86_64: Debian's 6.12 and later start functions with
    // `endbr64` (4 bytes, IBT), 5.10 and 6.1 with the 5-byte ftrace call site. arm64: two NOPs,
    // the second the ftrace call site (kprobes are refused there).
    let offset = if std::env::consts::ARCH == "aarch64" {
        8
    } else if kernel.starts_with("6.1.") || kernel.starts_with("5.") {
        5
    } else {
        4
    };
    let spec = format!("kprobe:{}+{offset}", function());
    let run = record_workload(&[&spec], &["write", &N.to_string()]);
    assert_eq!(of(&run, function()).len() as u64, N, "kprobe+4 on {kernel}");
}

#[test]
fn fexit_sees_arguments_and_return_values() {
    let kernel = require_vm();
    let spec = format!("fexit:{}", function());
    if missing("trampolines") {
        // The kretprobe it falls back to sees the return value only.
        let run = record_workload(&[&spec], &["write", &N.to_string()]);
        fell_back_from_trampolines(&kernel, &run, &spec);
        let rets: Vec<Option<i64>> = of(&run, function()).iter().map(|e| e.ret).collect();
        let want: Vec<Option<i64>> = expected_counts()
            .into_iter()
            .map(|c| Some(c as i64))
            .collect();
        assert_eq!(rets, want, "fexit via kretprobe on {kernel}");
        return;
    }
    // As the kernel offers it, then with the arguments and return value read from the
    // context as on kernels without `bpf_get_func_arg` (before 5.17).
    for hide in ["", "func_args"] {
        let run = common::record_workload_with_env(
            &[&spec],
            &["write", &N.to_string()],
            &[("SNAPSHOT_HIDE_FEATURES", hide)],
        );
        let got: Vec<(u64, Option<i64>)> = of(&run, function())
            .iter()
            .map(|e| (e.args[2], e.ret))
            .collect();
        let want: Vec<(u64, Option<i64>)> = expected_counts()
            .into_iter()
            .map(|c| (c, Some(c as i64)))
            .collect();
        assert_eq!(got, want, "fexit on {kernel}, hiding `{hide}`");
    }
}

#[test]
fn a_kretprobe_glob_names_each_function() {
    let kernel = require_vm();
    let spec = format!("kretprobe:{}*", function());
    // With `bpf_get_func_ip` where the kernel has it, then as on kernels without it (before
    // 5.15): the function noted at each call's entry.
    for hide in ["", "func_ip"] {
        let run = common::record_workload_with_env(
            &[&spec],
            &["write", &N.to_string()],
            &[("SNAPSHOT_HIDE_FEATURES", hide)],
        );
        let rets: Vec<Option<i64>> = run
            .events
            .iter()
            .filter(|e| e.function.as_deref() == Some(function()))
            .map(|e| e.ret)
            .collect();
        let want: Vec<Option<i64>> = expected_counts()
            .into_iter()
            .map(|c| Some(c as i64))
            .collect();
        assert_eq!(
            rets, want,
            "on {kernel}, hiding `{hide}`: each return named"
        );
        let unnamed = run.events.iter().filter(|e| e.function.is_none()).count();
        assert_eq!(
            unnamed, 0,
            "on {kernel}, hiding `{hide}`: every event named"
        );
    }
}

#[test]
fn both_pair_kinds_carry_durations() {
    let kernel = require_vm();
    for (entry, ret) in [("kprobe", "kretprobe"), ("fentry", "fexit")] {
        let e = format!("{entry}:{}", function());
        let r = format!("{ret}:{}", function());
        let run = record_workload(&[&e, &r], &["write", &N.to_string()]);
        if entry == "fentry" && missing("trampolines") {
            fell_back_from_trampolines(&kernel, &run, &e);
            fell_back_from_trampolines(&kernel, &run, &r);
        }
        let durations: Vec<u64> = of(&run, function())
            .iter()
            .filter_map(|e| e.duration_ns)
            .collect();
        assert_eq!(
            durations.len() as u64,
            N,
            "{entry}+{ret} on {kernel}: a duration on every return"
        );
        assert!(
            durations.iter().all(|&d| d > 0 && d < 1_000_000_000),
            "{durations:?}"
        );
    }
}

#[test]
fn a_kprobe_glob_attaches_to_every_match_and_names_it() {
    let kernel = require_vm();
    let run = record_workload(
        &[&format!("kprobe:{}*", function())],
        &["write", &N.to_string()],
    );
    let named: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| e.function.as_deref())
        .collect();
    assert_eq!(
        named.iter().filter(|f| **f == function()).count() as u64,
        N,
        "on {kernel}: events name the matched function"
    );
    assert_eq!(
        named.len(),
        run.events.len(),
        "every glob event carries its function"
    );
}

#[test]
fn kprobes_and_fentry_fall_back_to_each_other() {
    let kernel = require_vm();
    for (spec, hidden, used) in [
        ("kprobe", "kprobe", "fentry"),
        ("fentry", "fentry", "kprobe"),
        ("kretprobe", "kprobe", "fexit"),
    ] {
        let probe = format!("{spec}:{}", function());
        let run = common::record_with_env(
            &[
                "--trigger",
                "manual",
                "--dump-on-exit",
                "--probe",
                &probe,
                "--",
                common::WORKLOAD,
                "write",
                &N.to_string(),
            ],
            &[("SNAPSHOT_HIDE_PROBE_KINDS", hidden)],
        );
        if used.starts_with('f') && missing("trampolines") {
            // Neither kind works: the error names both causes.
            assert_eq!(run.code, Some(1), "{}", run.stderr);
            for needle in [
                "needs kprobes".to_owned(),
                "hidden by SNAPSHOT_HIDE_PROBE_KINDS".to_owned(),
                format!("the fallback to {used} failed too"),
                "error 524".to_owned(),
            ] {
                assert!(
                    run.stderr.contains(&needle),
                    "{spec} on {kernel}: expected `{needle}` in: {}",
                    run.stderr
                );
            }
            unsupported(
                &kernel,
                &format!(
                    "{probe} with kprobes hidden (no BPF trampolines for the {used} fallback: refused naming both)"
                ),
            );
        } else {
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            assert!(
                run.stderr.contains(&format!("uses {used}:{}", function())),
                "notice for {spec} on {kernel}: {}",
                run.stderr
            );
            assert_eq!(
                of(&run, function()).len() as u64,
                N,
                "{spec} via {used} on {kernel}"
            );
        }
        let strict = common::record_with_env(
            &[
                "--strict",
                "--trigger",
                "manual",
                "--probe",
                &probe,
                "--",
                common::WORKLOAD,
                "write",
                "1",
            ],
            &[("SNAPSHOT_HIDE_PROBE_KINDS", hidden)],
        );
        assert_eq!(strict.code, Some(1), "--strict refuses: {}", strict.stderr);
    }
}

/// A function kprobes refuse (it is on the kernel's kprobe blacklist) but the function tracer
/// traces, so fentry/fexit can attach to it; with `SNAPSHOT_TEST_BREAK`, one kprobes accept.
fn kprobe_blacklisted() -> &'static str {
    if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "vfs_fsync"
    } else {
        "atomic_notifier_call_chain"
    }
}

#[test]
fn a_kind_that_fails_at_attach_falls_back_to_the_other() {
    let kernel = require_vm();
    let f = kprobe_blacklisted();
    for (spec, used) in [("kprobe", "fentry"), ("kretprobe", "fexit")] {
        let probe = format!("{spec}:{f}");
        let run = common::record(&[
            "--trigger",
            "manual",
            "--probe",
            &probe,
            "--",
            common::WORKLOAD,
            "write",
            "1",
        ]);
        let blacklisted = format!("`{f}` is on the kernel's kprobe blacklist");
        if missing("trampolines") {
            assert_eq!(run.code, Some(1), "{probe} on {kernel}: {}", run.stderr);
            for needle in [
                blacklisted.as_str(),
                &format!("the fallback to {used} failed too"),
                "error 524",
            ] {
                assert!(
                    run.stderr.contains(needle),
                    "{probe} on {kernel}: expected `{needle}` in: {}",
                    run.stderr
                );
            }
            unsupported(
                &kernel,
                &format!(
                    "{probe} (kprobe-blacklisted, and no BPF trampolines for the {used} fallback: refused naming both)"
                ),
            );
        } else {
            assert_eq!(run.code, Some(0), "{probe} on {kernel}: {}", run.stderr);
            for needle in [blacklisted, format!("uses {used}:{f} instead")] {
                assert!(
                    run.stderr.contains(&needle),
                    "{probe} on {kernel}: expected `{needle}` in: {}",
                    run.stderr
                );
            }
        }
    }
}

#[test]
fn kprobe_offsets_are_checked_for_the_architecture() {
    let kernel = require_vm();
    let f = function();
    // Where the kernel lists ftrace call sites (6.5+), the offset inside the one of `f`.
    let site = std::fs::read_to_string("/sys/kernel/tracing/available_filter_functions_addrs")
        .ok()
        .and_then(|sites| {
            let symbols = std::fs::read_to_string("/proc/kallsyms").ok()?;
            let addr = |text: &str, kind: bool| {
                text.lines().find_map(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    let name = if kind { w.get(2)? } else { w.get(1)? };
                    (*name == f).then(|| u64::from_str_radix(w[0], 16).ok())?
                })
            };
            Some(addr(&sites, false)? - addr(&symbols, true)?)
        });
    let cases: Vec<(u64, Vec<String>)> = if std::env::consts::ARCH == "aarch64" {
        vec![
            (
                6,
                vec!["+6 is not 4-byte aligned".into(), "use +4 or +8".into()],
            ),
            (4, vec!["ftrace patch site".into(), "+8".into()]),
        ]
    } else if let Some(site) = site {
        vec![(
            site + 2,
            vec![
                format!("inside the ftrace patch site of `{f}`"),
                format!("use +{site} (the call itself) or +{}", site + 5),
            ],
        )]
    } else {
        // 6.1: the call is at +0; the kernel refuses inside it.
        vec![(2, vec!["not at an instruction boundary".into()])]
    };
    for (offset, needles) in cases {
        let probe = format!("kprobe:{f}+{offset}");
        let run = common::record(&[
            "--trigger",
            "manual",
            "--probe",
            &probe,
            "--",
            common::WORKLOAD,
            "write",
            "1",
        ]);
        assert_eq!(run.code, Some(1), "{probe} on {kernel}: {}", run.stderr);
        for n in needles {
            assert!(
                run.stderr.contains(&n),
                "{probe} on {kernel}: expected `{n}` in: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn unknown_functions_and_bad_globs_are_clear_errors() {
    require_vm();
    // Break mode: the misspelt names are spelt right, so the recordings succeed and every
    // case must fail.
    let wirte = if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "vfs_write"
    } else {
        "vfs_wirte"
    };
    let (kprobe, fentry) = (format!("kprobe:{wirte}"), format!("fentry:{wirte}"));
    let cases: [(&str, &[&str]); 4] = [
        (
            &kprobe,
            &["no kernel function `vfs_wirte`", "did you mean `vfs_write`"],
        ),
        (
            &fentry,
            &["no kernel function `vfs_wirte`", "did you mean `vfs_write`"],
        ),
        (
            "kprobe:no_such_fn_*",
            &["the glob matches no kernel function"],
        ),
        ("kprobe:*", &["more than the limit of 64", "--max-glob"]),
    ];
    for (probe, needles) in cases {
        let run = common::record(&[
            "--trigger",
            "manual",
            "--probe",
            probe,
            "--",
            common::WORKLOAD,
            "write",
            "1",
        ]);
        assert_eq!(run.code, Some(1), "{probe}: {}", run.stderr);
        for n in needles {
            assert!(
                run.stderr.contains(n),
                "{probe}: expected `{n}` in: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn check_reports_what_this_kernel_offers() {
    let kernel = require_vm();
    // With SNAPSHOT_TEST_BREAK, a required feature is hidden: the check must then fail.
    let hide = if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "ringbuf"
    } else {
        ""
    };
    let out = std::process::Command::new(&*common::SNAPSHOT)
        .args(["check", "--json"])
        .env("SNAPSHOT_HIDE_FEATURES", hide)
        .output()
        .expect("run snapshot check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "snapshot check on {kernel}: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["kernel"], kernel.as_str());
    assert_eq!(report["can_record"], true);
    // Debian's kernels have every probe kind, each running as itself, but fentry/fexit
    // where BPF trampolines are missing: those run as kprobe/kretprobe.
    for p in report["probe_kinds"].as_array().expect("probe kinds") {
        let uses = match p["kind"].as_str() {
            Some("fentry") if missing("trampolines") => "kprobe".into(),
            Some("fexit") if missing("trampolines") => "kretprobe".into(),
            _ => p["kind"].clone(),
        };
        assert_eq!(p["uses"], uses, "on {kernel}: {p}");
    }
    // What is known of these kernels (the recorder finds it by probing, not by version).
    let at_least = |major, minor| series(&kernel) >= (major, minor);
    let present = |name: &str| {
        report["features"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == name))
            .map_or_else(
                || panic!("feature {name} missing from {report}"),
                |x| x["present"] == true,
            )
    };
    for (name, want) in [
        ("atomic_xchg", at_least(5, 12)),
        ("atomic_fetch_add", at_least(5, 12)),
        ("func_ip", at_least(5, 15)),
        // Probed with an fentry program: unknown, so absent, without trampolines.
        ("func_args", at_least(5, 17) && !missing("trampolines")),
        ("boot_clock", true),
        ("ringbuf", true),
        ("mmap_arrays", true),
        ("queue_maps", true),
        ("stack_ids", true),
        ("btf", true),
        ("trampolines", !missing("trampolines")),
        ("kprobes", true),
        ("tracefs", true),
    ] {
        assert_eq!(present(name), want, "{name} on {kernel}: {report}");
    }
    let writer = &report["recorder"][0]["uses"];
    assert_eq!(
        writer == "atomic exchange",
        at_least(5, 12),
        "writer exclusion on {kernel}: {writer}"
    );
    // The text form says the same, and `cargo xtask test` keeps the JSON for the README's table.
    let text = common::snapshot(&["check"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("the recorder works here"));
    if let Some(dir) = std::env::var_os("SNAPSHOT_VM_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("check.json"), &out.stdout).expect("write check.json");
        std::fs::write(dir.join("check.txt"), &text.stdout).expect("write check.txt");
    }
}

/// `do_sys_openat2`, where every `openat` goes, or with `SNAPSHOT_TEST_BREAK` one the
/// workload never calls.
fn opener() -> &'static str {
    if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "vfs_fsync"
    } else {
        "do_sys_openat2"
    }
}

/// The workload's `strings 16` cases as a probe of `do_sys_openat2` saw them: the strings of
/// the five calls that start with the empty path.
fn openat2_cases(spec: &str, name: &str) {
    let kernel = require_vm();
    let run = common::record(&[
        "--probe",
        spec,
        "--string-size",
        "16",
        "--trigger",
        "manual",
        "--dump-on-exit",
        "--",
        common::WORKLOAD,
        "strings",
        "16",
    ]);
    assert_eq!(run.code, Some(0), "{spec} on {kernel}: {}", run.stderr);
    let calls = of(&run, opener());
    let shown: Vec<(Option<&str>, bool, Option<&str>)> = calls
        .iter()
        .map(|e| {
            (
                e.strings.get(name).and_then(|s| s.as_deref()),
                e.truncated.iter().any(|t| t == name),
                e.unreadable.get(name).map(String::as_str),
            )
        })
        .collect();
    let start = shown
        .iter()
        .position(|s| s.0 == Some(""))
        .unwrap_or_else(|| panic!("{spec} on {kernel}: no empty path in {shown:?}"));
    assert_eq!(
        shown[start..start + 5],
        [
            (Some(""), false, None),
            (Some("/xxxxxxxxxxxxxxx"), false, None),
            (Some("/yyyyyyyyyyyyyyy"), true, None),
            (Some("/tmp/café-\\xff"), false, None),
            (None, false, Some("NULL")),
        ],
        "{spec} on {kernel}"
    );
    let dfd = calls[start].decoded.get("dfd").map(String::as_str);
    assert_eq!(dfd, Some("AT_FDCWD"), "BTF names the arguments on {kernel}");
}

#[test]
fn a_kprobe_on_do_sys_openat2_shows_the_path() {
    openat2_cases(&format!("kprobe:{}(arg1:str)", opener()), "filename");
}

#[test]
fn fentry_captures_char_pointer_arguments_by_itself() {
    openat2_cases(&format!("fentry:{}", opener()), "filename");
}

#[test]
fn fexit_captures_a_read_s_buffer_sized_by_its_return() {
    let kernel = require_vm();
    let f = if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "vfs_fsync"
    } else {
        "vfs_read"
    };
    let spec = format!("fexit:{f}(buf:buf(ret))");
    let run = record_workload(&[&spec], &["fileio", "1", "0"]);
    let reads = of(&run, f);
    if missing("trampolines") {
        // fexit falls back to kretprobe, which sees no arguments at the return: the reads are
        // recorded with their return values, their buffers are not.
        assert!(
            reads.iter().any(|e| e.ret == Some(128)),
            "the 128-byte read on {kernel}"
        );
        assert!(
            reads
                .iter()
                .all(|e| e.strings.get("buf").cloned().flatten().is_none()),
            "no buffer without fexit on {kernel}"
        );
        unsupported(
            &kernel,
            "a buffer argument at fexit (fexit falls back to kretprobe, which cannot read arguments at the return)",
        );
        return;
    }
    // `fileio` writes "round 0\n" 16 times (128 bytes) and reads it back: 64 kept, cut.
    let full = reads
        .iter()
        .find(|e| e.ret == Some(128))
        .unwrap_or_else(|| panic!("no 128-byte read on {kernel}"));
    assert_eq!(
        full.strings.get("buf").cloned().flatten(),
        Some("round 0\\n".repeat(8)),
        "the buffer's first --string-size bytes on {kernel}"
    );
    assert!(full.truncated.iter().any(|t| t == "buf"));
    let eof = reads
        .iter()
        .find(|e| e.ret == Some(0))
        .unwrap_or_else(|| panic!("no read at the end of the file on {kernel}"));
    assert_eq!(
        eof.strings.get("buf").cloned().flatten(),
        Some(String::new())
    );
}

/// A sequence over a kretprobe and a tracepoint: `do_sys_openat2` failing with ENOTDIR, then
/// the same thread's `exit_group` within 5 s, fires (its header names both steps); the same
/// failure on a second thread does not (the window, far longer than the runs, is not what
/// stops it). Checks the per-thread state passes each kernel's verifier and works there.
#[test]
fn a_sequence_fires_on_the_same_thread_only() {
    let kernel = require_vm();
    let f = opener();
    let ret = format!("kretprobe:{f}");
    // `do_sys_openat2` returns `long` before 7.x and `int` since: its -ENOTDIR is the same
    // 64-bit value on both (the recorder widens an `int` return from BTF).
    let trigger = format!("{f}.ret == -ENOTDIR then sys_enter_exit_group within 5s");
    let run = |thread: &str| {
        let run = common::record(&[
            "--probe",
            &ret,
            "--probe",
            "tracepoint:syscalls:sys_enter_exit_group",
            "--trigger",
            &trigger,
            "--dump-on-exit",
            "--",
            common::WORKLOAD,
            "open-notdir",
            thread,
            "0",
        ]);
        assert_eq!(run.code, Some(0), "{thread} on {kernel}: {}", run.stderr);
        run
    };
    let same = run("main");
    let fired = same.of_kind(SnapshotKind::Condition);
    assert_eq!(fired.len(), 1, "one sequence on {kernel}: {}", same.stderr);
    let h = fired[0].header.fired.as_ref().expect("trigger context");
    let q = h.sequence.as_ref().expect("the header names the sequence");
    assert_eq!(h.probe, "sys_enter_exit_group");
    assert!(q.first_ns < q.then_ns && q.then_ns == h.ts_ns, "{q:?}");
    let other = run("thread");
    assert!(
        other.of_kind(SnapshotKind::Condition).is_empty(),
        "another thread's A on {kernel}: {}",
        other.stderr
    );
    assert_eq!(
        of(&other, f).iter().filter(|e| e.ret == Some(-20)).count(),
        1,
        "the second thread's failure was recorded on {kernel}"
    );
}

/// A function returning `int` on every kernel here (5.10 to 7.2): `vfs_statx`; with
/// `SNAPSHOT_TEST_BREAK` one the workload never calls.
fn statter() -> &'static str {
    if std::env::var_os("SNAPSHOT_TEST_BREAK").is_some() {
        "vfs_fsync"
    } else {
        "vfs_statx"
    }
}

/// An `int` function's failure: the workload's stat fails with ENOTDIR, which the return
/// register holds in its low half only (`eax` on `x86_64`, `w0` on arm64). The recorder widens
/// it as BTF says: the event's `ret` is -20, the kernel's trigger `ret == -ENOTDIR` fires on
/// it, and `show` names the errno. At a kretprobe, and at an fexit with the return as the
/// kernel offers it and, hiding `bpf_get_func_ret`, read from the context as before 5.17
/// (without trampolines, fexit falls back to kretprobe).
#[test]
fn an_int_return_is_negative_with_its_errno_at_kretprobe_and_fexit() {
    let kernel = require_vm();
    let f = statter();
    let trigger = format!("{f}.ret == -ENOTDIR");
    let mut cases = vec![(format!("kretprobe:{f}"), ""), (format!("fexit:{f}"), "")];
    if !missing("trampolines") {
        cases.push((format!("fexit:{f}"), "func_args"));
    }
    for (spec, hide) in &cases {
        let what = format!("{spec} on {kernel}, hiding `{hide}`");
        let run = common::record_with_env(
            &[
                "--probe",
                spec,
                "--trigger",
                &trigger,
                "--dump-on-exit",
                "--",
                common::WORKLOAD,
                "stat-notdir",
            ],
            &[("SNAPSHOT_HIDE_FEATURES", hide)],
        );
        assert_eq!(run.code, Some(0), "{what}: {}", run.stderr);
        if spec.starts_with("fexit") && missing("trampolines") {
            fell_back_from_trampolines(&kernel, &run, spec);
        }
        let failed: Vec<_> = of(&run, f)
            .into_iter()
            .filter(|e| e.ret.is_some_and(|r| r as i32 == -20))
            .collect();
        assert_eq!(failed.len(), 1, "the failed stat on {what}: {}", run.stderr);
        assert_eq!(failed[0].ret, Some(-20), "sign-extended on {what}");
        assert_eq!(
            failed[0].decoded.get("ret").map(String::as_str),
            Some("ENOTDIR"),
            "{what}"
        );
        let fired = run.of_kind(SnapshotKind::Condition);
        assert_eq!(
            fired.len(),
            1,
            "the kernel's trigger on {what}: {}",
            run.stderr
        );
        let h = fired[0].header.fired.as_ref().expect("trigger context");
        assert_eq!((h.probe.as_str(), h.value), (f, -20), "{what}");
        let path = common::snapshot_files(&run.out.0).remove(0);
        let out = common::snapshot(&["show", &path.to_string_lossy()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines()
                .any(|l| l.contains(&format!(" {f}: ")) && l.ends_with(" ret=-20 ENOTDIR")),
            "show on {what}: {text}"
        );
    }
}
