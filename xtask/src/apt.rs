//! Debian packages through a private apt configuration: the system's mirrors (read from its
//! own sources, never hard-coded) plus bookworm-backports, with lists kept in the cache, so the
//! system's apt configuration stays as it is.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, bail};

use crate::{cmd, kernels, paths};

/// Mirrors found in the system's apt sources.
#[derive(Debug, PartialEq, Eq)]
pub struct Mirrors {
    /// Mirror serving bookworm, bookworm-updates, bookworm-backports.
    pub main: String,
    /// Mirror serving bookworm-security.
    pub security: String,
    /// Keyring that signs them.
    pub keyring: String,
}

/// Parses deb822 sources (`debian.sources`).
#[must_use]
pub fn parse_deb822(text: &str) -> Option<Mirrors> {
    let (mut main, mut security, mut keyring) = (None, None, None);
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        };
        let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else {
            continue;
        };
        let uri = uris.split_whitespace().next()?.to_owned();
        if suites.split_whitespace().any(|s| s.ends_with("-security")) {
            security = Some(uri);
        } else if suites.split_whitespace().any(|s| s == "bookworm") {
            main = Some(uri);
        }
        if let Some(k) = field("Signed-By:") {
            keyring = Some(k);
        }
    }
    Some(Mirrors {
        main: main?,
        security: security?,
        keyring: keyring.unwrap_or_else(|| "/usr/share/keyrings/debian-archive-keyring.gpg".into()),
    })
}

/// Parses one-line sources (`sources.list`).
#[must_use]
pub fn parse_one_line(text: &str) -> Option<Mirrors> {
    let (mut main, mut security) = (None, None);
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("deb "))
    {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        let (Some(uri), Some(suite)) = (words.get(1), words.get(2)) else {
            continue;
        };
        if suite.ends_with("-security") {
            security = Some((*uri).to_owned());
        } else if *suite == "bookworm" {
            main = Some((*uri).to_owned());
        }
    }
    Some(Mirrors {
        main: main?,
        security: security?,
        keyring: "/usr/share/keyrings/debian-archive-keyring.gpg".into(),
    })
}

/// The Debian mirrors of the system's apt sources.
pub fn system_mirrors() -> anyhow::Result<Mirrors> {
    let deb822 = Path::new("/etc/apt/sources.list.d/debian.sources");
    if let Ok(text) = std::fs::read_to_string(deb822)
        && let Some(m) = parse_deb822(&text)
    {
        return Ok(m);
    }
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list")
        && let Some(m) = parse_one_line(&text)
    {
        return Ok(m);
    }
    bail!(
        "no Debian bookworm mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list: this setup expects a Debian 12 machine"
    )
}

/// Where bullseye (Debian 11, the 5.10 kernel) comes from: the system's mirror while it still
/// carries it, else Debian's archive of retired releases.
const ARCHIVE: (&str, &str) = (
    "http://archive.debian.org/debian",
    "http://archive.debian.org/debian-security",
);

/// The private sources: bookworm with its updates, security and backports (packages, QEMU,
/// the 6.1 and 6.12 kernels), bullseye and its security updates (the 5.10 kernel) and sid (the
/// newest kernel). The system's mirrors are used; `bullseye` overrides them for bullseye.
/// sid's Release file is taken even when past its `Valid-Until` (a mirror that lags a few
/// days must not stop setup; the signature is still checked).
#[must_use]
pub fn sources(m: &Mirrors, bullseye: Option<(&str, &str)>) -> String {
    let line = |uri: &str, suite: &str, extra: &str| {
        format!("deb [signed-by={}{extra}] {uri} {suite} main\n", m.keyring)
    };
    let (old_main, old_security, old_extra) = match bullseye {
        Some((main, security)) => (main, security, " check-valid-until=no"),
        None => (m.main.as_str(), m.security.as_str(), ""),
    };
    [
        line(&m.main, "bookworm", ""),
        line(&m.main, "bookworm-updates", ""),
        line(&m.security, "bookworm-security", ""),
        line(&m.main, "bookworm-backports", ""),
        line(old_main, "bullseye", old_extra),
        line(old_security, "bullseye-security", old_extra),
        line(&m.main, "sid", " check-valid-until=no"),
    ]
    .concat()
}

/// The private apt configuration.
pub struct Apt {
    dir: PathBuf,
}

