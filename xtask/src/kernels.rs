//! The Debian kernels the VM layer boots: which ones, where they come from, how setup fetches
//! and unpacks them (never installing them), and how `cargo xtask vm` finds them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::{apt, paths};

/// A Debian kernel the project tests on: where it comes from and how its package is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    /// What `--kernel` takes (`5.10`, `6.1`, `6.12`, `sid`).
    pub name: &'static str,
    /// Where the package comes from (for messages).
    pub source: &'static str,
    /// How the package is chosen.
    pub pick: Pick,
}

/// How a series' kernel package is chosen from the apt lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Exactly this package: the series gets no more builds, so the VM results stay
    /// reproducible.
    Pinned(&'static str),
    /// The newest `linux-image-<version>.*-amd64` that `linux-image-amd64` depends on: a
    /// supported suite replaces the package with every security update and drops the old one,
    /// so a pin would break setup.
    Newest(&'static str),
    /// The kernel of the newest `linux-image-amd64` of all (Debian unstable): it moves every
    /// few weeks. Setup records the one it unpacked (`sid.package`) and prints it; later runs
    /// keep it until `cargo xtask setup --refresh`.
    Latest,
}

/// The kernels the VM layer runs on, oldest first.
///
/// * 5.10 (Debian 11 bullseye): no BPF atomic exchange (5.12) nor `bpf_get_func_ip` (5.15),
///   the oldest kernel the recorder supports. Bullseye's LTS ended in August 2026: its last
///   build, 5.10.262-1 from bullseye-security (newer than the 11.11 point release's
///   5.10.223-1), is pinned. Still on deb.debian.org; setup falls back to archive.debian.org
///   when the system's mirror no longer has bullseye.
/// * 6.1 (Debian 12 bookworm) and 6.12 (bookworm-backports, Debian 13's kernel): newest build.
/// * sid: the newest Debian kernel (7.2 in November 2026), split into `linux-binary-X`
///   (vmlinuz under `usr/lib/modules/X/`), `linux-modules-X` and `linux-base-X` (config,
///   System.map, modules.builtin) since 7.x; all three are unpacked into one tree.
pub const SERIES: [Series; 4] = [
    Series {
        name: "5.10",
        source: "bullseye-security",
        pick: Pick::Pinned("linux-image-5.10.0-46-amd64"),
    },
    Series {
        name: "6.1",
        source: "bookworm",
        pick: Pick::Newest("6.1"),
    },
    Series {
        name: "6.12",
        source: "bookworm-backports",
        pick: Pick::Newest("6.12"),
    },
    Series {
        name: "sid",
        source: "sid",
        pick: Pick::Latest,
    },
];

/// The series `--kernel NAME` means: its name, or the release series of the kernel unpacked
/// for it (`7.2` for today's sid). Unknown names are refused with the valid ones.
pub fn series(name: &str) -> anyhow::Result<Series> {
    if let Some(s) = SERIES.iter().find(|s| s.name == name) {
        return Ok(*s);
    }
    for s in SERIES {
        if let Ok(k) = Kernel::find(s.name)
            && k.series() == name
        {
            return Ok(s);
        }
    }
    let valid: Vec<&str> = SERIES.iter().map(|s| s.name).collect();
    bail!(
        "unknown kernel series `{name}`: use one of {} (sid's also by its version once setup unpacked it)",
        valid.join(", ")
    )
}

/// An unpacked kernel.
pub struct Kernel {
    /// `uname -r` of the kernel.
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// Its modules.
    pub moddir: PathBuf,
}

/// File naming the package unpacked for `series`.
#[must_use]
pub fn pointer(series: &str) -> PathBuf {
    paths::kernels().join(format!("{series}.package"))
}

/// Finds the kernel image and module directory in an unpacked tree: `boot/vmlinuz-R` with
/// `lib/modules/R` (up to 6.x), or `usr/lib/modules/R/vmlinuz` (the split packages of 7.x).
fn locate(root: &Path) -> Option<(String, PathBuf, PathBuf)> {
    let entries = |dir: PathBuf| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    for image in entries(root.join("boot")) {
        let Some(release) = image
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix("vmlinuz-"))
        else {
            continue;
        };
        for modules in ["lib/modules", "usr/lib/modules"] {
            let moddir = root.join(modules).join(release);
            if moddir.is_dir() {
                return Some((release.to_owned(), image.clone(), moddir));
            }
        }
    }
    for modules in ["usr/lib/modules", "lib/modules"] {
        for moddir in entries(root.join(modules)) {
            let image = moddir.join("vmlinuz");
            let release = moddir.file_name().and_then(|f| f.to_str());
            if let (true, Some(release)) = (image.is_file(), release) {
                return Some((release.to_owned(), image, moddir.clone()));
            }
        }
    }
    None
}

