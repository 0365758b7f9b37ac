//! The guest's initramfs: busybox-static, the modules for virtio-9p and overlayfs (with their
//! dependencies, in load order), and an init script. Written as an uncompressed newc cpio.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// Modules the guest needs, loaded after their dependencies.
const WANT: [&str; 4] = ["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// Serial port layout: ttyS0 = command stdout, ttyS1 = command stderr, ttyS2 = kernel console.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev; mount -t proc proc /proc; mount -t sysfs sys /sys
die() { echo "vm-init: $*" > /dev/ttyS2; echo "vm-init: $*" > /job/boot-error 2>/dev/null; poweroff -f; }
for m in $(cat /mod/order); do insmod /mod/$m.ko || die "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 jobdir /job || die "cannot mount the job directory"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose hostroot /mnt/lower || die "cannot mount the host root"
mount -t tmpfs -o mode=755 rw /mnt/rw && mkdir -p /mnt/rw/u /mnt/rw/w
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/u,workdir=/mnt/rw/w root /mnt/root || die "cannot mount the overlay"
R=/mnt/root
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
mount -t tracefs tracefs $R/sys/kernel/tracing
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t bpf bpf $R/sys/fs/bpf
mount -t tmpfs run $R/run
if [ -s /job/rwdir ]; then
  d=$(cat /job/rwdir)
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 rwdir /rwdir || die "cannot mount the read-write directory"
  mkdir -p "$R$d" && mount --bind /rwdir "$R$d"
fi
mkdir -p $R/run/vmjob && mount --bind /job $R/run/vmjob
for t in /dev/ttyS0 /dev/ttyS1; do stty -F $t raw -echo 2>/dev/null; done
echo started > /job/started
chroot $R /bin/sh /run/vmjob/cmd </dev/null >/dev/ttyS0 2>/dev/ttyS1
echo $? > /job/rc
sync
poweroff -f
"#;

/// Reads a module file, decompressing `.ko.xz` / `.ko.zst` / `.ko.gz`.
fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some(("xz", "-dc"))
    } else if name.ends_with(".zst") {
        Some(("zstd", "-qdc"))
    } else if name.ends_with(".gz") {
        Some(("gzip", "-dc"))
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).with_context(|| format!("cannot read {}", path.display())),
        Some((prog, flag)) => {
            let out = Command::new(prog)
                .arg(flag)
                .arg(path)
                .output()
                .with_context(|| {
                    format!("cannot run {prog} (install it with `cargo xtask setup`)")
                })?;
            if !out.status.success() {
                bail!("{prog} {flag} {} failed", path.display());
            }
            Ok(out.stdout)
        }
    }
}

/// The `depends=` list from a module's modinfo.
#[must_use]
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    ko.split(|&b| b == 0)
        .find_map(|s| s.strip_prefix(b"depends="))
        .map(|d| {
            String::from_utf8_lossy(d)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn find_module(moddir: &Path, name: &str) -> Option<PathBuf> {
    let alt = name.replace('_', "-");
    let mut stack = vec![moddir.join("kernel")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.filter_map(Result::ok) {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(file) = p.file_name().and_then(|f| f.to_str()) {
                let stem = file.split(".ko").next().unwrap_or("");
                if file.contains(".ko") && (stem == name || stem == alt) {
                    return Some(p);
                }
            }
        }
    }
    None
}

struct Modules<'a> {
    moddir: &'a Path,
    builtin: String,
    order: Vec<(String, Vec<u8>)>,
}

impl Modules<'_> {
    fn add(&mut self, name: &str) -> anyhow::Result<()> {
        if self.order.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        let Some(path) = find_module(self.moddir, name) else {
            let alt = name.replace('_', "-");
            if self
                .builtin
                .lines()
                .any(|l| l.ends_with(&format!("/{name}.ko")) || l.ends_with(&format!("/{alt}.ko")))
            {
                return Ok(());
            }
            bail!(
                "module {name} not found in {} (and not built in)",
                self.moddir.display()
            );
        };
        let ko = read_module(&path)?;
        for dep in module_depends(&ko) {
            self.add(&dep)?;
        }
        self.order.push((name.to_owned(), ko));
        Ok(())
    }
}

/// newc cpio writer.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            namesize,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

