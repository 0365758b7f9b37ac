//! The per-event cost (`cargo xtask bench`): ns per event on one hook (`raw_tp` `sys_enter`, a `getpid` loop, pid
//! filter) for no program, an empty program, this recorder (with and without the trigger
//! check), a BPF ring buffer writer (no wakeup, forced wakeup), and the peers: ftrace event
//! tracing into its overwrite ring, and `perf record --overwrite`.

use std::{
    ffi::OsString,
    os::fd::AsRawFd as _,
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use aya::{maps::RingBuf, programs::RawTracePoint};
use snapshot_common::{FilterMode, names};
use snapshot_userspace::{
    probe::{ProbeSpec, tracefs},
    session::{
        Rules, Session, SessionConfig, Targets,
        attach::DEFAULT_MAX_GLOB,
        load::{self, Extra, LoadConfig},
        target::Held,
    },
    trigger, units,
};

/// One measured configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    /// What ran.
    pub name: String,
    /// Median ns per `getpid`.
    pub ns: f64,
}

/// How a run is set up around the workload (given its pid) and torn down.
type Setup<'a> = &'a mut dyn FnMut(u32) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>>;

fn workload_ns(workload: &Path, iterations: u64, setup: Setup<'_>) -> anyhow::Result<f64> {
    let argv: Vec<OsString> = vec![
        workload.into(),
        "getpid".into(),
        iterations.to_string().into(),
    ];
    let mut held = Held::spawn_with(&argv, Stdio::piped())?;
    let teardown = setup(held.pid())?;
    held.release()?;
    let out = held.wait_output()?;
    teardown()?;
    out.lines()
        .find_map(|l| l.strip_prefix("ns_per_op ")?.trim().parse().ok())
        .with_context(|| format!("the workload printed no ns_per_op: {out:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(
    name: &str,
    workload: &Path,
    iterations: u64,
    runs: usize,
    setup: Setup<'_>,
) -> anyhow::Result<Row> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        samples.push(workload_ns(workload, iterations, setup)?);
    }
    let ns = median(samples);
    eprintln!("  {name:<44} {ns:>8.1} ns/getpid");
    Ok(Row {
        name: name.to_owned(),
        ns,
    })
}

#[allow(
    clippy::unnecessary_wraps,
    reason = "same signature as the other setups"
)]
fn nothing(_pid: u32) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    Ok(Box::new(|| Ok(())))
}

fn ncpu() -> anyhow::Result<u32> {
    Ok(aya::util::nr_cpus()
        .map_err(|(p, e)| anyhow::anyhow!("{p}: {e}"))?
        .get())
}

fn recorder(pid: u32, trigger: &str) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let specs: Vec<ProbeSpec> = vec!["rawtp:sys_enter".parse()?];
    let mut session = Session::start(&SessionConfig {
        specs: &specs,
        capacity: units::parse_events("1M")?,
        targets: &Targets::Processes(vec![pid]),
        follow_forks: false,
        strict: false,
        max_glob: DEFAULT_MAX_GLOB,
        rules: Rules::default(),
        string_size: snapshot_common::strings::STRING_SIZE_DEFAULT,
    })?;
    let program = trigger::compile(&[trigger.parse()?], session.probes())?;
    session.set_trigger(&program)?;
    Ok(Box::new(move || {
        session.close();
        Ok(())
    }))
}

fn empty_program(_pid: u32) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let mut ebpf = load::load(&LoadConfig {
        ncpu: ncpu()?,
        capacity: 16,
        filter: FilterMode::All,
        ..LoadConfig::default()
    })?;
    let prog: &mut RawTracePoint = ebpf
        .program_mut(names::PROG_BENCH_EMPTY)
        .context("the benchmark's empty program is missing from the eBPF object")?
        .try_into()?;
    prog.load()?;
    prog.attach("sys_enter")?;
    Ok(Box::new(move || {
        drop(ebpf);
        Ok(())
    }))
}

