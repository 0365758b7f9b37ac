//! Test workload with known behaviour, for the integration tests and the demo.
//!
//! `snapshot-workload calls N`: calls `snapshot_workload_fn(i, 2i, 3i)` for i in 1..=N
//! (a uprobe target), then exits.
//! `snapshot-workload close N BASE`: calls `close(BASE + i)` for i in 0..N on fds that are not
//! open (each fails with EBADF), a syscall whose argument is known exactly.
//! `snapshot-workload sleep-calls MS N`: sleeps MS milliseconds, then does `calls N`.
//! `snapshot-workload write N`: writes `1000 + i` bytes to /dev/null for i in 0..N.

use std::{io::Write as _, process::ExitCode};

/// The uprobe target: its arguments are what the test asserts.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn snapshot_workload_fn(a: u64, b: u64, c: u64) -> u64 {
    std::hint::black_box(a + b + c)
}

fn arg(args: &[String], i: usize, default: u64) -> Result<u64, String> {
    args.get(i).map_or(Ok(default), |s| {
        s.parse()
            .map_err(|_| format!("argument {i} `{s}` is not a number"))
    })
}

fn run(args: &[String]) -> Result<(), String> {
    match args.get(1).map(String::as_str) {
        Some("calls") => {
            for i in 1..=arg(args, 2, 10)? {
                snapshot_workload_fn(i, 2 * i, 3 * i);
            }
        }
        Some("close") => {
            let base = arg(args, 3, 100_000)?;
            for i in 0..arg(args, 2, 10)? {
                let fd = i32::try_from(base + i).map_err(|_| "fd out of range".to_owned())?;
                // SAFETY: closing an fd number that is not open only returns EBADF.
                unsafe { libc::close(fd) };
            }
        }
        Some("sleep-calls") => {
            std::thread::sleep(std::time::Duration::from_millis(arg(args, 2, 500)?));
            for i in 1..=arg(args, 3, 10)? {
                snapshot_workload_fn(i, 2 * i, 3 * i);
            }
        }
        Some("write") => {
            let mut null = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map_err(|e| e.to_string())?;
            let buf = vec![0u8; 4096];
            for i in 0..arg(args, 2, 10)? {
                null.write_all(&buf[..1000 + i as usize])
                    .map_err(|e| e.to_string())?;
            }
        }
        _ => {
            return Err(
                "usage: snapshot-workload calls N | sleep-calls MS N | close N BASE | write N"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapshot-workload: {e}");
            ExitCode::from(2)
        }
    }
}
