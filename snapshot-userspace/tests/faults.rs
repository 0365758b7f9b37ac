//! Faults while recording (root): the output directory removed, signals during writes, a
//! recorder killed while writing, links and special files planted where the recorder writes.
//! Each asserts the message, the exit status, that nothing captured is lost, and that the
//! recorder's own BPF programs, maps and links are gone once it exits. (A full disk, two
//! recorders and an early SIGUSR1 are in `findings.rs`, with the findings they came from.)

mod common;

use std::{
    collections::BTreeSet,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::Path,
    process::Child,
    time::Duration,
};

use common::{BpfId, OutDir, WORKLOAD, collect, require_root, workload_probe};
use snapshot_userspace::snapshot::SnapshotKind;

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// The BPF objects the recorder `child` holds now (it is recording).
fn own_ids(child: &Child) -> BTreeSet<BpfId> {
    let ids = common::held_bpf_ids(Some(child.id()));
    assert!(
        ids.iter().any(|(k, _)| *k == "prog") && ids.iter().any(|(k, _)| *k == "map"),
        "the recorder holds its programs and maps: {ids:?}"
    );
    ids
}

/// Temporary files left in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| Path::new(n).extension().is_some_and(|e| e == "tmp"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn out_directory_removed_while_recording_is_made_again() {
    require_root();
    let out = OutDir::new();
    let probe = workload_probe("uprobe");
    let child = common::spawn_recorder(
        &out,
        &[
            "--probe",
            &probe,
            "--trigger",
            "manual",
            "--dump-on-exit",
            "--",
            WORKLOAD,
            "calls-sleep",
            "7",
            "1500",
        ],
    );
    let ids = own_ids(&child);
    std::thread::sleep(Duration::from_millis(200));
    std::fs::remove_dir_all(&out.0).unwrap();
    kill(child.id(), libc::SIGUSR1);
    let run = collect(&child.wait_with_output().unwrap(), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("was removed while recording: creating it again"),
        "{}",
        run.stderr
    );
    let events: usize = run.snapshots.iter().map(|s| s.events.len()).sum();
    assert_eq!(
        events, 7,
        "every call is in a snapshot in the new directory: {}",
        run.stderr
    );
    assert!(
        run.of_kind(SnapshotKind::Manual).len() == 1,
        "{}",
        run.stderr
    );
    common::assert_gone(&ids, "out directory removed");
}

#[test]
fn signals_during_writes_lose_and_tear_nothing() {
    require_root();
    let out = OutDir::new();
    let probe = workload_probe("uprobe");
    let child = common::spawn_recorder(
        &out,
        &[
            "--probe",
            &probe,
            "--trigger",
            "snapshot_workload_fn.arg1 == 1",
            "--buffer-size",
            "256ev",
            "--dump-on-exit",
            "--",
            WORKLOAD,
            "seq-threads",
            "4000000",
            "200",
        ],
    );
    let ids = own_ids(&child);
    // Snapshot requests and a stop while snapshots are being written all the time.
    for _ in 0..50 {
        kill(child.id(), libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(4));
    }
    kill(child.id(), libc::SIGINT);
    let run = collect(&child.wait_with_output().unwrap(), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("SIGINT received"), "{}", run.stderr);
    assert!(run.snapshots.len() > 10, "{}", run.stderr);
    assert_eq!(run.total(|a| a.torn), 0);
    let mut seen = BTreeSet::new();
    for e in run.snapshots.iter().flat_map(|s| &s.events) {
        assert!(
            seen.insert(e.args[0]),
            "sequence number {} twice",
            e.args[0]
        );
    }
    let recorded = common::summary_number(&run.stderr, "recorded");
    assert_eq!(
        recorded,
        seen.len() as u64,
        "every recorded event is in a file"
    );
    assert_eq!(common::summary_number(&run.stderr, "discarded at exit"), 0);
    assert!(
        temporaries(&run.out.0).is_empty(),
        "{:?}",
        temporaries(&run.out.0)
    );
    common::assert_gone(&ids, "signals during writes");
}

