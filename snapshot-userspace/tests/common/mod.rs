//! Helpers shared by the integration tests: run the real `snapshot` binary into a fresh output
//! directory and read back the snapshot files it wrote.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use snapshot_userspace::{
    export::{decode, event::EventView},
    snapshot::{self, Snapshot, SnapshotKind},
};

/// The controller binary under test.
pub const SNAPSHOT: &str = env!("CARGO_BIN_EXE_snapshot");
/// The workload binary.
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_snapshot-workload");

/// A temporary output directory, removed on drop.
pub struct OutDir(pub PathBuf);

impl OutDir {
    /// A fresh, empty directory.
    pub fn new() -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("snapshot-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    /// As a string argument.
    pub fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Result of one `snapshot record` run.
pub struct Run {
    /// Snapshots written, in sequence order.
    pub snapshots: Vec<Snapshot>,
    /// Every event of every snapshot, decoded, in snapshot then time order.
    pub events: Vec<EventView>,
    /// Standard error.
    pub stderr: String,
    /// Standard output.
    pub stdout: String,
    /// Exit code.
    pub code: Option<i32>,
    /// The output directory.
    pub out: OutDir,
}

impl Run {
    /// Snapshots of one kind.
    pub fn of_kind(&self, kind: SnapshotKind) -> Vec<&Snapshot> {
        self.snapshots
            .iter()
            .filter(|s| s.header.kind == kind)
            .collect()
    }

    /// Sum of a per-CPU counter over all snapshots.
    pub fn total(&self, f: fn(&snapshot_userspace::session::buffer::CpuAccount) -> u64) -> u64 {
        self.snapshots
            .iter()
            .flat_map(|s| &s.header.cpus)
            .map(f)
            .sum()
    }
}

/// Reads every snapshot file of `dir`, in sequence order.
pub fn read_snapshots(dir: &Path) -> Vec<Snapshot> {
    snapshot_files(dir)
        .iter()
        .map(|f| snapshot::read(f).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Runs `snapshot ARGS`.
pub fn snapshot(args: &[&str]) -> Output {
    Command::new(SNAPSHOT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SNAPSHOT}: {e}"))
}

/// Runs `snapshot record --out DIR ARGS…` and reads the snapshots it wrote.
pub fn record(args: &[&str]) -> Run {
    let out = OutDir::new();
    let dir = out.arg();
    let mut full = vec!["record", "--out", &dir];
    full.extend_from_slice(args);
    let output = snapshot(&full);
    collect(&output, out)
}

/// Builds a [`Run`] from a finished recorder's output.
pub fn collect(output: &Output, out: OutDir) -> Run {
    let snapshots = read_snapshots(&out.0);
    let events = snapshots.iter().flat_map(decode::views).collect();
    Run {
        snapshots,
        events,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        code: output.status.code(),
        out,
    }
}

/// Records `WORKLOAD ARGS…` through a uprobe on `snapshot_workload_fn` with `trigger` and the
/// `options`; asserts the run succeeded.
pub fn record_uprobe(trigger: &str, options: &[&str], workload: &[&str]) -> Run {
    let probe = workload_probe("uprobe");
    let mut args = vec!["--probe", probe.as_str(), "--trigger", trigger];
    args.extend_from_slice(options);
    args.push("--");
    args.push(WORKLOAD);
    args.extend_from_slice(workload);
    let run = record(&args);
    assert_eq!(run.code, Some(0), "snapshot record failed: {}", run.stderr);
    run
}

/// A burst of triggers on one thread: the workload's calls 5..=10 all satisfy the trigger; the
/// first flips, the next come before userspace can re-arm (a uprobe hit takes microseconds,
/// draining and fsync take milliseconds). Asserts the run succeeded.
pub fn burst_on_one_thread(options: &[&str]) -> Run {
    record_uprobe("snapshot_workload_fn.arg0 >= 5", options, &["calls", "10"])
}

/// A burst of triggers on two threads: 200,000 calls in all, every 50th satisfies the trigger,
/// into 65,536-event buffers. Asserts the run succeeded.
pub fn burst_on_two_threads(options: &[&str]) -> Run {
    let mut all = vec!["--buffer-size", "65536ev"];
    all.extend_from_slice(options);
    record_uprobe(
        "snapshot_workload_fn.arg1 == 1",
        &all,
        &["seq-threads", "200000", "50"],
    )
}

/// Records `WORKLOAD ARGS…` with `probes`, a manual trigger and `--dump-on-exit`: every event
/// ends up in the exit snapshot. Asserts the run succeeded without torn records.
pub fn record_workload(probes: &[&str], workload: &[&str]) -> Run {
    let mut args = vec!["--trigger", "manual", "--dump-on-exit"];
    for p in probes {
        args.extend(["--probe", p]);
    }
    args.push("--");
    args.push(WORKLOAD);
    args.extend(workload);
    let run = record(&args);
    assert_eq!(run.code, Some(0), "snapshot record failed: {}", run.stderr);
    assert!(
        run.stderr.contains("torn 0"),
        "torn records reported: {}",
        run.stderr
    );
    run
}

/// `uprobe:WORKLOAD:snapshot_workload_fn` (or another kind), optionally named.
pub fn workload_probe(kind: &str) -> String {
    format!("{kind}:{WORKLOAD}:snapshot_workload_fn")
}

/// Events of `probe`.
pub fn of<'a>(run: &'a Run, probe: &str) -> Vec<&'a EventView> {
    run.events.iter().filter(|e| e.probe == probe).collect()
}

/// Panics unless running as root.
pub fn require_root() {
    assert!(
        snapshot_userspace::sys::is_root(),
        "integration tests load eBPF programs and need root: run `sudo -E cargo xtask test`"
    );
}

/// Waits (up to 3 s) until the recorder writing into `out` has attached (its pid file exists).
pub fn wait_until_recording(out: &OutDir) {
    let pid_file = out.0.join(".recorder.pid");
    for _ in 0..300 {
        if pid_file.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!(
        "the recorder did not start within 3 s (no {})",
        pid_file.display()
    );
}

/// Starts `snapshot record --out DIR ARGS…` in the background (output captured) and waits
/// until it records; finish it with a signal and [`collect`].
pub fn spawn_recorder(out: &OutDir, args: &[&str]) -> std::process::Child {
    let child = Command::new(SNAPSHOT)
        .args(["record", "--out", &out.arg()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SNAPSHOT}: {e}"));
    wait_until_recording(out);
    child
}

/// Runs `snapshot record --out DIR ARGS…` with extra environment variables.
pub fn record_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = OutDir::new();
    let output = Command::new(SNAPSHOT)
        .args(["record", "--out", &out.arg()])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SNAPSHOT}: {e}"));
    collect(&output, out)
}

/// The snapshot files of `dir`, sorted as [`read_snapshots`] reads them (none when `dir`
/// does not exist).
pub fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    snapshot::list_files(dir).unwrap_or_default()
}

/// The interpreter of the virtualenv of `cargo xtask setup` (with Perfetto's trace schema),
/// which `cargo xtask test` passes as `SNAPSHOT_PYTHON`; panics when it is not set.
pub fn snapshot_python() -> std::ffi::OsString {
    let Some(python) = std::env::var_os("SNAPSHOT_PYTHON") else {
        panic!(
            "\x1b[31;1mSNAPSHOT_PYTHON is not set: this test decodes the trace with Perfetto's \
             schema from the virtualenv of `cargo xtask setup`; run `cargo xtask setup`, then \
             the tests with `cargo xtask test --layer host` (which sets it)\x1b[0m"
        );
    };
    python
}

/// Decodes the Perfetto trace `trace` with Perfetto's own schema (`perfetto_trace_pb2`, run by
/// [`snapshot_python`]) and returns the summary that `tests/perfetto_check.py` prints.
pub fn perfetto_summary(trace: &Path) -> serde_json::Value {
    let python = snapshot_python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/perfetto_check.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(trace)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "\x1b[31;1mcannot run SNAPSHOT_PYTHON={}: {e}: run `cargo xtask setup`\x1b[0m",
                python.to_string_lossy()
            )
        });
    assert!(
        out.status.success(),
        "perfetto_check.py could not decode {}: {}",
        trace.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "perfetto_check.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
