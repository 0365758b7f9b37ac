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

/// The controller binary under test: this build's, or `SNAPSHOT_TEST_BIN` (to run the suite
/// against another build, e.g. the code before a fix, to see a test fail).
pub static SNAPSHOT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("SNAPSHOT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_snapshot").into())
});
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
    Command::new(&*SNAPSHOT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", *SNAPSHOT))
}

/// Runs `snapshot record --out DIR ARGS…` and reads the snapshots it wrote.
pub fn record(args: &[&str]) -> Run {
    record_into(OutDir::new(), args)
}

/// Starts `WORKLOAD ARGS…` held until a recorder writing into `out` records (its pid file
/// exists): its calls then start once the probes are attached, however long that takes.
pub fn held_workload(out: &OutDir, args: &[&str]) -> std::process::Child {
    Command::new(WORKLOAD)
        .args(args)
        .env("SNAPSHOT_WORKLOAD_WAIT_FOR", out.0.join(".recorder.pid"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {WORKLOAD}: {e}"))
}

/// [`record`] into `out`.
pub fn record_into(out: OutDir, args: &[&str]) -> Run {
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
    record_uprobe(BURST_TRIGGER, options, &BURST_WORKLOAD)
}

/// The trigger of [`burst_on_one_thread`].
pub const BURST_TRIGGER: &str = "snapshot_workload_fn.arg0 >= 5";
/// The workload arguments of [`burst_on_one_thread`].
pub const BURST_WORKLOAD: [&str; 2] = ["calls", "10"];

/// The `snapshot record` arguments of [`burst_on_one_thread`] with `options` (for runs that
/// need their own environment).
pub fn burst_on_one_thread_args(probe: &str, options: &[&str]) -> Vec<String> {
    let mut args = vec!["--probe", probe, "--trigger", BURST_TRIGGER];
    args.extend_from_slice(options);
    args.extend(["--", WORKLOAD]);
    args.extend(BURST_WORKLOAD);
    args.into_iter().map(str::to_owned).collect()
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
    record_workload_with_env(probes, workload, &[])
}

/// [`record_workload`] with extra environment variables for the recorder.
pub fn record_workload_with_env(probes: &[&str], workload: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec!["--trigger", "manual", "--dump-on-exit"];
    for p in probes {
        args.extend(["--probe", p]);
    }
    args.push("--");
    args.push(WORKLOAD);
    args.extend(workload);
    let run = record_with_env(&args, env);
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

/// Waits (up to 20 s: a loaded machine) until the recorder writing into `out` has attached
/// (its pid file exists).
pub fn wait_until_recording(out: &OutDir) {
    let pid_file = out.0.join(".recorder.pid");
    for _ in 0..2000 {
        // A regular file: a link planted at the name (a test of that) is not the pid file.
        if pid_file.symlink_metadata().is_ok_and(|m| m.is_file()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!(
        "the recorder did not start within 20 s (no {})",
        pid_file.display()
    );
}

/// Starts `snapshot record --out DIR ARGS…` in the background (output captured) and waits
/// until it records; finish it with a signal and [`collect`].
pub fn spawn_recorder(out: &OutDir, args: &[&str]) -> std::process::Child {
    spawn_recorder_with_env(out, args, &[])
}

/// [`spawn_recorder`] with extra environment variables.
pub fn spawn_recorder_with_env(
    out: &OutDir,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Child {
    let child = Command::new(&*SNAPSHOT)
        .args(["record", "--out", &out.arg()])
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", *SNAPSHOT));
    wait_until_recording(out);
    child
}

/// Runs `snapshot record --out DIR ARGS…` with extra environment variables.
pub fn record_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = OutDir::new();
    let output = Command::new(&*SNAPSHOT)
        .args(["record", "--out", &out.arg()])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", *SNAPSHOT));
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

/// The header of the snapshot `file` as `snapshot show --json` prints it.
pub fn header_json(file: &Path) -> serde_json::Value {
    let out = snapshot(&["show", "--json", &file.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().unwrap_or_default()).expect("a JSON header")
}

/// The number after `key` in the summary line (`snapshot: stopped: …`) of a recorder's stderr.
pub fn summary_number(stderr: &str, key: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no summary line in: {stderr}"));
    let rest = &line[line
        .find(key)
        .unwrap_or_else(|| panic!("no `{key}` in: {line}"))
        + key.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{key}` in: {line}"))
}

/// A valid snapshot file (checksums right) whose tracepoint probe lists seven argument names,
/// one more than an event carries.
pub fn seven_arg_names_snapshot() -> Vec<u8> {
    use snapshot_common::{EVENT_HAS_ARGS, Event};
    use snapshot_userspace::{
        probe::{ProbeInfo, ProbeSpec},
        session::buffer::CpuAccount,
        snapshot::{ClockRef, Header},
    };
    let spec: ProbeSpec = "tracepoint:syscalls:sys_enter_openat"
        .parse()
        .expect("spec");
    let names = (0..7).map(|i| format!("field{i}")).collect();
    let mut info = ProbeInfo::new(0, &spec, names);
    info.arg_formats = "ddddddd".into();
    let event = Event {
        seq: 1,
        ts_ns: 1000,
        pid_tgid: (7 << 32) | 7,
        args: [1, 2, 3, 4, 5, 6],
        comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
        flags: EVENT_HAS_ARGS,
        ..Event::default()
    };
    snapshot::encode(&Snapshot {
        header: Header {
            seq: 1,
            kind: SnapshotKind::Condition,
            hostname: "h".into(),
            kernel_release: "k".into(),
            clock: ClockRef::default(),
            probes: vec![info],
            trigger: "sys_enter_openat.field0 == 1".into(),
            fired: None,
            missed_triggers: 0,
            ncpu: 1,
            capacity: 16,
            cpus: vec![CpuAccount {
                cpu: 0,
                recorded: 1,
                ..CpuAccount::default()
            }],
            lost_snapshots: 0,
            lost_events: 0,
            string_size: 0,
        },
        events: vec![event],
        strings: snapshot::Strings::default(),
    })
}

/// The `slept_ns N` lines of `snapshot-workload timed-sleeps` in a recorder's stdout: each
/// call's duration as the workload measured it around the call.
pub fn slept_ns(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("slept_ns ")?.trim().parse().ok())
        .collect()
}

/// How far a probe-measured call duration may be from the workload's own measurement around
/// the call: never longer (plus 100 µs of clock granularity), at most 5 ms shorter (the
/// workload's measurement also holds the probes' own cost and any preemption around them).
pub fn assert_duration_close(recorded: u64, measured: u64, what: &str) {
    assert!(
        recorded <= measured + 100_000 && recorded + 5_000_000 >= measured,
        "{what}: recorded {recorded} ns, the workload measured {measured} ns (tolerance: -5 ms .. +0.1 ms)"
    );
}

/// `uprobe:WORKLOAD:snapshot_workload_sleep` (or another kind).
pub fn sleep_probe(kind: &str) -> String {
    format!("{kind}:{WORKLOAD}:snapshot_workload_sleep")
}

/// A BPF object: its kind (`prog`, `map`, `link`) and id.
pub type BpfId = (&'static str, u32);

/// Every BPF program, map and link in the kernel now (`BPF_*_GET_NEXT_ID`).
pub fn bpf_ids() -> std::collections::BTreeSet<BpfId> {
    let mut out = std::collections::BTreeSet::new();
    for (kind, cmd) in [("prog", 11i64), ("map", 12), ("link", 31)] {
        let mut start = 0u32;
        loop {
            // bpf_attr for the GET_NEXT_ID commands: start_id, next_id, open_flags.
            let mut attr = [start, 0u32, 0u32];
            // SAFETY: a valid, large enough bpf_attr for these commands.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    cmd,
                    attr.as_mut_ptr(),
                    std::mem::size_of_val(&attr),
                )
            };
            if r != 0 {
                break;
            }
            start = attr[1];
            out.insert((kind, start));
        }
    }
    out
}

/// The BPF objects some live process holds a descriptor of (from `/proc/*/fdinfo`: programs,
/// maps, links, and the program of each link); with `pid`, only those of that process.
pub fn held_bpf_ids(pid: Option<u32>) -> std::collections::BTreeSet<BpfId> {
    let mut out = std::collections::BTreeSet::new();
    let pids: Vec<String> = match pid {
        Some(p) => vec![p.to_string()],
        None => std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .collect(),
    };
    for p in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fdinfo")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            let Ok(text) = std::fs::read_to_string(fd.path()) else {
                continue;
            };
            for line in text.lines() {
                for (key, kind) in [
                    ("prog_id:", "prog"),
                    ("map_id:", "map"),
                    ("link_id:", "link"),
                ] {
                    if let Some(id) = line.strip_prefix(key).and_then(|v| v.trim().parse().ok()) {
                        out.insert((kind, id));
                    }
                }
            }
        }
    }
    out
}

/// Asserts that no BPF object created since `before` is left that no live process holds
/// (others' recorders may be running: theirs are held). Objects are freed asynchronously, so
/// this waits up to 5 s for them to go.
pub fn assert_no_bpf_left(before: &std::collections::BTreeSet<BpfId>, what: &str) {
    let mut left = Vec::new();
    for _ in 0..100 {
        let held = held_bpf_ids(None);
        left = bpf_ids()
            .difference(before)
            .filter(|id| !held.contains(id))
            .copied()
            .collect();
        if left.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what}: BPF objects left behind, held by no process: {left:?}");
}

/// Asserts that the BPF objects `ids` (the ones a recorder held) are all gone, waiting up to
/// 5 s (the kernel frees them after an RCU grace period).
pub fn assert_gone(ids: &std::collections::BTreeSet<BpfId>, what: &str) {
    let mut still = Vec::new();
    for _ in 0..100 {
        let now = bpf_ids();
        still = ids.intersection(&now).copied().collect();
        if still.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what}: the recorder's BPF objects are still loaded: {still:?}");
}

/// Runs `cmd` with its output captured, killing it after `secs` (`None` then: it hung).
pub fn output_within(cmd: &mut Command, secs: u64) -> Option<Output> {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if child.try_wait().ok().flatten().is_some() {
            return child.wait_with_output().ok();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("a path");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// Asserts that `o` exited 0, showing its stderr otherwise.
pub fn assert_success(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// What `path` itself is (a link is not followed).
pub fn file_type(path: impl AsRef<Path>) -> std::fs::FileType {
    path.as_ref()
        .symlink_metadata()
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
        .file_type()
}

/// Asks the recorder of `out` for a snapshot with `snapshot trigger`; asserts one was taken.
pub fn trigger_now(out: &Path) {
    let o = snapshot(&["trigger", &out.to_string_lossy()]);
    assert_success(&o);
}

/// Sends `sig` to `pid`.
pub fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// The names of the snapshot files in `dir`, sorted.
pub fn snapshot_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| snapshot_userspace::snapshot::dir::seq_of(n).is_some())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs(pub OutDir);

impl Tmpfs {
    /// Mounts it (mode 0700).
    pub fn new(size: &str) -> Self {
        let dir = OutDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs on {}", dir.0.display());
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0.0).status();
    }
}
