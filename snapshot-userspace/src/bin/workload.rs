//! Test workload with known behaviour, for the integration tests and the demo.
//!
//! `snapshot-workload calls N`: calls `snapshot_workload_fn(i, 2i, 3i)` for i in 1..=N
//! (a uprobe target), then exits.
//! `snapshot-workload close N BASE [MS]`: calls `close(BASE + i)` for i in 0..N on fds that are
//! not open (each fails with EBADF), a syscall whose argument is known exactly; then sleeps MS.
//! `snapshot-workload sleep-calls MS N`: sleeps MS milliseconds, then does `calls N`.
//! `snapshot-workload calls-sleep N MS`: `calls N`, then sleeps MS milliseconds.
//! `snapshot-workload seq-threads TOTAL PERIOD`: two pinned threads, distinct sequence numbers,
//! every PERIOD-th call with arg1 = 1 (a trigger).
//! `snapshot-workload pairs ROUNDS GAP_MS`: two pinned threads call with arg1 = 1 at the same
//! moment, ROUNDS times.
//! `snapshot-workload fileio N EVERY`: N rounds of small-file I/O; every EVERY-th round also
//! reads from a write-only file (fails with EBADF). The demo's workload.
//! `snapshot-workload getpid N [EVERY]`: N getpid syscalls (and a getppid every EVERY), prints
//! the ns per call. `getpid-threads N`: the same on two pinned threads, prints events/s.
//! `snapshot-workload openat N`: N `openat` of a 64-byte path that does not exist, prints the
//! ns per call.
//! `snapshot-workload threads-calls MS N`: two threads each sleep MS then call N times.
//! `snapshot-workload named NAME MS N`: renames itself NAME, sleeps MS, calls N times.
//! `snapshot-workload fork-tree`: a parent, child and grandchild each call once (arg0 = depth).
//! `snapshot-workload calls-gap N MS`: N calls with arg1 = 1 (a trigger), MS apart.
//! `snapshot-workload call A B C`: one call with those arguments.
//! `snapshot-workload call-seq MS A,B,C…`: one call per triple, MS apart, each after a line
//! `call A boot_ns N wall_ns N` (the clocks just before it).
//! `snapshot-workload timed-sleeps MS…`: `snapshot_workload_sleep(MS)` for each (a uprobe
//! target that sleeps), printing `slept_ns N` as measured around each call.
//! `snapshot-workload eagain N`: N reads from an empty non-blocking pipe (each fails with
//! EAGAIN).
//! `snapshot-workload naps MS…`: sleeps (`clock_nanosleep`) for each duration in turn.
//! `snapshot-workload write N`: writes `1000 + i` bytes to /dev/null for i in 0..N.
//! `snapshot-workload strings SIZE`: for each of the strings `""`, `SIZE` bytes (`/xxx…`),
//! `SIZE + 1` bytes (`/yyy…`), non-ASCII bytes ([`NON_ASCII`]) and a NULL pointer: calls
//! `snapshot_workload_str(s, s, len)` (a uprobe target), then `openat(AT_FDCWD, s, O_RDONLY)`
//! (which fails); then writes [`WRITTEN`] to /dev/null.
//! `snapshot-workload str TEXT`: one `snapshot_workload_str(TEXT, TEXT, len)`.
//! `snapshot-workload str-threads TOTAL PERIOD`: two pinned threads call
//! `snapshot_workload_str(SEQ, SEQ, SEQ)` for distinct SEQs, every PERIOD-th text ending in `!`.
//! `snapshot-workload segfault [MS]`: sleeps MS, then `snapshot_workload_segfault` writes
//! through a null pointer (address 16: dies of SIGSEGV). `snapshot-workload abort [MS]`: sleeps MS, then
//! `snapshot_workload_abort` calls `abort()` (dies of SIGABRT).
//! `snapshot-workload signal-self SIG`: installs a handler for signal number SIG, sends it to
//! itself (`kill`), and exits once the handler ran.
//! `snapshot-workload oom MB`: allocates and touches MB mebibytes, 1 MiB at a time (in a
//! memory cgroup smaller than that, the OOM killer takes it).
//! `snapshot-workload soak SECONDS PERIOD_MS BURST`: for `SECONDS`, every `PERIOD_MS`: `BURST`
//! getpid syscalls, then one getppid (the soak's trigger); then prints `getpid N getppid M`, the
//! exact counts (`cargo xtask soak` checks the recorder's accounting against them).

