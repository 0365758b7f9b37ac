//! `snapshot-bench` (run by `cargo xtask bench`, as root): one run, one hook, every number the
//! README's benchmark table shows, printed as that table; then the string table (one 64-byte
//! user string per event). `snapshot-bench strings-vm`, run in the VM by `cargo xtask bench`,
//! compares the string's cost with ftrace's kprobe event there.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};
mod peers;

use snapshot_userspace::{session::target, sys};

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate this binary")?;
    Ok(exe.with_file_name(name))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// Runs `snapshot record … --json` and returns its JSON lines, stderr and stdout.
fn record(args: &[&str]) -> anyhow::Result<(Vec<serde_json::Value>, String, String)> {
    let out = Command::new(sibling("snapshot")?)
        .arg("record")
        .args(args)
        .output()
        .context("cannot run snapshot")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("snapshot record failed: {stderr}");
    }
    let lines = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok((lines, stderr, stdout))
}

fn temp_out(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snapshot-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run() -> anyhow::Result<()> {
    if !sys::is_root() {
        bail!("the benchmark loads eBPF programs and needs root: run `sudo -E cargo xtask bench`");
    }
    let workload = sibling("snapshot-workload")?;
    let w = workload.to_string_lossy().into_owned();
    let iterations: u64 = std::env::var("SNAPSHOT_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    eprintln!("per-event cost, raw_tp sys_enter, {iterations} getpid calls, median of 3:");
    let rows = peers::per_event(&workload, iterations, 3)?;
    let base = rows[0].ns;
    let ns = |name: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(name))
            .map_or(f64::NAN, |r| r.ns)
    };
    let empty = ns("empty program");
    let floor = ns("floor");
    let ours = ns("snapshot: recording + trigger");
    let ours_plain = ns("snapshot: recording");
    let rb = ns("BPF ringbuf, BPF_RB_NO_WAKEUP");
    let ftrace = ns("ftrace");
    let perf = ns("perf record");

    // Accounting at rate: two pinned threads, a buffer that holds everything, dump at exit.
    let per_thread = 400_000u64;
    let out = temp_out("rate");
    let (lines, stderr, stdout) = record(&[
        "--out",
        &out.to_string_lossy(),
        "--probe",
        "rawtp:sys_enter",
        "--trigger",
        "manual",
        "--buffer-size",
        "450000ev",
        "--dump-on-exit",
        "--json",
        "--",
        &w,
        "getpid-threads",
        &per_thread.to_string(),
    ])?;
    // With --json the command's own output goes to stderr (stdout carries JSON lines only).
    let rate: f64 = stdout
        .lines()
        .chain(stderr.lines())
        .find_map(|l| l.strip_prefix("events_per_s ")?.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let exit = lines
        .iter()
        .find(|l| l["kind"] == "exit")
        .context("no exit snapshot")?;
    let file = PathBuf::from(exit["path"].as_str().unwrap_or_default());
    let snap = snapshot_userspace::snapshot::read(&file)?;
    let getpid = snap
        .events
        .iter()
        .filter(|e| e.args[1] == libc::SYS_getpid as u64)
        .count() as u64;
    let lost: u64 = snap
        .header
        .cpus
        .iter()
        .map(|a| a.overwritten + a.dropped + a.torn)
        .sum();
    let _ = std::fs::remove_dir_all(&out);
    let unaccounted = (2 * per_thread).abs_diff(getpid);
    eprintln!(
        "accounting at {:.2} M events/s: {getpid} of {} getpid events recorded, {lost} lost; {}",
        rate / 1e6,
        2 * per_thread,
        stderr.lines().last().unwrap_or_default()
    );

    // Trigger to file on disk, 1 MiB per CPU: a getppid every 20000 getpid fires the trigger.
    let out = temp_out("latency");
    let (lines, _, _) = record(&[
        "--out",
        &out.to_string_lossy(),
        "--probe",
        "rawtp:sys_enter",
        "--trigger",
        "sys_enter.arg1 == 110",
        "--buffer-size",
        "1M",
        "--json",
        "--",
        &w,
        "getpid",
        "4000000",
        "20000",
    ])?;
    let _ = std::fs::remove_dir_all(&out);
    let mut lat: Vec<f64> = lines
        .iter()
        .filter_map(|l| l["trigger_to_file_ns"].as_f64())
        .map(|n| n / 1e6)
        .collect();
    lat.sort_by(f64::total_cmp);

    // Drain speed: full 64 MiB halves.
    let out = temp_out("drain");
    let (lines, _, _) = record(&[
        "--out",
        &out.to_string_lossy(),
        "--probe",
        "rawtp:sys_enter",
        "--trigger",
        "sys_enter.arg1 == 110",
        "--buffer-size",
        "64M",
        "--json",
        "--",
        &w,
        "getpid",
        "3000000",
        "1000000",
    ])?;
    let _ = std::fs::remove_dir_all(&out);
    let drain = lines
        .iter()
        .filter_map(|l| Some((l["drained_bytes"].as_f64()?, l["drain_ns"].as_f64()?)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(f64::NAN, |(bytes, ns)| bytes / ns);

    println!(
        "| configuration (raw_tp sys_enter, getpid loop, pid filter) | ns/event | added over no program |"
    );
    println!("|---|---:|---:|");
    for r in &rows {
        println!("| {} | {:.1} | {:+.1} |", r.name, r.ns, r.ns - base);
    }
    println!();
    println!("| measure | value | target |");
    println!("|---|---:|---|");
    println!(
        "| our added cost over the empty program / ringbuf NO_WAKEUP's | {:.2} | ≤ 0.5 |",
        (ours - empty) / (rb - empty)
    );
    println!(
        "| (recording without the trigger check: {:.2}) | | |",
        (ours_plain - empty) / (rb - empty)
    );
    println!(
        "| our total added cost / ftrace's | {:.2} | ≤ 0.5 |",
        (ours - base) / (ftrace - base)
    );
    println!(
        "| our total added cost / perf --overwrite's | {:.2} | ≤ 0.2 |",
        (ours - base) / (perf - base)
    );
    println!(
        "| events/s, one thread, recording + trigger | {:.2} M | |",
        1e3 / ours
    );
    println!(
        "| events/s, two threads, accounting run | {:.2} M | ≥ 3 M with 0 unaccounted |",
        rate / 1e6
    );
    println!("| unaccounted events in that run | {unaccounted} | 0 |");
    println!(
        "| trigger → file on disk, p50 / p99 (1 MiB/CPU, {} snapshots) | {:.2} / {:.2} ms | p99 ≤ 10 ms |",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!("| drain (wait for writers + read a full 64 MiB half via mmap) | {drain:.2} GB/s | |");
    println!(
        "| our added cost / the floor's (recording + trigger check) | {:.2} | |",
        (ours - base) / (floor - base)
    );
    println!(
        "| (recording without the trigger check: {:.2}) | | |",
        (ours_plain - base) / (floor - base)
    );
    strings_table(&workload, iterations)
}

/// Prints a table of rows, each with its cost added over the first.
fn table(title: &str, rows: &[peers::Row]) {
    let base = rows.first().map_or(f64::NAN, |r| r.ns);
    println!();
    println!("| {title} | ns/event | added over no program |");
    println!("|---|---:|---:|");
    for r in rows {
        println!("| {} | {:.1} | {:+.1} |", r.name, r.ns, r.ns - base);
    }
}

/// One 64-byte user string per event: the recorder, its floor and the peers on
/// `syscalls:sys_enter_openat`.
fn strings_table(workload: &std::path::Path, iterations: u64) -> anyhow::Result<()> {
    if std::env::var_os("SNAPSHOT_BENCH_QUICK").is_some() {
        return Ok(());
    }
    let n = (iterations / 4).max(1000);
    eprintln!(
        "one 64-byte string, tracepoint syscalls:sys_enter_openat, {n} openat calls, median of 5 taken in turns:"
    );
    let rows = peers::strings(workload, n, 5)?;
    let ns = |name: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(name))
            .map_or(f64::NAN, |r| r.ns)
    };
    let base = ns("no program");
    table(
        "configuration (tracepoint sys_enter_openat, openat loop, pid filter)",
        &rows,
    );
    let (floor, plain, with) = (
        ns("floor"),
        ns("snapshot: recording, no string"),
        ns("snapshot: recording + one"),
    );
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| the string's own cost (recording with it − without) | {:+.1} ns |",
        with - plain
    );
    println!(
        "| our added cost / the floor's (recording + string) | {:.2} |",
        (with - base) / (floor - base)
    );
    println!(
        "| our added cost / bpftrace `printf` of `str()`'s | {:.2} |",
        (with - base) / (ns("bpftrace: printf") - base)
    );
    Ok(())
}

/// `snapshot-bench strings-vm` (inside `cargo xtask vm`): the string through ftrace's kprobe
/// event and through the recorder's kprobe, as a ratio (the VM is emulated: absolute numbers
/// mean little).
fn strings_vm() -> anyhow::Result<()> {
    let workload = sibling("snapshot-workload")?;
    let n = std::env::var("SNAPSHOT_BENCH_VM_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    eprintln!("in the VM: one string on kprobe do_sys_openat2, {n} openat calls, median of 5:");
    let rows = peers::strings_vm(&workload, n, 5)?;
    table(
        "configuration (VM, kprobe do_sys_openat2, openat loop)",
        &rows,
    );
    let added = |i: usize| rows[i].ns - rows[0].ns;
    println!();
    println!(
        "| our added cost / ftrace kprobe event's, same string (VM) | {:.2} |",
        added(1) / added(2)
    );
    Ok(())
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == target::HELD_EXEC) {
        std::process::exit(target::held_exec_main(&args));
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let result = if args.get(1).is_some_and(|a| a == "strings-vm") {
        strings_vm()
    } else {
        run()
    };
    if let Err(e) = result {
        eprintln!("snapshot-bench: error: {e:#}");
        std::process::exit(1);
    }
}
