//! The per-event cost (`cargo xtask bench`): ns per event on one hook (`raw_tp` `sys_enter`, a
//! `getpid` loop, pid filter) for no program, an empty program, the floor (the two helper calls
//! every event makes), this recorder (with and without the trigger check), a BPF ring buffer
//! writer (no wakeup, forced wakeup), and the peers: ftrace event tracing into its overwrite
//! ring, and `perf record --overwrite`. Then the same with one 64-byte user string
//! (`syscalls:sys_enter_openat`, an `openat` loop): the floor with a string's read, this
//! recorder without and with the string, ftrace (pointer only: see [`strings`]), and bpftrace's
//! `count()` and `printf` of `str()`; and in the VM (`strings-vm`) ftrace's kprobe event
//! fetching the string against this recorder's kprobe.

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
use aya::{
    maps::RingBuf,
    programs::{RawTracePoint, TracePoint},
};
use snapshot_common::{FilterMode, names, strings::STRING_SIZE_DEFAULT};
use snapshot_userspace::{
    probe::{ProbeSpec, features::Features, tracefs},
    session::{
        Rules, Session, SessionConfig, Targets,
        attach::DEFAULT_MAX_GLOB,
        load::{self, Extra, LoadConfig},
        target::Held,
    },
    trigger::{self, Trigger},
    units,
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

/// The workload loop measured: its mode (`getpid`, `openat`) and length.
#[derive(Clone, Copy)]
pub struct Load<'a> {
    /// The workload binary.
    pub workload: &'a Path,
    /// Its mode.
    pub mode: &'a str,
    /// Calls per sample.
    pub iterations: u64,
    /// Samples (the median is kept).
    pub runs: usize,
}

fn workload_ns(load: Load<'_>, setup: Setup<'_>) -> anyhow::Result<f64> {
    let argv: Vec<OsString> = vec![
        load.workload.into(),
        load.mode.into(),
        load.iterations.to_string().into(),
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

fn measure(name: &str, load: Load<'_>, setup: Setup<'_>) -> anyhow::Result<Row> {
    let mut samples = Vec::with_capacity(load.runs);
    for _ in 0..load.runs {
        samples.push(workload_ns(load, setup)?);
    }
    let ns = median(samples);
    eprintln!("  {name:<52} {ns:>8.1} ns/{}", load.mode);
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
    recorder_on(pid, "rawtp:sys_enter", trigger, STRING_SIZE_DEFAULT)
}

fn recorder_on(
    pid: u32,
    spec: &str,
    trigger: &str,
    string_size: u32,
) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let specs: Vec<ProbeSpec> = vec![spec.parse()?];
    let trigger: Trigger = trigger.parse()?;
    let session = Session::start(&SessionConfig {
        specs: &specs,
        capacity: units::parse_events("1M")?,
        targets: &Targets::Processes(vec![pid]),
        follow_forks: false,
        strict: false,
        max_glob: DEFAULT_MAX_GLOB,
        rules: Rules::default(),
        string_size,
        sequences: matches!(trigger, Trigger::Sequence { .. }),
        build_id_stacks: false,
        trigger: &|probes| Ok(trigger::compile(std::slice::from_ref(&trigger), probes)?),
    })?;
    Ok(Box::new(move || {
        session.close();
        Ok(())
    }))
}

/// A benchmark program of the object on `raw_tp` `sys_enter`, filtering on `pid`.
fn bench_program(pid: u32, name: &str) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let mut ebpf = load::load(&LoadConfig {
        ncpu: ncpu()?,
        capacity: 16,
        filter: FilterMode::One,
        target_tgid: pid,
        features: Features::get().kernel_bits(),
        ..LoadConfig::default()
    })?;
    let prog: &mut RawTracePoint = ebpf
        .program_mut(name)
        .with_context(|| format!("the benchmark's program {name} is missing from the eBPF object"))?
        .try_into()?;
    prog.load()?;
    prog.attach("sys_enter")?;
    Ok(Box::new(move || {
        drop(ebpf);
        Ok(())
    }))
}

