//! `cargo xtask soak`: the long-run proof. The release `snapshot record` runs as a service
//! would (`--keep 5`, `--json-out`), on two tracepoints of a workload that triggers every 2 ms
//! for the whole run, and is watched from outside:
//!
//! * **memory**: the recorder's `VmRSS` after a warm-up and near the end: it may not grow by
//!   more than 5 %;
//! * **files**: the `.snap` files in the output directory: exactly `--keep` at every sample
//!   after the warm-up and at the end;
//! * **accounting**: the workload prints how many events it made; the recorder's summary must
//!   account for each (recorded + overwritten + dropped + discarded at exit, 0 torn, 0 lost),
//!   and its JSON lines must name as many snapshots and events as the summary, with the
//!   snapshots taken minus those `--keep` deleted equal to the files kept;
//! * **kernel objects**: the BPF maps, programs and links and the perf events the recorder
//!   holds (its `/proc/PID/fd`): no growth between the first and last sample.
//!
//! The numbers are printed as a report; a broken bound fails the command (and the CI layer,
//! which runs 90 seconds of it).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};

use crate::{cmd, paths};

/// How long the CI layer soaks.
pub const CI: Duration = Duration::from_secs(90);
/// Snapshot files the recorder keeps.
const KEEP: u64 = 5;
/// The workload triggers every `PERIOD_MS`, after `BURST` other events.
const PERIOD_MS: u64 = 2;
const BURST: u64 = 50;
/// At most one snapshot per holdoff: about 10 files written (and deleted) per second.
const HOLDOFF: &str = "100ms";
/// RSS may grow by at most this many percent between the warm-up and the end.
const RSS_BOUND_PERCENT: u64 = 5;

/// What the recorder holds, from `/proc/PID`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sample {
    rss_kb: u64,
    files: u64,
    json_lines: u64,
    maps: u64,
    progs: u64,
    links: u64,
    perf_events: u64,
    fds: u64,
}

/// The recorder's final summary line (`snapshot: stopped: …`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    snapshots: u64,
    recorded: u64,
    overwritten: u64,
    dropped: u64,
    torn: u64,
    discarded: u64,
    missed: u64,
    lost: u64,
    deleted: u64,
}

/// Everything measured in one soak.
#[derive(Debug, Default)]
struct Measured {
    start: Sample,
    end: Sample,
    /// The fewest and most files seen at a sample after the warm-up.
    files_min: u64,
    files_max: u64,
    rss_max: u64,
    samples: u64,
    exit_ok: bool,
    /// getpid + getppid calls the workload made.
    workload_events: u64,
    summary: Summary,
    json_snapshots: u64,
    json_events: u64,
}

impl Measured {
    fn unaccounted(&self) -> i128 {
        let s = &self.summary;
        i128::from(self.workload_events)
            - i128::from(s.recorded + s.overwritten + s.dropped + s.discarded)
    }

    fn rss_growth(&self) -> f64 {
        self.end.rss_kb as f64 / self.start.rss_kb.max(1) as f64 - 1.0
    }