impl Kernel {
    /// Finds the kernel unpacked for `series` by `cargo xtask setup`.
    pub fn find(series: &str) -> anyhow::Result<Self> {
        let pkg = std::fs::read_to_string(pointer(series)).with_context(|| {
            format!("kernel {series} is not unpacked yet: run `cargo xtask setup`")
        })?;
        let root = paths::kernels().join(pkg.trim());
        let (release, vmlinuz, moddir) = locate(&root).with_context(|| {
            format!(
                "no kernel image with its modules in {} (boot/vmlinuz-R with lib/modules/R, or usr/lib/modules/R/vmlinuz): run `cargo xtask setup` again",
                root.display()
            )
        })?;
        Ok(Self {
            release,
            vmlinuz,
            moddir,
        })
    }

    /// The release's series: `5.10.0-46-amd64` → `5.10`, `7.2.13+deb14-amd64` → `7.2`.
    #[must_use]
    pub fn series(&self) -> String {
        self.release
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The setup step: unpacks each series' kernel that is not there yet into the cache, and
/// says which one each series uses. `refresh` moves sid to the newest kernel. `apt` opens the
/// private apt configuration on first use.
pub fn ensure(
    refresh: bool,
    apt: &mut dyn FnMut() -> anyhow::Result<apt::Apt>,
) -> anyhow::Result<()> {
    let mut opened: Option<apt::Apt> = None;
    for s in SERIES {
        let present = Kernel::find(s.name).ok();
        let moves = refresh && s.pick == Pick::Latest;
        if let (Some(k), false) = (&present, moves) {
            eprintln!(
                "    present: {:<4} = {} ({})",
                s.name,
                k.release,
                describe(&s)
            );
            continue;
        }
        let a = match opened.take() {
            Some(a) => opened.insert(a),
            None => opened.insert(apt()?),
        };
        let packages = a.kernel_packages(&s)?;
        let image = &packages[0];
        let dest = paths::kernels().join(image);
        // A refresh that finds sid unchanged, or a pointer lost, reuses the tree.
        if locate(&dest).is_none() {
            std::fs::create_dir_all(paths::kernels())?;
            a.download_unpack(&packages, &dest)?;
        }
        std::fs::write(pointer(s.name), image)?;
        let k = Kernel::find(s.name)?;
        eprintln!(
            "    unpacked: {:<4} = {} ({}) in {}",
            s.name,
            k.release,
            describe(&s),
            dest.display()
        );
    }
    Ok(())
}

/// Where a series' kernel comes from and how it was chosen, for setup's lines.
fn describe(s: &Series) -> String {
    match s.pick {
        Pick::Pinned(_) => format!("{}, pinned", s.source),
        Pick::Newest(_) => format!("{}, newest build", s.source),
        Pick::Latest => {
            // When setup chose it: the pointer file's date.
            let when = std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%d", "-r"])
                .arg(pointer(s.name))
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map_or_else(String::new, |o| {
                    format!(" at setup, {}", String::from_utf8_lossy(&o.stdout).trim())
                });
            format!("the newest in sid{when}; `cargo xtask setup --refresh` moves it to today's")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("xtask-kernels-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if !f.ends_with('/') {
                std::fs::write(&p, b"x").unwrap();
            }
        }
        root
    }

    #[test]
    fn finds_both_package_layouts() {
        let old = tree(&[
            "boot/vmlinuz-6.1.0-56-amd64",
            "lib/modules/6.1.0-56-amd64/modules.builtin",
        ]);
        let (release, image, moddir) = locate(&old).unwrap();
        assert_eq!(release, "6.1.0-56-amd64");
        assert!(image.ends_with("boot/vmlinuz-6.1.0-56-amd64"));
        assert!(moddir.ends_with("lib/modules/6.1.0-56-amd64"));
        let split = tree(&[
            "usr/lib/modules/7.2.13+deb14-amd64/vmlinuz",
            "usr/lib/modules/7.2.13+deb14-amd64/modules.builtin",
        ]);
        let (release, image, moddir) = locate(&split).unwrap();
        assert_eq!(release, "7.2.13+deb14-amd64");
        assert!(image.ends_with("usr/lib/modules/7.2.13+deb14-amd64/vmlinuz"));
        assert!(moddir.ends_with("usr/lib/modules/7.2.13+deb14-amd64"));
        let modules_only = tree(&["usr/lib/modules/7.2.13+deb14-amd64/modules.builtin"]);
        assert!(locate(&modules_only).is_none(), "no image: not a kernel");
        for t in [old, split, modules_only] {
            std::fs::remove_dir_all(t).unwrap();
        }
    }

    #[test]
    fn series_of_a_release() {
        let k = |r: &str| Kernel {
            release: r.into(),
            vmlinuz: PathBuf::new(),
            moddir: PathBuf::new(),
        };
        assert_eq!(k("5.10.0-46-amd64").series(), "5.10");
        assert_eq!(k("7.2.13+deb14-amd64").series(), "7.2");
        assert!(series("4.19").is_err());
        assert_eq!(series("sid").unwrap().name, "sid");
    }
}