impl Apt {
    /// Writes the private sources and refreshes the lists when they are missing, older than a
    /// day or made for other sources, or when `refresh` is set.
    pub fn open(refresh: bool) -> anyhow::Result<Self> {
        let dir = paths::apt();
        std::fs::create_dir_all(dir.join("lists/partial"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let m = system_mirrors()?;
        let apt = Self { dir };
        let stamp = apt.dir.join("lists/updated");
        let wanted = sources(&m, None);
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .is_ok_and(|t| {
                SystemTime::now().duration_since(t).unwrap_or_default() < Duration::from_hours(24)
            });
        // The stamp holds the sources it was made for: new sources need new lists.
        let current = std::fs::read_to_string(apt.dir.join("sources.list")).unwrap_or_default();
        let same = std::fs::read_to_string(&stamp).is_ok_and(|s| s == current)
            && (current == wanted || current == sources(&m, Some(ARCHIVE)));
        if refresh || !fresh || !same {
            let mut used = wanted;
            std::fs::write(apt.dir.join("sources.list"), &used)?;
            let first = cmd::run(apt.command("apt-get").args(["update", "-q"]));
            if first.is_err() && !apt.has_list("bullseye") {
                eprintln!(
                    "    bullseye is not on {}: taking it from Debian's archive ({})",
                    m.main, ARCHIVE.0
                );
                used = sources(&m, Some(ARCHIVE));
                std::fs::write(apt.dir.join("sources.list"), &used)?;
                cmd::run(apt.command("apt-get").args(["update", "-q"]))?;
            } else {
                first?;
            }
            std::fs::write(&stamp, used)?;
        }
        Ok(apt)
    }

    /// True when the lists hold the Release file of `suite` (from any mirror).
    fn has_list(&self, suite: &str) -> bool {
        let end = [
            format!("_dists_{suite}_InRelease"),
            format!("_dists_{suite}_Release"),
        ];
        std::fs::read_dir(self.dir.join("lists")).is_ok_and(|d| {
            d.filter_map(Result::ok).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                end.iter().any(|x| name.ends_with(x.as_str()))
            })
        })
    }

    /// `apt-get`/`apt-cache` with the private configuration.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.arg("-o")
            .arg(format!(
                "Dir::Etc::sourcelist={}",
                self.dir.join("sources.list").display()
            ))
            .args(["-o", "Dir::Etc::sourceparts=-", "-o"])
            .arg(format!(
                "Dir::State::lists={}",
                self.dir.join("lists").display()
            ))
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// Installs `packages` (from `release` when given, e.g. bookworm-backports).
    pub fn install(&self, packages: &[&str], release: Option<&str>) -> anyhow::Result<()> {
        let mut c = self.command("apt-get");
        c.args(["install", "-y", "-q", "--no-install-recommends"]);
        if let Some(r) = release {
            c.args(["-t", r]);
        }
        cmd::run(c.args(packages))
    }

    /// The packages of `series`' kernel: the `linux-image-*` package and, for 7.x kernels
    /// where it is a meta package, the `linux-binary-*`, `linux-modules-*` and `linux-base-*`
    /// packages it depends on.
    pub fn kernel_packages(&self, series: &kernels::Series) -> anyhow::Result<Vec<String>> {
        let image = match series.pick {
            kernels::Pick::Pinned(pkg) => pkg.to_owned(),
            kernels::Pick::Newest(_) | kernels::Pick::Latest => {
                let text = cmd::stdout(
                    self.command("apt-cache")
                        .args(["show", "linux-image-amd64"]),
                )?;
                let version = match series.pick {
                    kernels::Pick::Newest(v) => Some(v),
                    _ => None,
                };
                pick_kernel(&text, version, "amd64").with_context(|| {
                    format!(
                        "no linux-image-{}* package found through linux-image-amd64 in {}",
                        version.unwrap_or(""),
                        series.source
                    )
                })?
            }
        };
        let show = cmd::stdout(self.command("apt-cache").args(["show", &image]))
            .with_context(|| format!("{image} is not in the apt lists ({})", series.source))?;
        let mut packages = vec![image.clone()];
        packages.extend(split_parts(&show, &image));
        Ok(packages)
    }

    /// Downloads `packages` and unpacks them together into `dest` (never installs them).
    pub fn download_unpack(&self, packages: &[String], dest: &Path) -> anyhow::Result<()> {
        download_unpack_with(self.command("apt-get"), packages, dest)
    }
}

/// Downloads `packages` with `apt_get` (an `apt-get` command with its configuration) and
/// unpacks them together into `dest` (never installs them).
pub fn download_unpack_with(
    mut apt_get: Command,
    packages: &[String],
    dest: &Path,
) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.download", dest.display()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    // The cache is root-only: download as root rather than as the `_apt` sandbox user.
    cmd::run(
        apt_get
            .args(["-o", "APT::Sandbox::User=root", "download"])
            .args(packages)
            .current_dir(&tmp),
    )?;
    let debs: Vec<PathBuf> = std::fs::read_dir(&tmp)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    if debs.len() != packages.len() {
        bail!(
            "apt-get download {} left {} .deb files in {}",
            packages.join(" "),
            debs.len(),
            tmp.display()
        );
    }
    let unpack = tmp.join("root");
    for deb in &debs {
        cmd::run(Command::new("dpkg").arg("-x").arg(deb).arg(&unpack))?;
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&unpack, dest)?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// The split parts a 7.x `linux-image-X` meta package depends on (`linux-binary-X`,
/// `linux-modules-X`, `linux-base-X`); none for the older packages, which carry everything.
#[must_use]
pub fn split_parts(apt_show: &str, image: &str) -> Vec<String> {
    let Some(suffix) = image.strip_prefix("linux-image-") else {
        return Vec::new();
    };
    let Some(depends) = apt_show.lines().find_map(|l| l.strip_prefix("Depends: ")) else {
        return Vec::new();
    };
    let mut parts: Vec<String> = depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .filter(|d| {
            ["linux-binary-", "linux-modules-", "linux-base-"]
                .iter()
                .any(|p| d.strip_prefix(p) == Some(suffix))
        })
        .map(str::to_owned)
        .collect();
    parts.sort();
    parts.dedup();
    parts
}