use std::{io::Write as _, process::ExitCode};

/// The uprobe target: its arguments are what the test asserts.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn snapshot_workload_fn(a: u64, b: u64, c: u64) -> u64 {
    std::hint::black_box(a.wrapping_add(b).wrapping_add(c))
}

/// A uprobe target that takes a known time: sleeps `ms` milliseconds, returns `ms`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn snapshot_workload_sleep(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    std::hint::black_box(ms)
}

/// Dies of SIGSEGV here: the faulting function a crash snapshot's user stack names.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn snapshot_workload_segfault(addr: usize) -> u64 {
    let p = std::hint::black_box(addr) as *mut u64;
    // SAFETY: none: the write faults on purpose (`addr` is in the unmapped first page), killing the process. A plain
    // store, not a call, so that the faulting instruction is in this function.
    unsafe { *p = 1 };
    std::hint::black_box(0)
}

/// Dies of SIGABRT from here, as `abort()` does (`tgkill` of its own thread with SIGABRT),
/// with the system call made in this function: glibc's `abort` has no frame pointers, so a
/// user stack walked from inside it does not reach its caller.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn snapshot_workload_abort() -> u64 {
    // SAFETY: getpid/gettid have no preconditions.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the tgkill system call (number 234 on x86-64) with SIGABRT for this thread; it
    // clobbers rcx and r11 as every syscall does. SIGABRT's default action kills the process.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") 234i64 => _,
            in("rdi") i64::from(pid),
            in("rsi") i64::from(tid),
            in("rdx") i64::from(libc::SIGABRT),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    std::process::abort()
}

static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Handles signal `sig`, sends it to this process, waits (up to 10 s) for the handler.
fn signal_self(sig: u64) -> anyhow::Result<()> {
    let sig = libc::c_int::try_from(sig)?;
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: installs an async-signal-safe handler (one atomic store).
    if unsafe { libc::signal(sig, handler as libc::sighandler_t) } == libc::SIG_ERR {
        anyhow::bail!(
            "cannot handle signal {sig}: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a signal to this process, which handles it.
    if unsafe { libc::kill(libc::getpid(), sig) } != 0 {
        anyhow::bail!("kill: {}", std::io::Error::last_os_error());
    }
    let start = std::time::Instant::now();
    while !SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        anyhow::ensure!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the handler did not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(())
}

/// Allocates and touches `mb` MiB, 1 MiB at a time, keeping all of it.
fn oom(mb: u64) {
    let mut kept = Vec::new();
    for _ in 0..mb {
        let mut chunk = vec![0u8; 1 << 20];
        for b in chunk.iter_mut().step_by(4096) {
            *b = 1;
        }
        kept.push(std::hint::black_box(chunk));
    }
    println!("allocated {mb} MiB");
}

fn clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `A,B,C`: the three arguments of one call.
fn triple(text: &str) -> anyhow::Result<[u64; 3]> {
    let parts: Vec<u64> = text
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("`{text}` is not A,B,C with three numbers"))?;
    parts
        .try_into()
        .map_err(|_| anyhow::anyhow!("`{text}` is not A,B,C with three numbers"))
}

/// The uprobe target of `strings`: a string, the same bytes as a buffer, and their length.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn snapshot_workload_str(s: *const libc::c_char, buf: *const u8, len: u64) -> u64 {
    std::hint::black_box((s, buf));
    std::hint::black_box(len)
}

/// The non-ASCII string of `strings`: UTF-8 (`é`) and a byte that is not UTF-8.
pub const NON_ASCII: &[u8] = b"/tmp/caf\xc3\xa9-\xff";
/// What `strings` writes to /dev/null: a NUL and a newline inside.
pub const WRITTEN: &[u8] = b"hello\n\0world";