/// The string floor on `syscalls:sys_enter_openat`, filtering on `pid`.
fn string_floor(pid: u32) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let mut ebpf = load::load(&LoadConfig {
        ncpu: ncpu()?,
        capacity: 16,
        filter: FilterMode::One,
        target_tgid: pid,
        ..LoadConfig::default()
    })?;
    let prog: &mut TracePoint = ebpf
        .program_mut(names::PROG_BENCH_FLOOR_STR)
        .context("the benchmark's string floor is missing from the eBPF object")?
        .try_into()?;
    prog.load()?;
    prog.attach("syscalls", "sys_enter_openat")?;
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
            features: Features::get().kernel_bits(),
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
    ftrace_event(pid, "raw_syscalls/sys_enter")
}

/// ftrace's `event` (`CATEGORY/NAME`) into its overwrite ring, 64 MiB per CPU, for `pid`.
pub fn ftrace_event(
    pid: u32,
    event: &'static str,
) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    tracefs::ensure_mounted()?;
    let t = Path::new(tracefs::TRACEFS);
    write(&t.join("tracing_on"), "0")?;
    write(&t.join("trace"), "")?;
    write(&t.join("buffer_size_kb"), "65536")?;
    write(&t.join("options/overwrite"), "1")?;
    write(&t.join("set_event_pid"), &pid.to_string())?;
    let enable = format!("events/{event}/enable");
    write(&t.join(&enable), "1")?;
    write(&t.join("tracing_on"), "1")?;
    Ok(Box::new(move || {
        let t = Path::new(tracefs::TRACEFS);
        write(&t.join(&enable), "0")?;
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
    Ok(Box::new(move || interrupt(perf, &data)))
}

/// Stops a peer (`perf`, `bpftrace`) as Ctrl-C would, waits for it and removes its output.
fn interrupt(mut child: std::process::Child, output: &Path) -> anyhow::Result<()> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait()?;
    let _ = std::fs::remove_file(output);
    Ok(())
}

/// Runs every configuration on the `getpid` hook; `runs` samples each, `iterations` calls per
/// sample.
pub fn per_event(workload: &Path, iterations: u64, runs: usize) -> anyhow::Result<Vec<Row>> {
    let load = Load {
        workload,
        mode: "getpid",
        iterations,
        runs,
    };
    let mut rows = vec![
        measure("no program", load, &mut nothing)?,
        measure("empty program", load, &mut |pid| {
            bench_program(pid, names::PROG_BENCH_EMPTY)
        })?,
        measure(
            "floor: pid + timestamp helpers, nothing else",
            load,
            &mut |pid| bench_program(pid, names::PROG_BENCH_FLOOR),
        )?,
        measure("snapshot: recording", load, &mut |pid| {
            recorder(pid, "manual")
        })?,
    ];
    if std::env::var_os("SNAPSHOT_BENCH_QUICK").is_some() {
        return Ok(rows);
    }
    rows.push(measure(
        "snapshot: recording + trigger check",
        load,
        &mut |pid| recorder(pid, "sys_enter.arg1 == -1"),
    )?);
    rows.push(measure(
        "BPF ringbuf, BPF_RB_NO_WAKEUP + 1 ms poll",
        load,
        &mut |pid| ring_buffer(pid, 1),
    )?);
    rows.push(measure(
        "BPF ringbuf, wakeup per event",
        load,
        &mut |pid| ring_buffer(pid, 2),
    )?);
    rows.push(measure(
        "ftrace event, overwrite ring 64 MiB/CPU",
        load,
        &mut ftrace,
    )?);
    rows.push(measure(
        "perf record --overwrite -m 64M",
        load,
        &mut perf_overwrite,
    )?);
    Ok(rows)
}

/// Measures every configuration `runs` times in turns (one sample of each, then again), so
/// that a slow moment of a loaded machine falls on all of them alike; the median of each.
fn interleaved(load: Load<'_>, configs: &mut [(&str, Setup<'_>)]) -> anyhow::Result<Vec<Row>> {
    let mut samples = vec![Vec::with_capacity(load.runs); configs.len()];
    for _ in 0..load.runs {
        for (i, (_, setup)) in configs.iter_mut().enumerate() {
            samples[i].push(workload_ns(load, *setup)?);
        }
    }
    Ok(configs
        .iter()
        .zip(samples)
        .map(|((name, _), s)| {
            let ns = median(s);
            eprintln!("  {name:<52} {ns:>8.1} ns/{}", load.mode);
            Row {
                name: (*name).to_owned(),
                ns,
            }
        })
        .collect())
}

