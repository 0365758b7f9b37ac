//! `cargo xtask dist`: the static `snapshot` (musl, its eBPF object inside), its man pages,
//! shell completions and systemd unit, packaged as a tarball and as a `.deb` (built with
//! `dpkg-deb`, the tool cargo-deb drives too) into `target/dist`.
//!
//! The `.deb` installs under `/usr` (`/usr/bin/snapshot`, the unit in
//! `/usr/lib/systemd/system`); the tarball holds the same files relative to a prefix, for
//! `/usr/local`, its unit starting `/usr/local/bin/snapshot`. [`test`] installs the `.deb` into
//! a fresh Debian 13 root that has no Rust toolchain and records there (see [`root`]).

mod root;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

pub use root::{setup, setup_complete, test};

use crate::{
    arch::{self, Arch},
    build, cmd, cross, paths, setup as xsetup,
};

/// The systemd unit and the example of its configuration, in the repository.
#[must_use]
pub fn unit_dir() -> PathBuf {
    paths::workspace().join("snapshot-userspace/dist")
}

/// What `cargo xtask dist` wrote.
pub struct Packages {
    /// The `.deb`.
    pub deb: PathBuf,
    /// The `.tar.gz`.
    pub tarball: PathBuf,
    /// The package's version.
    pub version: String,
}

/// The version of snapshot-userspace (the `snapshot` binary's).
fn version() -> anyhow::Result<String> {
    let metadata = paths::metadata()?;
    metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "snapshot-userspace")
        .map(|p| p.version.to_string())
        .context("snapshot-userspace is not in the workspace")
}

/// One file of the package: its path under the prefix (`bin/snapshot`) and mode.
struct Entry {
    path: String,
    mode: u32,
    data: Vec<u8>,
}

/// Files written by `snapshot __generate` into `dir` (relative names).
fn read_dir_sorted(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?
            .to_owned();
        files.push((name, std::fs::read(&p)?));
    }
    files.sort();
    Ok(files)
}

/// gzip -9n (no name, no time: the same bytes every build), as Debian ships man pages.
fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    if !out.status.success() {
        bail!("gzip failed ({})", out.status);
    }
    Ok(out.stdout)
}

/// The package's files under `prefix` (`/usr` or `/usr/local`): the binary, the man pages, the
/// completions, the unit (starting `<prefix>/bin/snapshot`) and the docs.
fn entries(
    binary: &Path,
    man: &Path,
    completions: &Path,
    prefix: &str,
) -> anyhow::Result<Vec<Entry>> {
    let file = |path: String, mode, data| Entry { path, mode, data };
    let mut out = vec![file(
        "bin/snapshot".into(),
        0o755,
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?,
    )];
    for (name, data) in read_dir_sorted(man)? {
        out.push(file(
            format!("share/man/man1/{name}.gz"),
            0o644,
            gzip(&data)?,
        ));
    }
    let completions: Vec<(String, Vec<u8>)> = read_dir_sorted(completions)?;
    for (name, data) in completions {
        let dest = match name.as_str() {
            "snapshot.bash" => "share/bash-completion/completions/snapshot",
            "_snapshot" if prefix == "/usr" => "share/zsh/vendor-completions/_snapshot",
            "_snapshot" => "share/zsh/site-functions/_snapshot",
            "snapshot.fish" => "share/fish/vendor_completions.d/snapshot.fish",
            other => {
                bail!("unexpected completion file {other}: teach `cargo xtask dist` where it goes")
            }
        };
        out.push(file(dest.into(), 0o644, data));
    }
    let unit_path = unit_dir().join("snapshot.service");
    let unit = std::fs::read_to_string(&unit_path)
        .with_context(|| format!("cannot read {}", unit_path.display()))?;
    out.push(file(
        "lib/systemd/system/snapshot.service".into(),
        0o644,
        unit_for_prefix(&unit, prefix)?.into_bytes(),
    ));
    out.push(file(
        "share/doc/snapshot/examples/snapshot.default".into(),
        0o644,
        std::fs::read(unit_dir().join("snapshot.default"))?,
    ));
    out.push(file(
        "share/doc/snapshot/copyright".into(),
        0o644,
        copyright().into_bytes(),
    ));
    out.push(file(
        "share/doc/snapshot/README.md".into(),
        0o644,
        std::fs::read(paths::workspace().join("README.md"))?,
    ));
    Ok(out)
}