    /// The bounds broken, each in a sentence (empty: the soak passed).
    fn broken(&self) -> Vec<String> {
        let mut broken = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                broken.push(what);
            }
        };
        let s = &self.summary;
        check(self.exit_ok, "the recorder did not exit 0".into());
        check(
            self.end.rss_kb * 100 <= self.start.rss_kb * (100 + RSS_BOUND_PERCENT),
            format!(
                "RSS grew {:+.2} % after the warm-up (bound +{RSS_BOUND_PERCENT} %)",
                100.0 * self.rss_growth(),
            ),
        );
        check(
            self.end.files == KEEP,
            format!("{} files at the end, not --keep {KEEP}", self.end.files),
        );
        check(
            self.files_min == KEEP && self.files_max == KEEP,
            format!(
                "between {} and {} files after the warm-up, not --keep {KEEP}",
                self.files_min, self.files_max
            ),
        );
        check(
            self.unaccounted() == 0 && s.torn == 0 && s.lost == 0,
            format!(
                "{} events unaccounted (the workload made {}), {} torn, {} snapshots lost",
                self.unaccounted(),
                self.workload_events,
                s.torn,
                s.lost
            ),
        );
        check(
            self.json_snapshots == s.snapshots && self.json_events == s.recorded,
            format!(
                "the JSON lines name {} snapshots of {} events, the summary {} of {}",
                self.json_snapshots, self.json_events, s.snapshots, s.recorded
            ),
        );
        check(
            s.snapshots.checked_sub(s.deleted) == Some(self.end.files),
            format!(
                "{} snapshots taken and {} deleted, but {} files kept",
                s.snapshots, s.deleted, self.end.files
            ),
        );
        check(
            self.end.json_lines > self.start.json_lines,
            "no snapshot was taken between the first and the last sample: the trigger stopped firing"
                .into(),
        );
        let (a, b) = (self.start, self.end);
        check(
            b.maps <= a.maps
                && b.progs <= a.progs
                && b.links <= a.links
                && b.perf_events <= a.perf_events,
            format!(
                "BPF objects held grew: maps {}→{}, programs {}→{}, links {}→{}, perf events {}→{}",
                a.maps, b.maps, a.progs, b.progs, a.links, b.links, a.perf_events, b.perf_events
            ),
        );
        broken
    }

    /// The report, one line per measure.
    fn report(&self, duration: Duration, warmup: Duration) -> String {
        let (a, b, s) = (self.start, self.end, self.summary);
        format!(
            "soak: {} s of `snapshot record --keep {KEEP}` (release), a trigger every {PERIOD_MS} ms, --holdoff {HOLDOFF}, {} samples\n\
             \x20 RSS          {} KB after the {} s warm-up, {} KB at the end ({:+.2} %), at most {} KB\n\
             \x20 files        {} at the end; {}..{} at every sample after the warm-up (--keep {KEEP})\n\
             \x20 snapshots    {} taken ({} JSON lines), {} deleted by --keep, {} missed triggers\n\
             \x20 accounting   the workload made {} events = recorded {} + overwritten {} + dropped {} + discarded at exit {}; torn {}, lost {}: {} unaccounted\n\
             \x20 BPF objects  maps {}→{}, programs {}→{}, links {}→{}, perf events {}→{}; all fds {}→{}",
            duration.as_secs(),
            self.samples,
            a.rss_kb,
            warmup.as_secs(),
            b.rss_kb,
            100.0 * self.rss_growth(),
            self.rss_max,
            b.files,
            self.files_min,
            self.files_max,
            s.snapshots,
            self.json_snapshots,
            s.deleted,
            s.missed,
            self.workload_events,
            s.recorded,
            s.overwritten,
            s.dropped,
            s.discarded,
            s.torn,
            s.lost,
            self.unaccounted(),
            a.maps,
            b.maps,
            a.progs,
            b.progs,
            a.links,
            b.links,
            a.perf_events,
            b.perf_events,
            a.fds,
            b.fds,
        )
    }
}

/// The number after `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Reads the summary line of the recorder's stderr.
fn parse_summary(stderr: &str) -> anyhow::Result<Summary> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("snapshot: stopped:"))
        .ok_or_else(|| anyhow!("the recorder printed no summary line"))?;
    let n = |key: &str| {
        number_after(line, key).ok_or_else(|| anyhow!("no `{key}` in the summary: {line}"))
    };
    let snapshots = line
        .split("; ")
        .find_map(|part| part.strip_suffix(" snapshot(s)")?.parse().ok())
        .ok_or_else(|| anyhow!("no snapshot count in the summary: {line}"))?;
    Ok(Summary {
        snapshots,
        recorded: n("recorded")?,
        overwritten: n("overwritten")?,
        dropped: n("dropped")?,
        torn: n("torn")?,
        discarded: n("discarded at exit")?,
        missed: n("missed triggers")?,
        lost: number_after(line, "; lost").unwrap_or(0),
        deleted: number_after(line, "; deleted").unwrap_or(0),
    })
}

