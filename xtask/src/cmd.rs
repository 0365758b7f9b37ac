//! Running commands with their command line echoed and failures explained.

use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// Prints a step header.
pub fn step(msg: &str) {
    eprintln!("\x1b[1m==> {msg}\x1b[0m");
}

/// Prints an error line in red.
pub fn red(msg: &str) {
    eprintln!("\x1b[31;1m{msg}\x1b[0m");
}

/// Prints a success line in green.
pub fn green(msg: &str) {
    eprintln!("\x1b[32;1m{msg}\x1b[0m");
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited stdio; fails with the command line when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let line = describe(cmd);
    eprintln!("    $ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and captures its output; fails (showing stderr) when it fails.
pub fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    let line = describe(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Captured stdout as a trimmed string.
pub fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&output(cmd)?.stdout)
        .trim()
        .to_owned())
}

/// Runs `cmd` like [`run`], killing it (and its process group) after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: std::time::Duration) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let line = describe(cmd);
    eprintln!("    $ {line}");
    let mut child = cmd
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("`{line}` failed ({status})");
            }
            return Ok(());
        }
        if start.elapsed() > limit {
            // SAFETY: signalling the process group we created for the child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            bail!(
                "`{line}` did not finish within {} s: a test hangs (killed)",
                limit.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// True when running as root (loading eBPF programs and installing packages need it).
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Calls `f` on every item of `items`, `jobs` at a time (at least one), on scoped threads;
/// returns the results in `items`' order.
pub fn parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while let Some((i, item)) = {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    items.get(i).map(|item| (i, item))
                } {
                    let r = f(item);
                    done.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, r));
                }
            });
        }
    });
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod parallel_tests {
    #[test]
    fn parallel_keeps_the_order_and_runs_every_item_once() {
        let items: Vec<u32> = (0..37).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let out = super::parallel(&items, 3, |&x| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(calls.into_inner(), 37);
        assert!(super::parallel(&[] as &[u32], 2, |&x| x).is_empty());
    }
}
