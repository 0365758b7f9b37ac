//! Helpers shared by the integration tests: run the real `snapshot` binary, parse its JSON.
#![allow(dead_code)]

use std::process::{Command, Output};

use snapshot_userspace::event::EventView;

/// The controller binary under test.
pub const SNAPSHOT: &str = env!("CARGO_BIN_EXE_snapshot");
/// The workload binary.
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_snapshot-workload");

/// Result of one `snapshot record` run.
pub struct Run {
    /// Decoded events (stdout, JSON lines).
    pub events: Vec<EventView>,
    /// Standard error.
    pub stderr: String,
    /// Exit code.
    pub code: Option<i32>,
}

/// Runs `snapshot ARGS` and parses its JSON event lines.
pub fn snapshot(args: &[&str]) -> Run {
    let out: Output = Command::new(SNAPSHOT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SNAPSHOT}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    Run {
        events,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// Runs `snapshot record --json PROBES… -- WORKLOAD ARGS…` and asserts it succeeded.
pub fn record_workload(probes: &[&str], workload: &[&str]) -> Run {
    let mut args = vec!["record", "--json"];
    for p in probes {
        args.extend(["--probe", p]);
    }
    args.push("--");
    args.push(WORKLOAD);
    args.extend(workload);
    let run = snapshot(&args);
    assert_eq!(run.code, Some(0), "snapshot record failed: {}", run.stderr);
    assert!(
        run.stderr.contains("torn 0"),
        "torn records reported: {}",
        run.stderr
    );
    run
}

/// `uprobe:WORKLOAD:snapshot_workload_fn` (or uretprobe).
pub fn workload_probe(kind: &str) -> String {
    format!("{kind}:{WORKLOAD}:snapshot_workload_fn")
}

/// Events of `probe`.
pub fn of<'a>(run: &'a Run, probe: &str) -> Vec<&'a EventView> {
    run.events.iter().filter(|e| e.probe == probe).collect()
}

/// Panics unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests load eBPF programs and need root: run `sudo -E cargo xtask test`"
    );
}