/// `getpid N getppid M` of the workload: N + M.
fn parse_workload(stdout: &str) -> anyhow::Result<u64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("getpid "))
        .ok_or_else(|| anyhow!("the workload printed no counts: {stdout:?}"))?;
    match (
        number_after(line, "getpid "),
        number_after(line, "getppid "),
    ) {
        (Some(a), Some(b)) => Ok(a + b),
        _ => bail!("cannot read the workload's counts: {line}"),
    }
}

/// Snapshots and events named by the JSON lines.
fn parse_json_lines(text: &str) -> anyhow::Result<(u64, u64)> {
    let mut events = 0;
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("a JSON line: {line}"))?;
        events += v["events"]
            .as_u64()
            .ok_or_else(|| anyhow!("a JSON line without events: {line}"))?;
        lines += 1;
    }
    Ok((lines, events))
}

/// The recorder's `VmRSS` in KB.
fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("the recorder is gone")?;
    status
        .lines()
        .find_map(|l| number_after(l.strip_prefix("VmRSS:")?, ""))
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// `.snap` files in `dir`, the fewest of three looks 20 ms apart: a write and the deletion it
/// causes are not one step, so one look may fall between them.
fn snap_files(dir: &Path) -> anyhow::Result<u64> {
    let count = || -> anyhow::Result<u64> {
        let mut n = 0;
        for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
            if entry?.file_name().to_string_lossy().ends_with(".snap") {
                n += 1;
            }
        }
        Ok(n)
    };
    let mut fewest = count()?;
    for _ in 0..2 {
        if fewest <= KEEP {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        fewest = fewest.min(count()?);
    }
    Ok(fewest)
}

/// One sample of the recorder `pid` writing into `out`, its JSON lines in `json`.
fn sample(pid: u32, out: &Path, json: &Path) -> anyhow::Result<Sample> {
    let mut s = Sample {
        rss_kb: rss_kb(pid)?,
        files: snap_files(out)?,
        json_lines: std::fs::read_to_string(json)
            .unwrap_or_default()
            .lines()
            .count() as u64,
        ..Sample::default()
    };
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        s.fds += 1;
        match target.to_string_lossy().as_ref() {
            "anon_inode:bpf-map" => s.maps += 1,
            "anon_inode:bpf-prog" => s.progs += 1,
            "anon_inode:bpf_link" | "anon_inode:bpf-link" => s.links += 1,
            "anon_inode:[perf_event]" => s.perf_events += 1,
            _ => {}
        }
    }
    Ok(s)
}

