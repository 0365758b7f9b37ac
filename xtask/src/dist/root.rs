//! The `.deb`'s install test: a fresh Debian 13 (trixie) root, made once by `debootstrap
//! --variant=minbase` (no Rust toolchain, no compiler) and kept as a tarball in the cache, is
//! unpacked anew for every test; `dpkg -i` installs the package there, and through `chroot`
//! `snapshot --version` runs and a tracepoint recording takes a snapshot, under the
//! capability bounding set of the package's systemd unit.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{apt, arch::Arch, cmd, paths};

/// Debian 13.
const SUITE: &str = "trixie";

/// The pristine root, as a tarball.
fn pristine() -> PathBuf {
    paths::cache().join("dist/debian13-minbase.tar")
}

/// True when debootstrap and the pristine root are there.
#[must_use]
pub fn setup_complete() -> bool {
    apt::installed("debootstrap") && pristine().is_file()
}

/// Setup's step: debootstrap, and the Debian 13 root made once with it.
pub fn setup(refresh: bool) -> anyhow::Result<()> {
    cmd::step("Debian 13 root for the package test (debootstrap --variant=minbase trixie)");
    if setup_complete() {
        eprintln!("    present: {}", pristine().display());
        return Ok(());
    }
    if !cmd::is_root() {
        bail!(
            "setup must run debootstrap into {} and needs root: run `sudo -E cargo xtask setup`",
            pristine().display()
        );
    }
    if !apt::installed("debootstrap") {
        apt::Apt::open(refresh)?.install(&["debootstrap"], None)?;
    }
    let mirrors = apt::system_mirrors()?;
    let build = pristine().with_extension("build");
    if build.exists() {
        std::fs::remove_dir_all(&build)
            .with_context(|| format!("cannot clear {}", build.display()))?;
    }
    std::fs::create_dir_all(&build)?;
    cmd::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", "--keyring"])
            .arg(&mirrors.keyring)
            .arg(SUITE)
            .arg(&build)
            .arg(&mirrors.main),
    )
    .context("debootstrap of Debian 13 failed (its log: debootstrap/debootstrap.log in the root being built)")?;
    let tmp = pristine().with_extension("tmp");
    cmd::run(
        Command::new("tar")
            .args(["--numeric-owner", "-cf"])
            .arg(&tmp)
            .arg("-C")
            .arg(&build)
            .arg("."),
    )?;
    std::fs::rename(&tmp, pristine())?;
    std::fs::remove_dir_all(&build)?;
    eprintln!("    made: {}", pristine().display());
    Ok(())
}

/// A root unpacked from the pristine tarball, with the file systems mounted in it; unmounted
/// and removed on drop (never removed while anything is still mounted under it).
struct Root {
    dir: PathBuf,
    mounts: Vec<PathBuf>,
}

/// The mount points under `dir` (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

impl Root {
    fn unpack(dir: PathBuf) -> anyhow::Result<Self> {
        if !mounts_under(&dir).is_empty() {
            bail!(
                "{} still has file systems mounted from an earlier run: unmount them (`umount -R {}`) and run again",
                dir.display(),
                dir.display()
            );
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        cmd::run(
            Command::new("tar")
                .args(["--numeric-owner", "-xf"])
                .arg(pristine())
                .arg("-C")
                .arg(&dir),
        )?;
        Ok(Self {
            dir,
            mounts: Vec::new(),
        })
    }

    fn mount(&mut self, fstype: &str, at: &str) -> anyhow::Result<()> {
        let target = self.dir.join(at);
        std::fs::create_dir_all(&target)?;
        cmd::run(
            Command::new("mount")
                .args(["-t", fstype, fstype])
                .arg(&target),
        )?;
        self.mounts.push(target);
        Ok(())
    }

    /// `chroot ROOT ARGS…`, captured.
    fn chroot(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new("chroot")
            .arg(&self.dir)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .output()
            .with_context(|| format!("cannot run chroot {}", self.dir.display()))
    }

    /// Like [`Self::chroot`], failing with its output unless it succeeds.
    fn chroot_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        eprintln!("    $ chroot {} {}", self.dir.display(), args.join(" "));
        let out = self.chroot(args)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!(
                "`{}` failed in the Debian 13 root ({}):\n{text}",
                args.join(" "),
                out.status
            );
        }
        Ok(text)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // What we mounted, and what the recorder mounted under it (securityfs, to read the
        // lockdown mode): every mount under the root, the latest first.
        for m in self.mounts.iter().rev() {
            for under in mounts_under(m).iter().rev() {
                let _ = Command::new("umount").arg(under).status();
            }
        }
        let left = mounts_under(&self.dir);
        if left.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            cmd::red(&format!(
                "dist test: {} is left in place: still mounted there: {left:?}",
                self.dir.display()
            ));
        }
    }
}

/// The unit's `CapabilityBoundingSet` as setpriv's `--bounding-set` (`-all,+bpf,…`).
fn bounding_set(unit: &str) -> anyhow::Result<String> {
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .context("snapshot.service has no CapabilityBoundingSet")?;
    let mut set = String::from("-all");
    for cap in caps.split_whitespace() {
        let name = cap
            .strip_prefix("CAP_")
            .with_context(|| format!("`{cap}` in CapabilityBoundingSet is not a capability"))?;
        set.push_str(",+");
        set.push_str(&name.to_lowercase());
    }
    Ok(set)
}

