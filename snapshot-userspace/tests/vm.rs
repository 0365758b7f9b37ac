//! VM integration tests: kprobe, kretprobe and fentry on Debian's kernels, run inside QEMU by
//! `cargo xtask test` (this host's kernel has no kprobes and refuses fentry).
//!
//! `SNAPSHOT_TEST_BREAK=1` makes every test probe a function the workload never calls: each
//! must then fail, which shows the assertions can fail.

mod common;

use common::{of, record_workload, require_root};
use snapshot_userspace::snapfile::SnapshotKind;

fn require_vm() -> String {
    require_root();
    std::env::var("SNAPSHOT_VM_KERNEL").unwrap_or_else(|_| {
        panic!("VM tests run inside QEMU: use `cargo xtask test --layer vm` (or `cargo xtask vm -- <this test binary>`)")
    })
}

/// The probed function: `vfs_write`, or with SNAPSHOT_TEST_BREAK one the workload never calls.
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