fn ring_buffer(pid: u32, flags: u64) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let mut ebpf = load::load_with(
        &LoadConfig {
            ncpu: ncpu()?,
            capacity: 16,
            filter: FilterMode::One,
            target_tgid: pid,
            ..LoadConfig::default()
        },
        &Extra {
            globals: &[(names::GLOBAL_BENCH_RB_FLAGS, flags)],
            max_entries: &[(names::BENCH_RING, 64 << 20)],
        },
    )?;
    let ring = ebpf
        .take_map(names::BENCH_RING)
        .context("the benchmark's ring buffer is missing from the eBPF object")?;
    let mut ring = RingBuf::try_from(ring)?;
    let prog: &mut RawTracePoint = ebpf
        .program_mut(names::PROG_BENCH_RINGBUF)
        .context("the benchmark's ring buffer program is missing from the eBPF object")?
        .try_into()?;
    prog.load()?;
    prog.attach("sys_enter")?;
    let stop = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(AtomicU64::new(0));
    let (stop2, consumed2) = (stop.clone(), consumed.clone());
    let consumer = std::thread::spawn(move || {
        // No wakeup: poll every millisecond. Forced wakeup: sleep in poll(2) until woken.
        let mut pfd = libc::pollfd {
            fd: ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        while !stop2.load(Ordering::Relaxed) {
            if flags == 1 {
                std::thread::sleep(Duration::from_millis(1));
            } else {
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&raw mut pfd, 1, 100) };
            }
            while let Some(item) = ring.next() {
                std::hint::black_box(&*item);
                consumed2.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok(Box::new(move || {
        stop.store(true, Ordering::Relaxed);
        consumer
            .join()
            .map_err(|_| anyhow::anyhow!("ring buffer consumer panicked"))?;
        drop(ebpf);
        log::debug!(
            "ring buffer consumer read {} events",
            consumed.load(Ordering::Relaxed)
        );
        Ok(())
    }))
}

fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value)
        .with_context(|| format!("cannot write `{value}` to {}", path.display()))
}

fn ftrace(pid: u32) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    tracefs::ensure_mounted()?;
    let t = Path::new(tracefs::TRACEFS);
    write(&t.join("tracing_on"), "0")?;
    write(&t.join("trace"), "")?;
    write(&t.join("buffer_size_kb"), "65536")?;
    write(&t.join("options/overwrite"), "1")?;
    write(&t.join("set_event_pid"), &pid.to_string())?;
    write(&t.join("events/raw_syscalls/sys_enter/enable"), "1")?;
    write(&t.join("tracing_on"), "1")?;
    Ok(Box::new(move || {
        let t = Path::new(tracefs::TRACEFS);
        write(&t.join("events/raw_syscalls/sys_enter/enable"), "0")?;
        write(&t.join("set_event_pid"), "")?;
        write(&t.join("trace"), "")?;
        write(&t.join("buffer_size_kb"), "1408")?;
        Ok(())
    }))
}

fn perf_overwrite(pid: u32) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let data = std::env::temp_dir().join(format!("snapshot-bench-{}.perf", std::process::id()));
    let mut perf = std::process::Command::new("perf")
        .args([
            "record",
            "--overwrite",
            "-m",
            "64M",
            "-e",
            "raw_syscalls:sys_enter",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run perf (Debian's linux-perf; `cargo xtask setup` installs it)")?;
    // perf attaches asynchronously; give it time before the workload starts.
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(status) = perf.try_wait()? {
        bail!("perf record exited early ({status})");
    }
    Ok(Box::new(move || {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
        perf.wait()?;
        let _ = std::fs::remove_file(&data);
        Ok(())
    }))
}

/// Runs every configuration; `runs` samples each, `iterations` getpid calls per sample.
pub fn per_event(workload: &Path, iterations: u64, runs: usize) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    rows.push(measure(
        "no program",
        workload,
        iterations,
        runs,
        &mut nothing,
    )?);
    rows.push(measure(
        "empty program",
        workload,
        iterations,
        runs,
        &mut empty_program,
    )?);
    rows.push(measure(
        "snapshot: recording",
        workload,
        iterations,
        runs,
        &mut |pid| recorder(pid, "manual"),
    )?);
    if std::env::var_os("SNAPSHOT_BENCH_QUICK").is_some() {
        return Ok(rows);
    }
    rows.push(measure(
        "snapshot: recording + trigger check",
        workload,
        iterations,
        runs,
        &mut |pid| recorder(pid, "sys_enter.arg1 == -1"),
    )?);
    rows.push(measure(
        "BPF ringbuf, BPF_RB_NO_WAKEUP + 1 ms poll",
        workload,
        iterations,
        runs,
        &mut |pid| ring_buffer(pid, 1),
    )?);
    rows.push(measure(
        "BPF ringbuf, wakeup per event",
        workload,
        iterations,
        runs,
        &mut |pid| ring_buffer(pid, 2),
    )?);
    rows.push(measure(
        "ftrace event, overwrite ring 64 MiB/CPU",
        workload,
        iterations,
        runs,
        &mut ftrace,
    )?);
    rows.push(measure(
        "perf record --overwrite -m 64M",
        workload,
        iterations,
        runs,
        &mut perf_overwrite,
    )?);
    Ok(rows)
}
