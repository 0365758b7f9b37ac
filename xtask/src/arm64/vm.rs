//! `cargo xtask vm --arch aarch64`: a command run as root in QEMU's `virt` machine (TCG) on one
//! of Debian's arm64 kernels, with the exit codes and messages of [`crate::vm`].
//!
//! The host's `/` (`x86_64`) cannot be the guest's root: the root is an initramfs holding
//! Debian's static arm64 busybox, and the workspace and its target directory are shared over 9p
//! read-only at their own paths (with `--rw DIR` read-write), so a static aarch64 build of the
//! tools runs there as it is. The command's stdout and stderr leave through two virtio serial
//! ports into files that are copied to ours as they grow; the kernel console goes to the PL011
//! UART, kept for the messages of a failed run.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::{Kernel, busybox, series};
use crate::{
    arch::{self, Arch},
    initramfs, paths,
    vm::{self, TempDir, VmOptions},
};

/// Modules the guest loads, after their dependencies (`virtio_pci` and `virtio_console` are
/// modules on 6.1 and built in on 6.12).
const WANT: [&str; 4] = ["virtio_pci", "virtio_console", "9pnet_virtio", "9p"];

/// Directories of the initramfs.
const DIRS: [&str; 8] = ["bin", "dev", "proc", "sys", "mod", "job", "tmp", "run"];

/// The guest's init. `/job/shares` lists the host directories to mount (`TAG MODE PATH` per
/// line, parents first); the command's stdout and stderr are the virtio ports named `stdout`
/// and `stderr`.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev; mount -t proc proc /proc; mount -t sysfs sys /sys
die() { echo "vm-init: $*" > /dev/ttyAMA0; echo "vm-init: $*" > /job/boot-error 2>/dev/null; poweroff -f; }
for m in $(cat /mod/order); do insmod /mod/$m.ko || die "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 jobdir /job || die "cannot mount the job directory"
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
while read -r tag mode dir; do
  case $mode in ro) opts=ro,cache=loose ;; *) opts=rw ;; esac
  mkdir -p "$dir" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,$opts "$tag" "$dir" || die "cannot mount $dir from the host"
done < /job/shares
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
for p in /sys/class/virtio-ports/*; do ln -s "/dev/${p##*/}" "/dev/port-$(cat "$p/name")"; done
[ -c /dev/port-stdout ] && [ -c /dev/port-stderr ] || die "the virtio ports for stdout and stderr are missing"
echo started > /job/started
sh /job/cmd </dev/null >/dev/port-stdout 2>/dev/port-stderr
echo $? > /job/rc
sync
poweroff -f
"#;

/// The host directories the guest sees at their own paths, parents first: the workspace and
/// its target directory read-only, `rw` read-write.
fn shares(rw: Option<&Path>) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).with_context(|| format!("{}: no such directory", p.display()))
    };
    let workspace = canonical(&paths::workspace())?;
    let mut list = vec![(workspace.clone(), false)];
    let target = paths::target()?;
    if target.exists() {
        let target = canonical(&target)?;
        if !target.starts_with(&workspace) {
            list.push((target, false));
        }
    }
    if let Some(rw) = rw {
        let rw = canonical(rw).with_context(|| format!("--rw {}", rw.display()))?;
        list.push((rw, true));
    }
    list.sort_by_key(|(p, _)| p.components().count());
    Ok(list)
}

/// Refuses, before booting, a command the guest could not run: a path outside the shared
/// directories, or an executable for another architecture. A name without `/` is looked up
/// in the guest's PATH (busybox).
fn check_command(program: &Path, shares: &[(PathBuf, bool)]) -> anyhow::Result<()> {
    if !program.to_string_lossy().contains('/') {
        return Ok(());
    }
    let path = std::fs::canonicalize(program)
        .with_context(|| format!("{} does not exist", program.display()))?;
    if !shares.iter().any(|(dir, _)| path.starts_with(dir)) {
        let dirs: Vec<String> = shares
            .iter()
            .map(|(d, _)| d.display().to_string())
            .collect();
        bail!(
            "{} is outside what the arm64 guest sees ({}): put it under the workspace, or share its directory with --rw",
            path.display(),
            dirs.join(", ")
        );
    }
    let head = std::fs::read(&path)
        .map(|d| d.into_iter().take(4096).collect::<Vec<u8>>())
        .with_context(|| format!("cannot read {}", path.display()))?;
    if let Some(info) = arch::elf_info(&head)
        && info.machine != Arch::Aarch64.elf_machine()
    {
        let is = Arch::from_elf_machine(info.machine)
            .map_or_else(|| format!("machine {}", info.machine), |a| a.to_string());
        bail!(
            "{} is an {is} executable: the guest is aarch64; build it with `cargo xtask build --arch aarch64`",
            path.display()
        );
    }
    Ok(())
}

/// `-cpu` for the guest: `max` with QEMU's own pointer authentication algorithm, much cheaper
/// under TCG than the architected QARMA one (Debian's arm64 kernels sign every return address).
fn cpu() -> String {
    std::env::var("SNAPSHOT_VM_CPU").unwrap_or_else(|_| "max,pauth-impdef=on".into())
}