#[test]
fn a_recorder_killed_while_writing_leaves_nothing_the_next_one_keeps() {
    require_root();
    let out = OutDir::new();
    let probe = workload_probe("uprobe");
    let args = [
        "--probe",
        &probe,
        "--trigger",
        "snapshot_workload_fn.arg1 == 1",
        "--buffer-size",
        "4096ev",
        "--",
        WORKLOAD,
        "seq-threads",
        "4000000",
        "300",
    ];
    let child = common::spawn_recorder(&out, &args);
    let ids = own_ids(&child);
    std::thread::sleep(Duration::from_millis(300));
    kill(child.id(), libc::SIGKILL);
    let _ = child.wait_with_output();
    common::assert_gone(&ids, "SIGKILL");
    // Whatever it left (a temporary file, its pid file and socket) goes with the next start;
    // what it wrote is read back whole, and numbering continues after it.
    let written = common::read_snapshots(&out.0);
    let last = written.last().map_or(0, |s| s.header.seq);
    std::fs::write(out.0.join(".snapshot-9999-condition.snap.tmp"), b"half").unwrap();
    let child = common::spawn_recorder(
        &out,
        &[
            "--probe",
            &probe,
            "--trigger",
            "manual",
            "--dump-on-exit",
            "--",
            WORKLOAD,
            "calls-sleep",
            "2",
            "300",
        ],
    );
    let run = collect(&child.wait_with_output().unwrap(), out);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        temporaries(&run.out.0).is_empty(),
        "{:?}",
        temporaries(&run.out.0)
    );
    let exit = run.of_kind(SnapshotKind::Exit);
    assert_eq!(exit.len(), 1);
    assert_eq!(
        exit[0].header.seq,
        last + 1,
        "numbering goes on after every file"
    );
    assert!(
        !run.out.0.join(".recorder.sock").exists() && !run.out.0.join(".recorder.pid").exists()
    );
}

#[test]
fn links_and_special_files_planted_in_out_are_never_followed() {
    require_root();
    let victims = OutDir::new();
    std::fs::create_dir_all(&victims.0).unwrap();
    let victim = victims.0.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let out = OutDir::new();
    std::fs::create_dir_all(&out.0).unwrap();
    std::fs::set_permissions(&out.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let plant = |name: &str| std::os::unix::fs::symlink(&victim, out.0.join(name)).unwrap();
    for name in [
        ".recorder.pid",
        ".recorder.sock",
        ".snapshot-0001-condition.snap.tmp",
        "snapshot-0005-condition.snap",
    ] {
        plant(name);
    }
    common::mkfifo(&out.0.join("snapshot-0003-manual.snap"));
    let probe = workload_probe("uprobe");
    let child = common::spawn_recorder(
        &out,
        &[
            "--probe",
            &probe,
            "--trigger",
            "snapshot_workload_fn.arg0 == 2",
            "--",
            WORKLOAD,
            "calls-sleep",
            "3",
            "1500",
        ],
    );
    let ids = own_ids(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious",
        "nothing written through a link"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new = out.0.join("snapshot-0006-condition.snap");
    assert!(
        new.exists(),
        "numbering goes on after the highest name, whatever it is"
    );
    assert!(
        out.0
            .join("snapshot-0005-condition.snap")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        out.0
            .join("snapshot-0003-manual.snap")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(temporaries(&out.0).is_empty(), "{:?}", temporaries(&out.0));
    common::assert_gone(&ids, "planted links");
    // `list` reads the regular files and names the others on stderr, without hanging.
    let o = common::snapshot(&["list", &out.arg()]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("not a regular file (a FIFO)"), "{stderr}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("snapshot-0006-condition.snap"));
    // A FIFO or a link where the lock goes: refused, with what to do.
    std::fs::remove_file(out.0.join(".recorder.lock")).unwrap();
    common::mkfifo(&out.0.join(".recorder.lock"));
    let o = std::process::Command::new(&*common::SNAPSHOT)
        .args([
            "record",
            "--out",
            &out.arg(),
            "--probe",
            &probe,
            "--trigger",
            "manual",
            "--",
            WORKLOAD,
            "calls",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("is not a lock file of this user (") && stderr.contains("remove it"),
        "{stderr}"
    );
}