/// The unit with its `ExecStart` binary under `prefix`.
fn unit_for_prefix(unit: &str, prefix: &str) -> anyhow::Result<String> {
    if !unit.contains("/usr/bin/snapshot ") {
        bail!("snapshot.service does not start /usr/bin/snapshot: update `cargo xtask dist`");
    }
    Ok(unit.replace("/usr/bin/snapshot ", &format!("{prefix}/bin/snapshot ")))
}

fn copyright() -> String {
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
     Upstream-Name: snapshot\n\n\
     Files: *\n\
     Copyright: the snapshot controller developers\n\
     License: MIT or Apache-2.0\n \
     On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.\n"
        .to_owned()
}

/// `DEBIAN/control`.
fn control(version: &str, arch: Arch, installed_kib: u64) -> String {
    format!(
        "Package: snapshot\n\
         Version: {version}\n\
         Architecture: {}\n\
         Maintainer: Snapshot controller developers <snapshot@localhost>\n\
         Installed-Size: {installed_kib}\n\
         Section: devel\n\
         Priority: optional\n\
         Description: flight recorder for the Linux kernel built on eBPF\n \
         Keeps the last events of a process (kprobes, tracepoints, fentry/fexit,\n \
         uprobes) in per-CPU buffers and freezes them into a snapshot file the\n \
         instant a trigger condition checked in the kernel is met, without stopping\n \
         the trace. Static binary: no dependencies, its eBPF object inside.\n",
        arch.debian()
    )
}

/// Writes `entries` under `root/<prefix>`, with their modes.
fn stage(root: &Path, prefix: &str, entries: &[Entry]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for e in entries {
        let dest = root.join(prefix.trim_start_matches('/')).join(&e.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, &e.data)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(e.mode))?;
    }
    Ok(())
}

/// `md5sum` lines of `entries` under `prefix` (dpkg's `DEBIAN/md5sums`).
fn md5sums(staging: &Path, prefix: &str, entries: &[Entry]) -> anyhow::Result<String> {
    let mut c = Command::new("md5sum");
    c.current_dir(staging);
    for e in entries {
        c.arg(format!("{}/{}", prefix.trim_start_matches('/'), e.path));
    }
    cmd::stdout(&mut c).map(|s| s + "\n")
}