/// Waits for `child` until `limit`; past it, stops it (SIGTERM, then SIGKILL) and fails.
fn wait(child: &mut Child, limit: Instant) -> anyhow::Result<bool> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if Instant::now() > limit {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            bail!("the recorder did not stop after the workload's end (stopped with signals)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Soaks for `duration`; returns what was measured (the bounds are checked by the caller).
fn measure(
    bin: &Path,
    dir: &Path,
    duration: Duration,
    warmup: Duration,
) -> anyhow::Result<Measured> {
    let out = dir.join("out");
    let json = dir.join("snapshots.json");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let file = |name: &str| -> anyhow::Result<std::fs::File> {
        std::fs::File::create(dir.join(name)).with_context(|| format!("{}", dir.display()))
    };
    let mut record = Command::new(bin.join("snapshot"));
    record
        .arg("record")
        .arg("--out")
        .arg(&out)
        .arg("--json-out")
        .arg(&json)
        .args(["--keep", &KEEP.to_string(), "--buffer-size", "64K"])
        .args(["--holdoff", HOLDOFF])
        .args(["--probe", "tracepoint:syscalls:sys_enter_getpid"])
        .args(["--probe", "tracepoint:syscalls:sys_enter_getppid"])
        .args(["--trigger", "sys_enter_getppid"])
        .arg("--")
        .arg(bin.join("snapshot-workload"))
        .args(["soak", &duration.as_secs().to_string()])
        .args([PERIOD_MS.to_string(), BURST.to_string()])
        .stdin(Stdio::null())
        .stdout(file("workload.out")?)
        .stderr(file("recorder.log")?);
    eprintln!("    $ {record:?}");
    let mut child = record.spawn().context("cannot start the recorder")?;
    let pid = child.id();
    let pid_file = out.join(".recorder.pid");
    let started = Instant::now();
    while !pid_file.is_file() {
        if child.try_wait()?.is_some() || started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the recorder did not start recording (see {})",
                dir.join("recorder.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The workload starts once the probes are attached: it ends at about `started + duration`.
    let t0 = Instant::now();
    let end_at = t0 + duration.saturating_sub(Duration::from_secs(3));
    let interval = (duration / 60).clamp(Duration::from_secs(1), Duration::from_secs(60));
    std::thread::sleep(warmup);
    let first = sample(pid, &out, &json)?;
    let mut m = Measured {
        start: first,
        end: first,
        files_min: first.files,
        files_max: first.files,
        rss_max: first.rss_kb,
        ..Measured::default()
    };
    eprintln!("    warm-up over: {:?}", m.start);
    while Instant::now() + interval < end_at {
        std::thread::sleep(interval);
        m.end = sample(pid, &out, &json)?;
        m.samples += 1;
        m.files_min = m.files_min.min(m.end.files);
        m.files_max = m.files_max.max(m.end.files);
        m.rss_max = m.rss_max.max(m.end.rss_kb);
        if m.samples.is_multiple_of(10) {
            eprintln!(
                "    {:>5} s: RSS {} KB, {} files, {} snapshots",
                t0.elapsed().as_secs(),
                m.end.rss_kb,
                m.end.files,
                m.end.json_lines
            );
        }
    }
    eprintln!("    last sample: {:?}", m.end);
    m.exit_ok = wait(&mut child, end_at + Duration::from_secs(120))?;
    m.end.files = snap_files(&out)?;
    let log = std::fs::read_to_string(dir.join("recorder.log"))?;
    m.summary = parse_summary(&log)?;
    m.workload_events = parse_workload(&std::fs::read_to_string(dir.join("workload.out"))?)?;
    (m.json_snapshots, m.json_events) = parse_json_lines(&std::fs::read_to_string(&json)?)?;
    Ok(m)
}

/// The warm-up before the first sample: a sixth of the run, 10 s to 5 min.
fn warmup(duration: Duration) -> Duration {
    (duration / 6).clamp(Duration::from_secs(10), Duration::from_secs(300))
}

/// Builds the static release binaries (the ones dist packs and the host and VM layers test, so CI
/// builds them once), soaks for
/// `duration` and prints the report; returns a line for the test summary, or the bounds broken.
pub fn soak(duration: Duration) -> anyhow::Result<String> {
    if !cmd::is_root() {
        bail!("the soak loads eBPF programs and needs root: run `sudo -E cargo xtask soak`");
    }
    if duration < Duration::from_secs(30) {
        bail!("a soak needs at least 30 s (a warm-up, then samples)");
    }
    let bin = crate::cross::binaries(crate::arch::Arch::host())?;
    let dir: PathBuf = paths::target()?.join("soak");
    let warmup = warmup(duration);
    cmd::step(&format!(
        "soak: {} s of the release recorder, --keep {KEEP}, samples after a {} s warm-up (output in {})",
        duration.as_secs(),
        warmup.as_secs(),
        dir.display()
    ));
    let m = measure(&bin, &dir, duration, warmup)?;
    eprintln!("{}", m.report(duration, warmup));
    let broken = m.broken();
    if !broken.is_empty() {
        bail!("{}", broken.join("; "));
    }
    Ok(format!(
        "RSS {:+.1} %, {} files, 0 unaccounted of {} events, {} snapshots",
        100.0 * m.rss_growth(),
        m.end.files,
        m.workload_events,
        m.summary.snapshots
    ))
}

/// `cargo xtask soak`: soaks for `seconds`; returns the exit code.
pub fn run(seconds: u64) -> anyhow::Result<i32> {
    crate::setup::ensure()?;
    Ok(verdict(soak(Duration::from_secs(seconds))))
}

/// Prints a soak's outcome (what passed, or why it failed) in colour; returns the exit code.
pub fn verdict(result: anyhow::Result<String>) -> i32 {
    match result {
        Ok(line) => {
            cmd::green(&format!("soak passed: {line}"));
            0
        }
        Err(e) => {
            cmd::red(&format!("soak FAILED: {e:#}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "snapshot 9: x.snap (3 events)\nsnapshot: stopped: the target exited; 812 snapshot(s); events: recorded 1000, overwritten 20, dropped 1, torn 0, discarded at exit 7; missed triggers 3; deleted 807 old snapshot(s) (123 bytes) for --keep/--max-disk\n";

    /// A change that breaks one bound.
    type Break = fn(&mut Measured);

    fn passing() -> Measured {
        let sample = Sample {
            rss_kb: 80_000,
            files: KEEP,
            json_lines: 100,
            maps: 20,
            progs: 10,
            links: 2,
            perf_events: 2,
            fds: 50,
        };
        Measured {
            start: sample,
            end: Sample {
                rss_kb: 84_000,
                json_lines: 812,
                ..sample
            },
            files_min: KEEP,
            files_max: KEEP,
            rss_max: 84_000,
            samples: 60,
            exit_ok: true,
            workload_events: 1028,
            summary: parse_summary(SUMMARY).unwrap(),
            json_snapshots: 812,
            json_events: 1000,
        }
    }

    #[test]
    fn the_summary_and_the_workload_are_read() {
        let s = parse_summary(SUMMARY).unwrap();
        assert_eq!(
            s,
            Summary {
                snapshots: 812,
                recorded: 1000,
                overwritten: 20,
                dropped: 1,
                torn: 0,
                discarded: 7,
                missed: 3,
                lost: 0,
                deleted: 807,
            }
        );
        assert!(parse_summary("snapshot 1: x\n").is_err());
        assert_eq!(parse_workload("getpid 1000 getppid 20\n").unwrap(), 1020);
        assert!(parse_workload("ns_per_op 3\n").is_err());
        let json = "{\"seq\":1,\"events\":3}\n{\"seq\":2,\"events\":4}\n";
        assert_eq!(parse_json_lines(json).unwrap(), (2, 7));
    }

    #[test]
    fn each_bound_fails_the_soak() {
        assert_eq!(passing().broken(), Vec::<String>::new());
        let breaks: [(&str, Break); 9] = [
            ("RSS grew", |m| m.end.rss_kb = 84_001),
            ("files at the end", |m| m.end.files = KEEP + 1),
            ("after the warm-up", |m| m.files_max = KEEP + 1),
            ("unaccounted", |m| m.workload_events += 1),
            ("torn", |m| m.summary.torn = 1),
            ("JSON lines", |m| m.json_events -= 1),
            ("BPF objects held grew", |m| m.end.links += 1),
            ("trigger stopped", |m| m.end.json_lines = m.start.json_lines),
            ("did not exit 0", |m| m.exit_ok = false),
        ];
        for (what, break_it) in breaks {
            let mut m = passing();
            break_it(&mut m);
            let broken = m.broken();
            assert!(
                broken.iter().any(|b| b.contains(what)),
                "{what}: {broken:?}"
            );
        }
    }
}
