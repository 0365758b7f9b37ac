//! A recorder run as a service (root): retention (`--keep`, `--max-disk`, a full disk),
//! `--on-snapshot` hooks, `--config FILE`, and SIGHUP reopening the output directory. Each
//! drives a recorder kept running (`--keep-going`) with `snapshot trigger`, which answers once
//! the snapshot is taken: no sleeps decide the results.

mod common;

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::{Child, Command, Output},
    time::Duration,
};

use common::{
    OutDir, SNAPSHOT, Tmpfs, WORKLOAD, require_root, send_signal, snapshot_names, trigger_now,
    workload_probe,
};

/// A recorder kept running (`--keep-going`): stopped with SIGINT by [`stop`], killed if a
/// test fails first (nothing stays loaded).
struct Recorder(Option<Child>);

impl Recorder {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts a recorder into `out` with manual triggers and `options`, kept running after its
/// short workload, until it is sent SIGINT.
fn recorder(out: &OutDir, options: &[&str]) -> Recorder {
    let probe = workload_probe("uprobe");
    let mut args = vec!["--probe", &probe, "--trigger", "manual", "--keep-going"];
    args.extend_from_slice(options);
    args.extend(["--", WORKLOAD, "calls", "3"]);
    Recorder(Some(common::spawn_recorder(out, &args)))
}

/// Stops the recorder with SIGINT and returns its output (it must exit within 60 s).
fn stop(mut r: Recorder) -> Output {
    let child = r.0.take().expect("a running recorder");
    send_signal(child.id(), libc::SIGINT);
    wait_within(child, 60)
}

fn wait_within(mut child: Child, secs: u64) -> Output {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if child.try_wait().ok().flatten().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the recorder did not exit within {secs} s");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn seqs(names: &[String]) -> Vec<u64> {
    let mut s: Vec<u64> = names
        .iter()
        .filter_map(|n| snapshot_userspace::snapshot::dir::seq_of(n))
        .collect();
    s.sort_unstable();
    s
}

/// Writes a file `name` of `bytes` into `dir` (mode 0600), as an earlier recording left it.
fn plant(dir: &Path, name: &str, bytes: usize) {
    std::fs::write(dir.join(name), vec![7u8; bytes]).unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn keep_deletes_the_oldest_of_the_directory_and_nothing_else() {
    require_root();
    let out = OutDir::new();
    std::fs::create_dir_all(&out.0).unwrap();
    std::fs::set_permissions(&out.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    // An earlier recording's snapshots (deleted first), and what is not ours: a link named
    // like a snapshot (to a file outside), a directory named like one, another file.
    plant(&out.0, "snapshot-0001-condition.snap", 100);
    plant(&out.0, "snapshot-0002-manual.snap", 100);
    let outside = OutDir::new();
    std::fs::create_dir_all(&outside.0).unwrap();
    plant(&outside.0, "precious", 10);
    std::os::unix::fs::symlink(
        outside.0.join("precious"),
        out.0.join("snapshot-0000-manual.snap"),
    )
    .unwrap();
    std::fs::create_dir(out.0.join("snapshot-0003-exit.snap")).unwrap();
    plant(&out.0, "notes.txt", 10);

    let child = recorder(&out, &["--keep", "3", "--json"]);
    for _ in 0..6 {
        trigger_now(&out.0);
        let names: Vec<_> = snapshot_names(&out.0)
            .into_iter()
            .filter(|n| n != "snapshot-0000-manual.snap" && n != "snapshot-0003-exit.snap")
            .collect();
        assert!(names.len() <= 3, "more than --keep 3 files: {names:?}");
    }
    let o = stop(child);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let names = snapshot_names(&out.0);
    // Numbering went on after 3; the newest three of this recording remain.
    let ours: Vec<_> = names
        .iter()
        .filter(|n| !["snapshot-0000-manual.snap", "snapshot-0003-exit.snap"].contains(&n.as_str()))
        .cloned()
        .collect();
    assert_eq!(seqs(&ours), [7, 8, 9], "{names:?}\n{err}");
    assert!(
        out.0
            .join("snapshot-0000-manual.snap")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );
    assert!(out.0.join("snapshot-0003-exit.snap").is_dir());
    assert!(out.0.join("notes.txt").exists());
    assert_eq!(std::fs::read(outside.0.join("precious")).unwrap().len(), 10);
    // 2 planted + 6 taken - 3 kept, each logged, in the summary and in the JSON lines.
    assert_eq!(err.matches("--keep 3").count(), 5, "{err}");
    assert!(err.contains("deleted 5 old snapshot(s)"), "{err}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let deleted: usize = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["deleted"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(deleted, 5, "{stdout}");
}

#[test]
fn max_disk_holds_after_every_snapshot() {
    require_root();
    let out = OutDir::new();
    // One snapshot first, to learn the size of one.
    let child = recorder(&out, &[]);
    trigger_now(&out.0);
    let o = stop(child);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let size = std::fs::metadata(out.0.join("snapshot-0001-manual.snap"))
        .unwrap()
        .len();
    let limit = size * 5 / 2;
    let child = recorder(&out, &["--max-disk", &limit.to_string()]);
    for _ in 0..5 {
        trigger_now(&out.0);
        let total: u64 = snapshot_names(&out.0)
            .iter()
            .map(|n| std::fs::metadata(out.0.join(n)).unwrap().len())
            .sum();
        assert!(total <= limit, "{total} bytes over --max-disk {limit}");
    }
    let o = stop(child);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let left = seqs(&snapshot_names(&out.0));
    assert_eq!(left.last(), Some(&6), "the newest is kept: {err}");
    assert!(left.len() >= 2, "{left:?}");
    // 1 + 5 files, those left kept: every other one deleted, each logged.
    assert_eq!(
        err.matches(&format!("--max-disk {limit}")).count(),
        6 - left.len(),
        "{err}"
    );
}

#[test]
fn a_full_disk_deletes_the_oldest_snapshots_before_the_write_is_kept_in_memory() {
    require_root();
    let fs = Tmpfs::new("512k");
    let out = fs.0.0.join("snaps");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    for n in 1..=3 {
        plant(&out, &format!("snapshot-{n:04}-condition.snap"), 96 << 10);
    }
    // The rest of the disk but 8 KiB (the pid file's page): not ours, never deleted.
    {
        use std::io::Write as _;
        std::fs::write(fs.0.0.join("room"), vec![0u8; 8 << 10]).unwrap();
        let mut f = std::fs::File::create(fs.0.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        std::fs::remove_file(fs.0.0.join("room")).unwrap();
    }
    let filler = std::fs::metadata(fs.0.0.join("filler")).unwrap().len();
    let out_dir = OutDir(out.clone());
    let child = recorder(&out_dir, &["--keep", "10"]);
    for _ in 0..4 {
        trigger_now(&out);
    }
    let o = stop(child);
    std::mem::forget(out_dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "nothing lost: {err}");
    assert!(err.contains("the disk refused a snapshot"), "{err}");
    assert!(!err.contains("lost"), "{err}");
    assert_eq!(
        std::fs::metadata(fs.0.0.join("filler")).unwrap().len(),
        filler,
        "not ours: untouched"
    );
    let names = snapshot_names(&out);
    let s = seqs(&names);
    assert!(
        s.ends_with(&[4, 5, 6, 7]),
        "every snapshot taken is on disk: {names:?}\n{err}"
    );
    assert!(!s.contains(&1), "the oldest went first: {names:?}");
}

/// The lines of `file` (none when missing).
fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn on_snapshot_runs_once_per_file_and_logs_failures() {
    require_root();
    let out = OutDir::new();
    let log = OutDir::new();
    std::fs::create_dir_all(&log.0).unwrap();
    let record = log.0.join("hooks.log");
    let hook = format!(
        "f() {{ echo \"$1 $SNAPSHOT_FILE\" >> '{}'; exit 3; }}; f",
        record.display()
    );
    let child = recorder(&out, &["--on-snapshot", &hook, "--dump-on-exit"]);
    for _ in 0..3 {
        trigger_now(&out.0);
    }
    let o = stop(child);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let files = common::snapshot_files(&out.0);
    assert_eq!(files.len(), 4, "3 manual + exit: {err}");
    let mut seen = lines(&record);
    seen.sort();
    let mut expected: Vec<String> = files
        .iter()
        .map(|f| format!("{} {}", f.display(), f.display()))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "one run per file, with its path: {err}");
    for f in &files {
        assert!(
            err.contains(&format!("failed for {}: exit status: 3", f.display())),
            "{err}"
        );
    }
}

#[test]
fn a_hook_that_hangs_does_not_stall_recording() {
    require_root();
    let out = OutDir::new();
    // The hook lets go of the recorder's stderr (a pipe here, read to its end below).
    let child = recorder(
        &out,
        &["--on-snapshot", "exec >/dev/null 2>&1; sleep 600; :"],
    );
    // More snapshots than hooks may run at once: each is still taken and answered.
    for _ in 0..6 {
        trigger_now(&out.0);
    }
    let o = stop(child);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(common::snapshot_files(&out.0).len(), 6, "{err}");
    let left: Vec<i32> = err
        .lines()
        .filter(|l| l.contains("still runs after"))
        .filter_map(|l| {
            let pid = l.split("(pid ").nth(1)?.split(')').next()?;
            pid.parse().ok()
        })
        .collect();
    for pid in &left {
        // SAFETY: kill has no memory-safety preconditions; each hook leads its own group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    assert_eq!(left.len(), 4, "at most 4 run at once: {err}");
    assert_eq!(err.matches("no hook ran for").count(), 2, "{err}");
}

#[test]
fn a_recorder_from_a_config_file_answers_snapshot_trigger() {
    require_root();
    let out = OutDir::new();
    let conf = OutDir::new();
    std::fs::create_dir_all(&conf.0).unwrap();
    let file = conf.0.join("snapshot.toml");
    let probe = workload_probe("uprobe");
    std::fs::write(
        &file,
        format!(
            "out = {:?}\nprobe = [{probe:?}]\ntrigger = \"manual\"\nkeep-going = true\nkeep = 2\ncommand = [{WORKLOAD:?}, \"calls\", \"3\"]\n",
            out.arg()
        ),
    )
    .unwrap();
    let child = Recorder(Some(
        Command::new(&*SNAPSHOT)
            .args(["record", "--config"])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    common::wait_until_recording(&out);
    for _ in 0..3 {
        trigger_now(&out.0);
    }
    let o = stop(child);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        seqs(&snapshot_names(&out.0)),
        [2, 3],
        "keep = 2 applied: {err}"
    );

    // An unknown key: refused before anything is recorded, naming it and the valid ones.
    std::fs::write(&file, "out = \"/tmp/x\"\nkep = 3\n").unwrap();
    let o = common::snapshot(&["record", "--config", &file.to_string_lossy()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown key `kep`") && err.contains("max-disk"),
        "{err}"
    );
}

/// Waits (up to 20 s) until the recorder's socket is in `dir`.
fn wait_for_socket(dir: &Path) {
    for _ in 0..2000 {
        if dir.join(".recorder.sock").exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no socket in {} after 20 s", dir.display());
}

/// Asserts that a second recorder into `out` is refused: the directory is locked.
fn assert_locked(out: &OutDir) {
    let busy = common::snapshot(&[
        "record",
        "--out",
        &out.arg(),
        "--probe",
        "rawtp:sys_enter",
        "--trigger",
        "manual",
    ]);
    assert!(
        stderr(&busy).contains("another recorder"),
        "{} is not locked: {}",
        out.0.display(),
        stderr(&busy)
    );
}

#[test]
fn sighup_reopens_a_removed_or_replaced_directory() {
    require_root();
    let out = OutDir::new();
    let child = recorder(&out, &[]);
    trigger_now(&out.0);

    // Removed: made again, private, and `snapshot trigger` reaches the recorder there.
    std::fs::remove_dir_all(&out.0).unwrap();
    send_signal(child.id(), libc::SIGHUP);
    wait_for_socket(&out.0);
    assert_eq!(std::fs::metadata(&out.0).unwrap().mode() & 0o777, 0o700);
    trigger_now(&out.0);
    assert_eq!(seqs(&snapshot_names(&out.0)), [2], "numbering goes on");

    // Replaced (moved away, a new one made): the new one is used and locked.
    let old = OutDir(out.0.with_extension("old"));
    std::fs::rename(&out.0, &old.0).unwrap();
    std::fs::create_dir(&out.0).unwrap();
    std::fs::set_permissions(&out.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    send_signal(child.id(), libc::SIGHUP);
    wait_for_socket(&out.0);
    trigger_now(&out.0);
    assert_eq!(seqs(&snapshot_names(&out.0)), [3]);
    assert!(
        !old.0.join(".recorder.sock").exists(),
        "the old directory's socket is gone"
    );
    assert_locked(&out);

    // The same directory, its lock file and socket removed: checked, locked again.
    std::fs::remove_file(out.0.join(".recorder.lock")).unwrap();
    std::fs::remove_file(out.0.join(".recorder.sock")).unwrap();
    send_signal(child.id(), libc::SIGHUP);
    wait_for_socket(&out.0);
    trigger_now(&out.0);
    assert_locked(&out);
    let o = stop(child);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("was gone: created it again"), "{err}");
    assert!(err.contains("is another directory now"), "{err}");
    assert!(
        err.contains("is unchanged") && err.contains("locking the directory again"),
        "{err}"
    );
    assert_eq!(seqs(&snapshot_names(&out.0)), [3, 4]);
}