/// Picks the kernel package that the highest `linux-image-<arch>` version depends on, among
/// those of `version` (`6.1` → `linux-image-6.1.0-56-amd64`, `6.12` →
/// `linux-image-6.12.95+deb12-amd64`), or of any version when `None` (sid's, the newest).
/// `arch` is Debian's name (`amd64`, `arm64`).
#[must_use]
pub fn pick_kernel(apt_show: &str, version: Option<&str>, arch: &str) -> Option<String> {
    let suffix = format!("-{arch}");
    let prefix = version.map_or_else(
        || "linux-image-".to_owned(),
        |v| format!("linux-image-{v}."),
    );
    let mut best: Option<(Vec<u64>, String)> = None;
    for stanza in apt_show.split("\n\n") {
        let Some(version) = stanza.lines().find_map(|l| l.strip_prefix("Version: ")) else {
            continue;
        };
        let Some(dep) = stanza.lines().find_map(|l| l.strip_prefix("Depends: ")) else {
            continue;
        };
        let Some(pkg) = dep
            .split([',', ' '])
            .find(|w| w.starts_with(&prefix) && w.ends_with(&suffix))
        else {
            continue;
        };
        let key: Vec<u64> = version
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, pkg.to_owned()));
        }
    }
    best.map(|(_, p)| p)
}

/// True when dpkg has `package` installed.
#[must_use]
pub fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_from_deb822() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /k.gpg\n";
        let m = parse_deb822(text).unwrap();
        assert_eq!(m.main, "http://mirror.example/debian");
        assert_eq!(m.security, "http://mirror.example/debian-security");
        assert_eq!(m.keyring, "/k.gpg");
        assert!(parse_deb822("Types: deb\n").is_none());
    }

    #[test]
    fn mirrors_from_one_line() {
        let text = "deb [arch=amd64] http://m/debian bookworm main\ndeb http://m/debian-security bookworm-security main\n";
        let m = parse_one_line(text).unwrap();
        assert_eq!(
            (m.main.as_str(), m.security.as_str()),
            ("http://m/debian", "http://m/debian-security")
        );
    }

    #[test]
    fn picks_the_newest_kernel_of_a_series() {
        let show = "Package: linux-image-amd64\nVersion: 7.2.13-1\nDepends: linux-base-amd64 (= 7.2.13-1), linux-image-7.2.13+deb14-amd64 (= 7.2.13-1)\n\nPackage: linux-image-amd64\nVersion: 6.12.95-1~bpo12+1\nDepends: linux-image-6.12.95+deb12-amd64 (= 6.12.95-1~bpo12+1)\n\nPackage: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n\nPackage: linux-image-amd64\nVersion: 6.1.176-1\nDepends: linux-image-6.1.0-50-amd64 (= 6.1.176-1)\n";
        assert_eq!(
            pick_kernel(show, Some("6.1"), "amd64").as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(
            pick_kernel(show, Some("6.12"), "amd64").as_deref(),
            Some("linux-image-6.12.95+deb12-amd64")
        );
        assert_eq!(
            pick_kernel(show, None, "amd64").as_deref(),
            Some("linux-image-7.2.13+deb14-amd64"),
            "the newest of all, not linux-base-amd64"
        );
        assert_eq!(pick_kernel(show, Some("5.10"), "amd64"), None);
    }

    #[test]
    fn finds_the_split_parts_of_a_meta_package() {
        let meta = "Package: linux-image-7.2.13+deb14-amd64\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)\n";
        assert_eq!(
            split_parts(meta, "linux-image-7.2.13+deb14-amd64"),
            [
                "linux-base-7.2.13+deb14-amd64",
                "linux-binary-7.2.13+deb14-amd64",
                "linux-modules-7.2.13+deb14-amd64"
            ]
        );
        let whole = "Package: linux-image-6.1.0-56-amd64\nDepends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool\n";
        assert!(split_parts(whole, "linux-image-6.1.0-56-amd64").is_empty());
    }

    #[test]
    fn sources_carry_every_kernel_suite() {
        let m = Mirrors {
            main: "http://m/debian".into(),
            security: "http://m/debian-security".into(),
            keyring: "/k.gpg".into(),
        };
        let s = sources(&m, None);
        for suite in [
            " bookworm ",
            " bookworm-backports ",
            " bullseye ",
            " bullseye-security ",
            " sid ",
        ] {
            assert!(s.contains(suite), "{suite} in {s}");
        }
        assert!(s.contains("http://m/debian-security bullseye-security"));
        let archived = sources(&m, Some(ARCHIVE));
        assert!(
            archived
                .contains("check-valid-until=no] http://archive.debian.org/debian bullseye main")
        );
        assert!(archived.contains("http://m/debian-security bookworm-security"));
    }
}