/// A fresh, empty directory.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Builds the static binary for `arch`, the docs, and both packages.
pub fn run(arch: Arch) -> anyhow::Result<Packages> {
    xsetup::ensure()?;
    let bin = cross::binaries(arch)?.join("snapshot");
    // Man pages and completions come from the clap definitions, through a binary this machine
    // runs: the static one when it is this machine's architecture.
    let generator = if arch == Arch::host() {
        bin.clone()
    } else {
        build::binaries(false)?.join("snapshot")
    };
    let dist = paths::target()?.join("dist");
    let version = version()?;
    let name = format!("snapshot_{version}_{}", arch.debian());
    let work = dist.join(format!("{name}.work"));
    fresh_dir(&work)?;
    let (man, completions) = (work.join("man"), work.join("completions"));
    cmd::stdout(
        Command::new(&generator)
            .arg("__generate")
            .arg("--man")
            .arg(&man)
            .arg("--completions")
            .arg(&completions),
    )?;

    cmd::step(&format!("dist: .deb for {}", arch.debian()));
    let files = entries(&bin, &man, &completions, "/usr")?;
    let staging = work.join("deb");
    stage(&staging, "/usr", &files)?;
    let installed: u64 = files
        .iter()
        .map(|e| e.data.len() as u64)
        .sum::<u64>()
        .div_ceil(1024);
    std::fs::create_dir_all(staging.join("DEBIAN"))?;
    std::fs::write(
        staging.join("DEBIAN/control"),
        control(&version, arch, installed),
    )?;
    std::fs::write(
        staging.join("DEBIAN/md5sums"),
        md5sums(&staging, "/usr", &files)?,
    )?;
    let deb = dist.join(format!("{name}.deb"));
    cmd::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&staging)
            .arg(&deb),
    )?;

    cmd::step(&format!("dist: tarball for {arch} (prefix /usr/local)"));
    let top = format!("snapshot-{version}-{arch}-linux");
    let files = entries(&bin, &man, &completions, "/usr/local")?;
    let tree = work.join("tar");
    stage(&tree.join(&top), "", &files)?;
    let mut install = String::new();
    let _ = writeln!(
        install,
        "snapshot {version} for {arch} Linux: a static binary (no dependencies) with its eBPF \
         object inside.\n\nInstall into /usr/local:\n    sudo tar -xzf {top}.tar.gz -C /usr/local \
         --strip-components=1 --no-same-owner\n\nThen `snapshot --version`, `man snapshot`; \
         the service: share/doc/snapshot/examples/snapshot.default and \
         lib/systemd/system/snapshot.service.\n"
    );
    std::fs::write(tree.join(&top).join("INSTALL"), install)?;
    let tarball = dist.join(format!("{top}.tar.gz"));
    cmd::run(
        Command::new("tar")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-czf",
            ])
            .arg(&tarball)
            .arg("-C")
            .arg(&tree)
            .arg(&top),
    )?;
    std::fs::remove_dir_all(&work)?;
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64 / f64::from(1 << 20);
    cmd::green(&format!(
        "dist: {} ({:.1} MiB) and {} ({:.1} MiB)",
        deb.display(),
        size(&deb),
        tarball.display(),
        size(&tarball)
    ));
    eprintln!(
        "install on a Debian or Ubuntu host: sudo dpkg -i {}\nelsewhere: sudo tar -xzf {} -C /usr/local --strip-components=1 --no-same-owner",
        deb.display(),
        tarball.display()
    );
    // The binary packaged is the one checked (static, for `arch`, its eBPF object inside).
    arch::check_static_binary(&bin, arch)?;
    Ok(Packages {
        deb,
        tarball,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_starts_the_binary_of_its_prefix() {
        let unit = std::fs::read_to_string(unit_dir().join("snapshot.service")).unwrap();
        let local = unit_for_prefix(&unit, "/usr/local").unwrap();
        assert!(
            local.contains("exec /usr/local/bin/snapshot record"),
            "{local}"
        );
        assert!(!local.contains(" /usr/bin/snapshot"), "{local}");
        assert!(unit_for_prefix("ExecStart=/bin/true", "/usr").is_err());
    }

    #[test]
    fn the_unit_is_what_the_issue_asks_for() {
        let unit = std::fs::read_to_string(unit_dir().join("snapshot.service")).unwrap();
        for line in [
            "User=root",
            "Restart=on-failure",
            "StateDirectory=snapshot",
            "StateDirectoryMode=0700",
            "--out /var/lib/snapshot",
            "CapabilityBoundingSet=CAP_BPF CAP_PERFMON",
        ] {
            assert!(unit.contains(line), "snapshot.service lacks `{line}`");
        }
    }

    #[test]
    fn control_names_the_debian_architecture() {
        let c = control("1.2.3", Arch::Aarch64, 4096);
        assert!(c.contains("Architecture: arm64\n"), "{c}");
        assert!(c.contains("Version: 1.2.3\n") && c.contains("Installed-Size: 4096\n"));
        // Every continuation line of the description starts with a space.
        let desc = c.split("Description: ").nth(1).unwrap();
        assert!(desc.lines().skip(1).all(|l| l.starts_with(' ')), "{c}");
    }
}