/// Boots the arm64 VM, runs the command, returns the exit code to use.
pub fn run(opts: &VmOptions) -> anyhow::Result<i32> {
    let series = series(&opts.series)?;
    let kernel = Kernel::find(series.name)?;
    let shares = shares(opts.rw.as_deref())?;
    let program = opts
        .command
        .first()
        .context("no command given: usage `cargo xtask vm --arch aarch64 -- CMD ARGS…`")?;
    check_command(Path::new(program), &shares)?;
    let vmdir = super::cache().join("vm");
    std::fs::create_dir_all(&vmdir)?;
    // The init script is part of the cache key, so changing it rebuilds the initramfs.
    let key = INIT
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let initrd = vmdir.join(format!("initrd-{}-{key:08x}.cpio", kernel.release));
    if !initrd.exists() {
        initramfs::build_with(&kernel.moddir, &busybox()?, &initrd, &WANT, INIT, &DIRS)?;
    }
    let job = TempDir::new()?;
    std::fs::write(job.0.join("cmd"), vm::job_script(opts, &kernel.release)?)?;
    let mut qemu = Command::new("qemu-system-aarch64");
    qemu.args(["-M", "virt", "-accel", "tcg", "-cpu", &cpu()])
        .args(["-m", &opts.memory, "-smp", &opts.smp.to_string()])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyAMA0 panic=-1 quiet loglevel=4"])
        .arg("-serial")
        .arg(format!("file:{}", job.0.join("kernel.log").display()))
        .args(["-device", "virtio-serial-pci,id=vs"]);
    for (nr, name) in [(1, "stdout"), (2, "stderr")] {
        qemu.arg("-chardev")
            .arg(format!(
                "file,id={name},path={}",
                job.0.join(name).display()
            ))
            .arg("-device")
            .arg(format!(
                "virtserialport,bus=vs.0,nr={nr},chardev={name},name={name}"
            ));
    }
    let mut share = |tag: &str, path: &Path, writable: bool| {
        let ro = if writable { "" } else { ",readonly=on" };
        qemu.arg("-fsdev")
            .arg(format!(
                "local,id={tag},path={},security_model=none{ro}",
                path.display()
            ))
            .arg("-device")
            .arg(format!("virtio-9p-pci,fsdev={tag},mount_tag={tag}"));
    };
    share("jobdir", &job.0, true);
    let mut list = String::new();
    for (n, (dir, writable)) in shares.iter().enumerate() {
        let tag = format!("share{n}");
        share(&tag, dir, *writable);
        let mode = if *writable { "rw" } else { "ro" };
        list.push_str(&format!("{tag} {mode} {}\n", dir.display()));
    }
    std::fs::write(job.0.join("shares"), list)?;
    qemu.stdin(Stdio::null());
    let mut child = qemu.spawn().context(
        "cannot start qemu-system-aarch64: run `cargo xtask setup` (it installs qemu-system-arm from bookworm-backports)",
    )?;
    let timed_out = vm::wait(&mut child, &job.0, opts)?;
    Ok(vm::outcome(
        &job.0,
        &kernel.release,
        opts.timeout,
        timed_out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_the_guest_cannot_run_are_refused_before_booting() {
        let dir = std::env::temp_dir().join(format!("xtask-arm64-vm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shares = vec![(dir.clone(), false)];
        // A name is looked up in the guest.
        check_command(Path::new("uname"), &shares).unwrap();
        // A script or an aarch64 executable under a shared directory runs.
        std::fs::write(dir.join("script"), "#!/bin/sh\ntrue\n").unwrap();
        check_command(&dir.join("script"), &shares).unwrap();
        // An x86_64 executable does not.
        let own = std::env::current_exe().unwrap();
        let copy = dir.join("x86");
        std::fs::copy(&own, &copy).unwrap();
        let err = format!("{:#}", check_command(&copy, &shares).unwrap_err());
        assert!(
            err.contains("is an x86_64 executable") && err.contains("--arch aarch64"),
            "{err}"
        );
        // Nor does anything outside the shared directories.
        let err = format!("{:#}", check_command(&own, &shares).unwrap_err());
        assert!(err.contains("outside what the arm64 guest sees"), "{err}");
        let err = format!(
            "{:#}",
            check_command(&dir.join("missing"), &shares).unwrap_err()
        );
        assert!(err.contains("does not exist"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shares_are_the_workspace_read_only_and_rw_writable_parents_first() {
        let rw = std::env::temp_dir();
        let list = shares(Some(&rw)).unwrap();
        let workspace = std::fs::canonicalize(paths::workspace()).unwrap();
        assert!(list.contains(&(workspace, false)), "{list:?}");
        assert!(list.contains(&(std::fs::canonicalize(&rw).unwrap(), true)));
        let depths: Vec<usize> = list.iter().map(|(p, _)| p.components().count()).collect();
        assert!(depths.is_sorted(), "{list:?}");
        let err = format!("{:#}", shares(Some(Path::new("/no/such/dir"))).unwrap_err());
        assert!(err.contains("--rw /no/such/dir"), "{err}");
    }
}