/// Builds the initramfs for the modules in `moddir` into `dest` (atomically).
pub fn build(moddir: &Path, busybox: &Path, dest: &Path) -> anyhow::Result<()> {
    let dirs = [
        "bin",
        "dev",
        "proc",
        "sys",
        "mod",
        "mnt",
        "mnt/lower",
        "mnt/rw",
        "mnt/root",
        "job",
        "rwdir",
    ];
    build_with(moddir, busybox, dest, &WANT, INIT, &dirs)
}

/// Builds an initramfs into `dest` (atomically): `busybox` as `/bin/busybox`, the modules
/// `want` (with their dependencies, in load order, listed in `/mod/order`) from `moddir`,
/// `init` as `/init`, and the directories `dirs`.
pub fn build_with(
    moddir: &Path,
    busybox: &Path,
    dest: &Path,
    want: &[&str],
    init: &str,
    dirs: &[&str],
) -> anyhow::Result<()> {
    let builtin = std::fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default();
    let mut mods = Modules {
        moddir,
        builtin,
        order: Vec::new(),
    };
    for m in want {
        mods.add(m)?;
    }
    let bb = std::fs::read(busybox).with_context(|| {
        format!(
            "cannot read {}: install busybox-static with `cargo xtask setup`",
            busybox.display()
        )
    })?;
    let mut cpio = Cpio {
        out: Vec::new(),
        ino: 0,
    };
    for dir in dirs {
        cpio.entry(dir, 0o040_755, &[], (0, 0));
    }
    cpio.entry("dev/console", 0o020_600, &[], (5, 1));
    cpio.entry("bin/busybox", 0o100_755, &bb, (0, 0));
    cpio.entry("init", 0o100_755, init.as_bytes(), (0, 0));
    let order: Vec<&str> = mods.order.iter().map(|(n, _)| n.as_str()).collect();
    cpio.entry(
        "mod/order",
        0o100_644,
        format!("{}\n", order.join(" ")).as_bytes(),
        (0, 0),
    );
    for (name, ko) in &mods.order {
        cpio.entry(&format!("mod/{name}.ko"), 0o100_644, ko, (0, 0));
    }
    cpio.entry("TRAILER!!!", 0, &[], (0, 0));
    let tmp = dest.with_extension("tmp");
    std::fs::File::create(&tmp)?.write_all(&cpio.out)?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// Extracts the uncompressed ELF vmlinux from a bzImage (boots about twice as fast under TCG:
/// PVH entry, no in-guest decompression). Returns false when no payload decompresses to ELF.
pub fn extract_vmlinux(bzimage: &Path, dest: &Path) -> anyhow::Result<bool> {
    let data =
        std::fs::read(bzimage).with_context(|| format!("cannot read {}", bzimage.display()))?;
    let formats: [(&[u8], &str, &[&str]); 3] = [
        (b"\xfd7zXZ\x00", "xz", &["-dc", "--single-stream"]),
        (b"\x28\xb5\x2f\xfd", "zstd", &["-qdc"]),
        (b"\x1f\x8b\x08", "gzip", &["-dc"]),
    ];
    for (magic, prog, args) in formats {
        let mut start = 0;
        while let Some(i) = data[start..].windows(magic.len()).position(|w| w == magic) {
            let at = start + i;
            start = at + 1;
            let mut child = Command::new(prog)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .with_context(|| format!("cannot run {prog}"))?;
            let mut stdin = child.stdin.take().context("no stdin")?;
            let payload = data[at..].to_vec();
            let writer = std::thread::spawn(move || {
                let _ = stdin.write_all(&payload);
            });
            let out = child.wait_with_output()?;
            let _ = writer.join();
            if out.stdout.starts_with(b"\x7fELF") {
                let tmp = dest.with_extension("tmp");
                std::fs::write(&tmp, &out.stdout)?;
                std::fs::rename(&tmp, dest)?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_module_dependencies() {
        let ko = b"\x7fELF....\0license=GPL\0depends=9pnet,netfs\0intree=Y\0";
        assert_eq!(module_depends(ko), ["9pnet", "netfs"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
    }

    #[test]
    fn cpio_entries_are_aligned() {
        let mut c = Cpio {
            out: Vec::new(),
            ino: 0,
        };
        c.entry("init", 0o100_755, b"abc", (0, 0));
        assert_eq!(c.out.len() % 4, 0);
        assert!(c.out.starts_with(b"070701"));
    }
}