/// Files the package must have installed, relative to the root.
const INSTALLED: [&str; 8] = [
    "usr/bin/snapshot",
    "usr/share/man/man1/snapshot.1.gz",
    "usr/share/man/man1/snapshot-record.1.gz",
    "usr/share/bash-completion/completions/snapshot",
    "usr/share/zsh/vendor-completions/_snapshot",
    "usr/share/fish/vendor_completions.d/snapshot.fish",
    "usr/lib/systemd/system/snapshot.service",
    "usr/share/doc/snapshot/examples/snapshot.default",
];

/// The dist layer of `cargo xtask test`: packages this machine's architecture, installs the
/// `.deb` into a fresh Debian 13 root and records there. Returns the summary's note.
pub fn test() -> anyhow::Result<String> {
    if !cmd::is_root() {
        bail!(
            "the package test installs into a chroot and loads eBPF programs: run `sudo -E cargo xtask test`"
        );
    }
    let pkgs = super::run(Arch::host())?;
    let listed = cmd::stdout(Command::new("tar").arg("-tzf").arg(&pkgs.tarball))?;
    for f in [
        "bin/snapshot",
        "share/man/man1/snapshot.1.gz",
        "lib/systemd/system/snapshot.service",
        "INSTALL",
    ] {
        if !listed.lines().any(|l| l.ends_with(&format!("/{f}"))) {
            bail!("{} lacks {f}", pkgs.tarball.display());
        }
    }
    cmd::step("dist test: the .deb in a fresh Debian 13 root (no Rust toolchain), through chroot");
    let mut root = Root::unpack(paths::target()?.join("dist/debian13-root"))?;
    let os = std::fs::read_to_string(root.dir.join("etc/os-release")).unwrap_or_default();
    if !os.contains("VERSION_ID=\"13\"") {
        bail!(
            "the root from {} is not Debian 13:\n{os}",
            pristine().display()
        );
    }
    for tool in ["cargo", "rustc", "rustup", "cc", "gcc"] {
        let found = root.chroot(&["sh", "-c", &format!("command -v {tool}")])?;
        if found.status.success() {
            bail!(
                "the Debian 13 root has `{tool}` ({}): it must have no toolchain; remove {} and run `cargo xtask setup`",
                String::from_utf8_lossy(&found.stdout).trim(),
                pristine().display()
            );
        }
    }
    eprintln!("    no cargo, rustc, rustup, cc or gcc in the root");
    let deb_name = pkgs.deb.file_name().context("deb name")?;
    std::fs::copy(&pkgs.deb, root.dir.join("tmp").join(deb_name))?;
    let deb_in_root = format!("/tmp/{}", deb_name.to_string_lossy());
    root.chroot_ok(&["dpkg", "-i", &deb_in_root])?;
    for f in INSTALLED {
        if !root.dir.join(f).is_file() {
            bail!("the package did not install /{f}");
        }
    }
    let version = root.chroot_ok(&["snapshot", "--version"])?;
    if version.trim() != format!("snapshot {}", pkgs.version) {
        bail!(
            "`snapshot --version` printed `{}`, not `snapshot {}`",
            version.trim(),
            pkgs.version
        );
    }
    eprintln!("    {}", version.trim());
    root.mount("proc", "proc")?;
    root.mount("sysfs", "sys")?;
    root.mount("tracefs", "sys/kernel/tracing")?;
    let unit = std::fs::read_to_string(root.dir.join("usr/lib/systemd/system/snapshot.service"))?;
    let caps = bounding_set(&unit)?;
    let out = "/var/lib/snapshot-test";
    let record = root.chroot_ok(&[
        "setpriv",
        "--bounding-set",
        &caps,
        "--",
        "snapshot",
        "record",
        "--out",
        out,
        "--probe",
        "tracepoint:syscalls:sys_enter_openat",
        "--probe",
        "tracepoint:syscalls:sys_exit_openat",
        "--trigger",
        "sys_exit_openat.ret == -ENOENT",
        "--max-snapshots",
        "1",
        "--",
        "cat",
        "/no/such/file/for/snapshot",
    ])?;
    let listing = root.chroot_ok(&["snapshot", "list", out])?;
    let Some(file) = listing
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().next())
    else {
        bail!("the recording in the Debian 13 root wrote no snapshot:\n{record}");
    };
    let shown = root.chroot_ok(&["snapshot", "show", &format!("{out}/{file}")])?;
    if !shown.contains("sys_exit_openat")
        || !shown.contains("/no/such/file/for/snapshot") && !shown.contains("-2")
    {
        bail!("the snapshot taken in the Debian 13 root does not show the failed openat:\n{shown}");
    }
    Ok(format!(
        "{} installed in Debian 13, recorded under the unit's capabilities",
        deb_name.to_string_lossy()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_capabilities_become_setprivs_bounding_set() {
        let unit = "[Service]\nCapabilityBoundingSet=CAP_BPF CAP_SYS_ADMIN\n";
        assert_eq!(bounding_set(unit).unwrap(), "-all,+bpf,+sys_admin");
        assert!(bounding_set("[Service]\n").is_err());
        assert!(bounding_set("CapabilityBoundingSet=BPF\n").is_err());
    }

    #[test]
    fn mounts_are_found_by_prefix() {
        assert!(!mounts_under(Path::new("/")).is_empty());
        assert!(mounts_under(Path::new("/no/such/dir")).is_empty());
    }
}
