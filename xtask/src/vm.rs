//! `cargo xtask vm`: run a host command as root inside QEMU (TCG) on one of Debian's kernels,
//! with the host filesystem visible read-only (writes go to a throw-away overlay).
//!
//! Exit codes: the command's own; [`EXIT_TIMEOUT`], [`EXIT_BOOT`] or [`EXIT_PANIC`] when the
//! VM did not let it finish, each with an explanation on stderr.

use std::{
    ffi::OsString,
    io::{Read as _, Seek as _, SeekFrom},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    cmd, initramfs,
    kernels::{Kernel, series},
    paths,
};

/// The VM ran out of time.
pub const EXIT_TIMEOUT: i32 = 124;
/// The VM never ran the command (QEMU or the guest's init failed).
pub const EXIT_BOOT: i32 = 125;
/// The guest kernel panicked.
pub const EXIT_PANIC: i32 = 126;

/// Options of one VM run.
pub struct VmOptions {
    /// Kernel series (see [`SERIES`]).
    pub series: String,
    /// Seconds before the VM is killed.
    pub timeout: u64,
    /// Guest CPUs.
    pub smp: u32,
    /// Guest memory (QEMU syntax).
    pub memory: String,
    /// Host directory shared read-write at the same path.
    pub rw: Option<PathBuf>,
    /// Extra environment for the command.
    pub env: Vec<(String, String)>,
    /// Also keep a copy of the command's standard output here.
    pub stdout_copy: Option<PathBuf>,
    /// Put before each line of the command's output as it is copied to ours, so that the lines
    /// of VMs running at once can be told apart (`None`: copied as it comes).
    pub prefix: Option<String>,
    /// The command.
    pub command: Vec<OsString>,
}

/// `s` quoted for the guest's shell.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Environment variables passed from the host to the guest command.
pub(crate) const PASS_ENV: [&str; 5] = [
    "RUST_LOG",
    "RUST_BACKTRACE",
    "RUST_TEST_THREADS",
    "NO_COLOR",
    "SNAPSHOT_TEST_BREAK",
];