/// bpftrace running `program` (`PID` replaced by the target's), its output into a file;
/// started once bpftrace says it attached.
fn bpftrace(pid: u32, program: &str) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    let out = std::env::temp_dir().join(format!("snapshot-bench-{}.bpftrace", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut child = std::process::Command::new("bpftrace")
        .arg("-o")
        .arg(&out)
        .arg("-e")
        .arg(program.replace("PID", &pid.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run bpftrace (Debian's bpftrace; `cargo xtask setup` installs it)")?;
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&out).is_ok_and(|t| t.contains("Attaching")) {
        if let Some(status) = child.try_wait()? {
            bail!("bpftrace exited before attaching ({status})");
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("bpftrace did not attach within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Box::new(move || interrupt(child, &out)))
}

/// One 64-byte user string per event: `syscalls:sys_enter_openat` in an `openat` loop.
/// (ftrace's syscall events keep the pointer only, and this host has neither kprobe events nor
/// event probes to fetch the string: that row is measured in the VM, [`strings_vm`].)
pub fn strings(workload: &Path, iterations: u64, runs: usize) -> anyhow::Result<Vec<Row>> {
    let load = Load {
        workload,
        mode: "openat",
        iterations,
        runs,
    };
    let tp = "tracepoint:syscalls:sys_enter_openat";
    interleaved(
        load,
        &mut [
            ("no program", &mut nothing),
            (
                "floor: pid + timestamp + the string's read, nothing else",
                &mut string_floor,
            ),
            (
                "snapshot: recording, no string (--string-size 0)",
                &mut |pid| recorder_on(pid, tp, "manual", 0),
            ),
            (
                "snapshot: recording + one 64-byte user string",
                &mut |pid| recorder_on(pid, tp, "manual", STRING_SIZE_DEFAULT),
            ),
            ("ftrace event (the pointer only)", &mut |pid| {
                ftrace_event(pid, "syscalls/sys_enter_openat")
            }),
            ("bpftrace: count()", &mut |pid| {
                bpftrace(
                    pid,
                    "tracepoint:syscalls:sys_enter_openat /pid == PID/ { @c = count(); }",
                )
            }),
            ("bpftrace: printf(\"%s\", str(filename))", &mut |pid| {
                bpftrace(
                    pid,
                    "tracepoint:syscalls:sys_enter_openat /pid == PID/ { printf(\"%s\\n\", str(args->filename)); }",
                )
            }),
        ],
    )
}

/// A kprobe event of ftrace on `do_sys_openat2` fetching the filename (`+0(%si):ustring`).
fn ftrace_kprobe_string(pid: u32) -> anyhow::Result<Box<dyn FnOnce() -> anyhow::Result<()>>> {
    tracefs::ensure_mounted()?;
    let t = Path::new(tracefs::TRACEFS);
    std::fs::OpenOptions::new()
        .append(true)
        .open(t.join("kprobe_events"))
        .and_then(|mut f| {
            std::io::Write::write_all(
                &mut f,
                b"p:snapbench/open do_sys_openat2 filename=+0(%si):ustring\n",
            )
        })
        .context("cannot add a kprobe event (this kernel needs CONFIG_KPROBE_EVENTS)")?;
    let teardown = ftrace_event(pid, "snapbench/open")?;
    Ok(Box::new(move || {
        teardown()?;
        write(&Path::new(tracefs::TRACEFS).join("kprobe_events"), "")
    }))
}

/// In the VM (kprobes): the string through ftrace's kprobe event and through this recorder's
/// kprobe, both on `do_sys_openat2` in an `openat` loop.
pub fn strings_vm(workload: &Path, iterations: u64, runs: usize) -> anyhow::Result<Vec<Row>> {
    let load = Load {
        workload,
        mode: "openat",
        iterations,
        runs,
    };
    interleaved(
        load,
        &mut [
            ("no program", &mut nothing),
            ("snapshot: kprobe do_sys_openat2(arg1:str)", &mut |pid| {
                recorder_on(pid, "kprobe:do_sys_openat2(arg1:str)", "manual", 64)
            }),
            (
                "ftrace kprobe event, +0(%si):ustring",
                &mut ftrace_kprobe_string,
            ),
        ],
    )
}