/// Runs `each(thread, seq)` on two threads pinned to CPUs 0 and 1 for `total` distinct
/// sequence numbers (even on thread 0, odd on thread 1).
fn on_two_cpus(total: u64, each: fn(u64, u64) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            std::thread::spawn(move || -> anyhow::Result<()> {
                pin(t as usize)?;
                for seq in (t..total).step_by(2) {
                    each(t, seq)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(())
}

/// The trigger period of `seq-threads` and `str-threads` (read by their worker threads).
static STR_PERIOD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);

/// Two threads pinned to CPUs 0 and 1 call `snapshot_workload_str(seq as text, …, seq)` for
/// `total` distinct sequence numbers; every `period`-th text ends in `!` (a trigger).
fn str_threads(total: u64, period: u64) -> anyhow::Result<()> {
    STR_PERIOD.store(period.max(1), std::sync::atomic::Ordering::Relaxed);
    on_two_cpus(total, |_, seq| {
        let period = STR_PERIOD.load(std::sync::atomic::Ordering::Relaxed);
        let bang = if seq % period == period - 1 { "!" } else { "" };
        let text = std::ffi::CString::new(format!("{seq}{bang}"))?;
        snapshot_workload_str(text.as_ptr(), text.as_ptr().cast(), seq);
        Ok(())
    })
}

/// `strings SIZE`: the strings of the capture tests, through a uprobe target and `openat`.
fn strings(size: usize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let exact = format!("/{}", "x".repeat(size.saturating_sub(1)));
    let longer = format!("/{}", "y".repeat(size));
    let cases: [Option<&[u8]>; 5] = [
        Some(b""),
        Some(exact.as_bytes()),
        Some(longer.as_bytes()),
        Some(NON_ASCII),
        None,
    ];
    for case in cases {
        let owned = case.map(std::ffi::CString::new).transpose()?;
        let ptr = owned.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        let len = case.map_or(0, <[u8]>::len) as u64;
        snapshot_workload_str(ptr, ptr.cast(), len);
        // SAFETY: `ptr` is NULL or a NUL-terminated string that outlives the call; opening a
        // path that does not exist (or NULL) only fails.
        let fd = unsafe { libc::openat(libc::AT_FDCWD, ptr, libc::O_RDONLY) };
        if fd >= 0 {
            // SAFETY: closing the fd just opened.
            unsafe { libc::close(fd) };
        }
    }
    let mut null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    null.write_all(WRITTEN)?;
    Ok(())
}

fn arg(args: &[String], i: usize, default: u64) -> anyhow::Result<u64> {
    args.get(i).map_or(Ok(default), |s| {
        s.parse()
            .map_err(|_| anyhow::anyhow!("argument {i} `{s}` is not a number"))
    })
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) != 0 {
            anyhow::bail!(
                "cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Two threads pinned to CPUs 0 and 1 call `snapshot_workload_fn(seq, fire, thread)` for
/// `total` distinct sequence numbers (even on thread 0, odd on thread 1); `fire` is 1 when
/// `seq % period == period - 1`.
fn seq_threads(total: u64, period: u64) -> anyhow::Result<()> {
    STR_PERIOD.store(period.max(1), std::sync::atomic::Ordering::Relaxed);
    on_two_cpus(total, |t, seq| {
        let period = STR_PERIOD.load(std::sync::atomic::Ordering::Relaxed);
        snapshot_workload_fn(seq, u64::from(seq % period == period - 1), t);
        Ok(())
    })
}

/// `rounds` times: two threads pinned to CPUs 0 and 1 meet at a spinning barrier (both are
/// on CPU, so they leave it within nanoseconds of each other) and call
/// `snapshot_workload_fn(round, 1, thread)` at the same moment, then wait `gap_ms`.
fn pairs(rounds: u64, gap_ms: u64) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let arrived = std::sync::Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let arrived = arrived.clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                pin(t as usize)?;
                for round in 0..rounds {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    while arrived.load(Ordering::SeqCst) < 2 * (round + 1) {
                        std::hint::spin_loop();
                    }
                    snapshot_workload_fn(round, 1, t);
                    std::thread::sleep(std::time::Duration::from_millis(gap_ms));
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(())
}

/// The demo's workload: `iterations` rounds of writing and reading back a small file; every
/// `fail_every`-th round also reads from a file opened write-only, which fails (EBADF).
fn fileio(iterations: u64, fail_every: u64) -> anyhow::Result<()> {
    use std::io::Read as _;
    let dir = std::env::temp_dir().join(format!("snapshot-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut buf = Vec::new();
    for i in 0..iterations {
        let path = dir.join(format!("file-{}", i % 8));
        std::fs::write(&path, format!("round {i}\n").repeat(16))?;
        buf.clear();
        std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut buf))?;
        if fail_every != 0 && i % fail_every == fail_every - 1 {
            // The rare failure the demo's trigger catches: a read that fails.
            let mut wronly = std::fs::OpenOptions::new().write(true).open(&path)?;
            let _ = wronly.read(&mut [0u8; 16]);
        }
    }
    Ok(std::fs::remove_dir_all(&dir)?)
}

fn now_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

/// `n` getpid syscalls (a getppid every `every`, 0 = never); prints `ns_per_op X`.
fn getpid_loop(n: u64, every: u64) {
    let start = now_ns();
    for i in 0..n {
        // SAFETY: getpid has no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getpid) };
        if every != 0 && i % every == every - 1 {
            // SAFETY: as above.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
    }
    let elapsed = now_ns() - start;
    println!("ns_per_op {:.1}", elapsed as f64 / n.max(1) as f64);
}

/// The 64-byte path of `openat`: it does not exist (the walk stops at its first component).
pub const OPENAT_PATH: &str = "/snapshot-bench-nonexistent/0123456789abcdef0123456789abcdef.txt";
const _: () = assert!(OPENAT_PATH.len() == 64);

/// `n` `openat(AT_FDCWD, OPENAT_PATH, O_RDONLY)` calls (each fails with ENOENT); prints
/// `ns_per_op X`.
fn openat_loop(n: u64) -> anyhow::Result<()> {
    let path = std::ffi::CString::new(OPENAT_PATH)?;
    let start = now_ns();
    for _ in 0..n {
        // SAFETY: a NUL-terminated path; the call fails (no such file) and opens nothing.
        unsafe { libc::openat(libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY) };
    }
    let elapsed = now_ns() - start;
    println!("ns_per_op {:.1}", elapsed as f64 / n.max(1) as f64);
    Ok(())
}

/// `soak SECONDS PERIOD_MS BURST`: see the file's documentation.
fn soak(seconds: u64, period_ms: u64, burst: u64) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let (mut getpid, mut getppid) = (0u64, 0u64);
    while std::time::Instant::now() < end {
        for _ in 0..burst {
            // SAFETY: getpid has no arguments and cannot fail.
            unsafe { libc::syscall(libc::SYS_getpid) };
        }
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_getppid) };
        getpid += burst;
        getppid += 1;
        std::thread::sleep(std::time::Duration::from_millis(period_ms));
    }
    println!("getpid {getpid} getppid {getppid}");
}

/// Two threads pinned to CPUs 0 and 1, `n` getpid syscalls each; prints `events_per_s X`.
fn getpid_threads(n: u64) -> anyhow::Result<()> {
    let start = now_ns();
    let threads: Vec<_> = (0..2usize)
        .map(|cpu| {
            std::thread::spawn(move || -> anyhow::Result<()> {
                pin(cpu)?;
                for _ in 0..n {
                    // SAFETY: getpid has no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getpid) };
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let elapsed = now_ns() - start;
    println!(
        "events_per_s {:.0}",
        2.0 * n as f64 * 1e9 / elapsed.max(1) as f64
    );
    Ok(())
}

/// The main thread and a second thread each sleep `ms`, then call the function `n` times
/// (the main thread with arg2 = 0, the other with arg2 = 1).
fn threads_calls(ms: u64, n: u64) -> anyhow::Result<()> {
    let other = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        for i in 1..=n {
            snapshot_workload_fn(i, 0, 1);
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(ms));
    for i in 1..=n {
        snapshot_workload_fn(i, 0, 0);
    }
    other.join().map_err(|_| anyhow::anyhow!("thread panicked"))
}

/// Calls the function with arg0 = `depth`, then (up to depth 2) forks a child that does the
/// same one level deeper, and waits for it: a parent, a child and a grandchild.
fn fork_tree(depth: u64) {
    snapshot_workload_fn(depth, 100 + depth, 0);
    if depth >= 2 {
        return;
    }
    // SAFETY: the process is single-threaded here; the child only calls async-signal-safe
    // functions and plain code before exiting with _exit.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            fork_tree(depth + 1);
            libc::_exit(0);
        }
        if pid > 0 {
            let mut status = 0;
            libc::waitpid(pid, &raw mut status, 0);
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    match args.get(1).map(String::as_str) {
        Some("calls") => {
            for i in 1..=arg(args, 2, 10)? {
                snapshot_workload_fn(i, 2 * i, 3 * i);
            }
        }
        Some("close") => {
            let base = arg(args, 3, 100_000)?;
            for i in 0..arg(args, 2, 10)? {
                let fd = i32::try_from(base + i).map_err(|_| anyhow::anyhow!("fd out of range"))?;
                // SAFETY: closing an fd number that is not open only returns EBADF.
                unsafe { libc::close(fd) };
            }
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 4, 0)?));
        }
        Some("sleep-calls") => {
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 2, 500)?));
            for i in 1..=arg(args, 3, 10)? {
                snapshot_workload_fn(i, 2 * i, 3 * i);
            }
        }
        Some("calls-sleep") => {
            for i in 1..=arg(args, 2, 10)? {
                snapshot_workload_fn(i, 2 * i, 3 * i);
            }
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 3, 1000)?));
        }
        Some("seq-threads") => seq_threads(arg(args, 2, 100_000)?, arg(args, 3, 1000)?)?,
        Some("pairs") => pairs(arg(args, 2, 10)?, arg(args, 3, 50)?)?,
        Some("fileio") => fileio(arg(args, 2, 2000)?, arg(args, 3, 500)?)?,
        Some("getpid") => getpid_loop(arg(args, 2, 1_000_000)?, arg(args, 3, 0)?),
        Some("getpid-threads") => getpid_threads(arg(args, 2, 1_000_000)?)?,
        Some("openat") => openat_loop(arg(args, 2, 100_000)?)?,
        Some("open-notdir") => {
            // An openat failing with ENOTDIR (nothing else in a run fails so), on the main
            // thread or on a second one; then the main thread sleeps MS and exits (exit_group).
            let open = || {
                // SAFETY: a NUL-terminated path; the call fails and opens nothing.
                unsafe { libc::open(c"/proc/self/exe/not-a-dir".as_ptr(), libc::O_RDONLY) }
            };
            match args.get(2).map(String::as_str) {
                Some("main") => open(),
                Some("thread") => std::thread::spawn(open)
                    .join()
                    .map_err(|_| anyhow::anyhow!("thread panicked"))?,
                _ => anyhow::bail!("usage: open-notdir main|thread MS"),
            };
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 3, 0)?));
        }
        Some("stat-notdir") => {
            // A stat failing with ENOTDIR (`vfs_statx`, which returns `int` on every kernel).
            let err = std::fs::metadata("/proc/self/exe/not-a-dir")
                .expect_err("a path under a regular file does not exist");
            anyhow::ensure!(
                err.raw_os_error() == Some(libc::ENOTDIR),
                "stat-notdir: expected ENOTDIR, got {err}"
            );
        }
        Some("threads-calls") => threads_calls(arg(args, 2, 300)?, arg(args, 3, 5)?)?,
        Some("named") => {
            let name = args
                .get(2)
                .ok_or_else(|| anyhow::anyhow!("usage: named NAME MS N"))?;
            let cname = std::ffi::CString::new(name.as_str())?;
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
            unsafe { libc::prctl(libc::PR_SET_NAME, cname.as_ptr()) };
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 3, 300)?));
            for i in 1..=arg(args, 4, 5)? {
                snapshot_workload_fn(i, 2 * i, 3 * i);
            }
        }
        Some("fork-tree") => fork_tree(arg(args, 2, 0)?),
        Some("calls-gap") => {
            for i in 1..=arg(args, 2, 6)? {
                snapshot_workload_fn(i, 1, 0);
                std::thread::sleep(std::time::Duration::from_millis(arg(args, 3, 50)?));
            }
        }
        Some("naps") => {
            for ms in &args[2..] {
                let ms = ms
                    .parse()
                    .map_err(|_| anyhow::anyhow!("nap `{ms}` is not a number of milliseconds"))?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
        Some("call") => {
            snapshot_workload_fn(arg(args, 2, 0)?, arg(args, 3, 0)?, arg(args, 4, 0)?);
        }
        Some("call-seq") => {
            let gap = std::time::Duration::from_millis(arg(args, 2, 0)?);
            for call in &args[3..] {
                let [a, b, c] = triple(call)?;
                // The clocks just before the call, for the tests' clock checks.
                println!(
                    "call {a} boot_ns {} wall_ns {}",
                    clock(libc::CLOCK_BOOTTIME),
                    clock(libc::CLOCK_REALTIME)
                );
                snapshot_workload_fn(a, b, c);
                std::thread::sleep(gap);
            }
        }
        Some("timed-sleeps") => {
            for ms in &args[2..] {
                let ms = ms
                    .parse()
                    .map_err(|_| anyhow::anyhow!("`{ms}` is not a number of milliseconds"))?;
                let start = clock(libc::CLOCK_MONOTONIC);
                snapshot_workload_sleep(ms);
                println!("slept_ns {}", clock(libc::CLOCK_MONOTONIC) - start);
            }
        }
        Some("eagain") => {
            let mut fds = [0; 2];
            // SAFETY: pipe2 fills two fds.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) } != 0 {
                anyhow::bail!("pipe2: {}", std::io::Error::last_os_error());
            }
            let mut buf = [0u8; 8];
            for _ in 0..arg(args, 2, 1)? {
                // SAFETY: reading into a valid buffer from our own empty non-blocking pipe:
                // it fails with EAGAIN.
                unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
            }
        }
        Some("write") => {
            let mut null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
            let buf = vec![0u8; 4096];
            for i in 0..arg(args, 2, 10)? {
                null.write_all(&buf[..1000 + i as usize])?;
            }
        }
        Some("strings") => strings(arg(args, 2, 64)? as usize)?,
        Some("str-threads") => str_threads(arg(args, 2, 100_000)?, arg(args, 3, 1000)?)?,
        Some("str") => {
            let text = args.get(2).map_or("", String::as_str);
            let owned = std::ffi::CString::new(text)?;
            snapshot_workload_str(owned.as_ptr(), owned.as_ptr().cast(), text.len() as u64);
        }
        Some("segfault") => {
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 2, 0)?));
            snapshot_workload_segfault(16);
        }
        Some("abort") => {
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 2, 0)?));
            snapshot_workload_abort();
        }
        Some("signal-self") => signal_self(arg(args, 2, 15)?)?,
        Some("oom") => oom(arg(args, 2, 256)?),
        Some("soak") => soak(arg(args, 2, 60)?, arg(args, 3, 2)?, arg(args, 4, 50)?),
        _ => {
            anyhow::bail!(
                "usage: snapshot-workload segfault [MS] | abort [MS] | signal-self SIG | oom MB | soak SECONDS PERIOD_MS BURST | calls N | call-seq MS A,B,C… | timed-sleeps MS… | eagain N | sleep-calls MS N | calls-sleep N MS | seq-threads TOTAL PERIOD | pairs ROUNDS GAP_MS | fileio N EVERY | getpid N [EVERY] | getpid-threads N | threads-calls MS N | named NAME MS N | fork-tree | calls-gap N MS | call A B C | naps MS… | close N BASE [MS] | write N | strings SIZE | str TEXT | str-threads TOTAL PERIOD | openat N | open-notdir main|thread MS | stat-notdir"
            );
        }
    }
    Ok(())
}

/// With this variable set to paths (`:`-separated), the workload first waits (up to 120 s) for
/// each to exist: tests point it at a recorder's pid file, so that the calls start once the
/// probes are attached, however long that takes on a loaded machine.
const WAIT_FOR: &str = "SNAPSHOT_WORKLOAD_WAIT_FOR";
/// With this variable set to a path, the workload creates that file once its calls are done:
/// another workload can wait for it (`WAIT_FOR`), so that both run while one recorder does.
const DONE: &str = "SNAPSHOT_WORKLOAD_DONE";

fn wait_for(paths: &std::ffi::OsStr) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    for path in std::env::split_paths(paths) {
        while !path.exists() {
            anyhow::ensure!(
                start.elapsed() < std::time::Duration::from_secs(120),
                "{} did not appear within 120 s",
                path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let waited = std::env::var_os(WAIT_FOR).map_or(Ok(()), |p| wait_for(&p));
    let done = |()| {
        std::env::var_os(DONE).map_or(Ok(()), |p| {
            std::fs::write(&p, b"")
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))
        })
    };
    match waited.and_then(|()| run(&args)).and_then(done) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapshot-workload: {e:#}");
            ExitCode::from(2)
        }
    }
}