/// The guest's job: the environment, the working directory (`/` when the guest does not have
/// it) and `exec` of the command.
pub(crate) fn job_script(opts: &VmOptions, release: &str) -> anyhow::Result<String> {
    let mut s = String::from(
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb\n",
    );
    s.push_str(&format!("export SNAPSHOT_VM_KERNEL={}\n", quote(release)));
    for key in PASS_ENV {
        if let Ok(v) = std::env::var(key) {
            s.push_str(&format!("export {key}={}\n", quote(&v)));
        }
    }
    for (k, v) in &opts.env {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    let cwd = std::env::current_dir()?;
    s.push_str(&format!(
        "cd {} 2>/dev/null || cd /\n",
        quote(&cwd.to_string_lossy())
    ));
    let mut prog = opts
        .command
        .first()
        .context("no command given: usage `cargo xtask vm -- CMD ARGS…`")?
        .to_string_lossy()
        .into_owned();
    if prog.contains('/') {
        prog = std::fs::canonicalize(&prog)
            .with_context(|| format!("{prog} does not exist"))?
            .to_string_lossy()
            .into_owned();
    }
    s.push_str("exec ");
    s.push_str(&quote(&prog));
    for a in &opts.command[1..] {
        s.push(' ');
        s.push_str(&quote(&a.to_string_lossy()));
    }
    s.push('\n');
    Ok(s)
}

/// Copies what was appended to `file` since `pos` to `out` (our stdout or stderr). With a
/// `prefix`, only whole lines are copied, each after the prefix, until the `last` call, which
/// also copies an unfinished last line.
fn forward(
    file: &Path,
    pos: &mut u64,
    out: &mut dyn std::io::Write,
    prefix: Option<&str>,
    last: bool,
) {
    let Ok(mut f) = std::fs::File::open(file) else {
        return;
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(*pos)).is_err() || f.read_to_end(&mut buf).is_err() {
        return;
    }
    let Some(prefix) = prefix else {
        *pos += buf.len() as u64;
        let _ = out.write_all(&buf);
        let _ = out.flush();
        return;
    };
    let whole = if last {
        buf.len()
    } else {
        buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    };
    if whole == 0 {
        return;
    }
    *pos += whole as u64;
    let mut text = Vec::with_capacity(whole + 16);
    for line in buf[..whole].split_inclusive(|&b| b == b'\n') {
        text.extend_from_slice(prefix.as_bytes());
        text.extend_from_slice(line);
    }
    if text.last() != Some(&b'\n') {
        text.push(b'\n');
    }
    let _ = out.write_all(&text);
    let _ = out.flush();
}

/// `-accel` and `-cpu` for an `x86_64` guest.
fn accel() -> (&'static str, &'static str) {
    // /dev/kvm on this machine kind is PVM, which cannot boot a stock kernel: use TCG there.
    let kvm_usable = Path::new("/dev/kvm").exists() && !Path::new("/sys/module/kvm_pvm").exists();
    match std::env::var("SNAPSHOT_VM_ACCEL").as_deref() {
        Ok("kvm") => ("kvm", "host"),
        Ok("tcg") => ("tcg", "max"),
        _ if kvm_usable => ("kvm", "host"),
        _ => ("tcg", "max"),
    }
}

/// Boots the VM, runs the command, returns the exit code to use.
pub fn run(opts: &VmOptions) -> anyhow::Result<i32> {
    let kernel = Kernel::find(series(&opts.series)?.name)?;
    let vmdir = paths::cache().join("vm");
    std::fs::create_dir_all(&vmdir)?;
    let vmlinux = vmdir.join(format!("vmlinux-{}", kernel.release));
    let boot = if vmlinux.exists() || initramfs::extract_vmlinux(&kernel.vmlinuz, &vmlinux)? {
        vmlinux
    } else {
        kernel.vmlinuz.clone()
    };
    // The init script is part of the cache key, so changing it rebuilds the initramfs.
    let key = initramfs::INIT
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let initrd = vmdir.join(format!("initrd-{}-{key:08x}.cpio", kernel.release));
    if !initrd.exists() {
        let busybox = which("busybox").context("busybox not found: run `cargo xtask setup`")?;
        initramfs::build(&kernel.moddir, &busybox, &initrd)?;
    }
    let job = TempDir::new()?;
    std::fs::write(job.0.join("cmd"), job_script(opts, &kernel.release)?)?;
    let (accel, cpu) = accel();
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-m",
        &opts.memory,
        "-smp",
        &opts.smp.to_string(),
    ])
    .args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ])
    .arg("-kernel")
    .arg(&boot)
    .arg("-initrd")
    .arg(&initrd)
    .arg("-append")
    .arg("console=ttyS2 panic=-1 quiet loglevel=4")
    .arg("-serial")
    .arg(format!("file:{}", job.0.join("stdout").display()))
    .arg("-serial")
    .arg(format!("file:{}", job.0.join("stderr").display()))
    .arg("-serial")
    .arg(format!("file:{}", job.0.join("kernel.log").display()))
    .args([
        "-fsdev",
        "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
    ])
    .args(["-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot"])
    .arg("-fsdev")
    .arg(format!(
        "local,id=job,path={},security_model=none",
        job.0.display()
    ))
    .args(["-device", "virtio-9p-pci,fsdev=job,mount_tag=jobdir"])
    .stdin(Stdio::null());
    if let Some(rw) = &opts.rw {
        let rw = std::fs::canonicalize(rw)
            .with_context(|| format!("--rw {}: no such directory", rw.display()))?;
        std::fs::write(job.0.join("rwdir"), rw.to_string_lossy().as_bytes())?;
        qemu.arg("-fsdev")
            .arg(format!(
                "local,id=rwd,path={},security_model=none",
                rw.display()
            ))
            .args(["-device", "virtio-9p-pci,fsdev=rwd,mount_tag=rwdir"]);
    }
    let mut child = qemu.spawn().context("cannot start qemu-system-x86_64: run `cargo xtask setup` (it installs QEMU from bookworm-backports)")?;
    let timed_out = wait(&mut child, &job.0, opts)?;
    Ok(outcome(&job.0, &kernel.release, opts.timeout, timed_out))
}

/// Waits for QEMU (`child`, killed after `opts.timeout`) while copying the command's output from
/// the files `stdout` and `stderr` of the job directory `job` to ours as they grow; keeps a copy
/// of its stdout where `opts.stdout_copy` says. True when it timed out.
pub(crate) fn wait(child: &mut Child, job: &Path, opts: &VmOptions) -> anyhow::Result<bool> {
    let start = Instant::now();
    let (stdout_file, stderr_file) = (job.join("stdout"), job.join("stderr"));
    let (mut out_pos, mut err_pos) = (0, 0);
    let prefix = opts.prefix.as_deref();
    let mut pump = |last: bool| {
        forward(
            &stdout_file,
            &mut out_pos,
            &mut std::io::stdout(),
            prefix,
            last,
        );
        forward(
            &stderr_file,
            &mut err_pos,
            &mut std::io::stderr(),
            prefix,
            last,
        );
    };
    let timed_out = loop {
        pump(false);
        if child.try_wait()?.is_some() {
            break false;
        }
        if start.elapsed() > Duration::from_secs(opts.timeout) {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    pump(true);
    if let Some(copy) = &opts.stdout_copy {
        std::fs::copy(&stdout_file, copy)
            .with_context(|| format!("cannot copy the VM's output to {}", copy.display()))?;
    }
    Ok(timed_out)
}

/// The exit code of a finished VM run whose job directory is `job` (the command's `rc`, or why
/// there is none: a panic, a timeout, a boot failure, each explained in red with the tail of
/// `kernel.log`).
pub(crate) fn outcome(job: &Path, release: &str, timeout: u64, timed_out: bool) -> i32 {
    let klog = std::fs::read_to_string(job.join("kernel.log")).unwrap_or_default();
    let tail = |n: usize| {
        klog.lines()
            .rev()
            .take(n)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    if let Ok(rc) = std::fs::read_to_string(job.join("rc")) {
        return rc.trim().parse().unwrap_or(EXIT_BOOT);
    }
    if klog.contains("Kernel panic") {
        cmd::red(&format!(
            "vm: the guest kernel {release} panicked (exit {EXIT_PANIC}); kernel log tail:"
        ));
        eprintln!("{}", tail(40));
        return EXIT_PANIC;
    }
    if timed_out {
        let phase = if job.join("started").exists() {
            "the command did not finish"
        } else {
            "the guest did not finish booting"
        };
        cmd::red(&format!(
            "vm: timed out after {timeout} s: {phase} (exit {EXIT_TIMEOUT}); raise --timeout if it needs longer"
        ));
        eprintln!("{}", tail(20));
        return EXIT_TIMEOUT;
    }
    let why = std::fs::read_to_string(job.join("boot-error"))
        .unwrap_or_else(|_| "QEMU exited before the command ran".into());
    cmd::red(&format!(
        "vm: boot failure on {} (exit {EXIT_BOOT}): {}; kernel log tail:",
        release,
        why.trim()
    ));
    eprintln!("{}", tail(40));
    EXIT_BOOT
}

/// Finds `prog` on PATH.
#[must_use]
pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// A temporary directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let p = base.join(format!("snapshot-vm-{}-{n}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(Self(p));
            }
        }
        bail!("cannot create a temporary directory in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_output_is_copied_by_whole_lines() {
        let dir = TempDir::new().unwrap();
        let file = dir.0.join("out");
        std::fs::write(&file, "one\ntw").unwrap();
        let (mut pos, mut out) = (0, Vec::new());
        forward(&file, &mut pos, &mut out, Some("[k] "), false);
        assert_eq!(out, b"[k] one\n");
        std::fs::write(&file, "one\ntwo\nthr").unwrap();
        forward(&file, &mut pos, &mut out, Some("[k] "), false);
        forward(&file, &mut pos, &mut out, Some("[k] "), true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[k] one\n[k] two\n[k] thr\n"
        );
        let (mut pos, mut out) = (0, Vec::new());
        forward(&file, &mut pos, &mut out, None, false);
        assert_eq!(out, b"one\ntwo\nthr");
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
