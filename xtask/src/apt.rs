//! Debian packages through a private apt configuration: the system's mirrors (read from its
//! own sources, never hard-coded) plus bookworm-backports, with lists kept in the cache, so the
//! system's apt configuration stays as it is.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, bail};

use crate::{cmd, paths};

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

/// The private apt configuration.
pub struct Apt {
    dir: PathBuf,
}

impl Apt {
    /// Writes the private sources (once) and refreshes the lists when missing or older than a
    /// day, or when `refresh` is set.
    pub fn open(refresh: bool) -> anyhow::Result<Self> {
        let dir = paths::apt();
        std::fs::create_dir_all(dir.join("lists/partial"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let m = system_mirrors()?;
        let line =
            |uri: &str, suite: &str| format!("deb [signed-by={}] {uri} {suite} main\n", m.keyring);
        let sources = [
            line(&m.main, "bookworm"),
            line(&m.main, "bookworm-updates"),
            line(&m.security, "bookworm-security"),
            line(&m.main, "bookworm-backports"),
        ]
        .concat();
        std::fs::write(dir.join("sources.list"), sources)?;
        let apt = Self { dir };
        let stamp = apt.dir.join("lists/updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .is_ok_and(|t| {
                SystemTime::now().duration_since(t).unwrap_or_default() < Duration::from_hours(24)
            });
        if refresh || !fresh {
            cmd::run(apt.command("apt-get").args(["update", "-q"]))?;
            std::fs::write(&stamp, b"")?;
        }
        Ok(apt)
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

    /// The newest `linux-image-<series>.*-amd64` package that `linux-image-amd64` points to.
    pub fn kernel_package(&self, series: &str) -> anyhow::Result<String> {
        let text = cmd::stdout(
            self.command("apt-cache")
                .args(["show", "linux-image-amd64"]),
        )?;
        pick_kernel(&text, series).with_context(|| format!("no linux-image-{series}.* package found through linux-image-amd64 (looked in bookworm, bookworm-security and bookworm-backports)"))
    }

    /// Downloads `package` and unpacks it into `dest` (never installs it).
    pub fn download_unpack(&self, package: &str, dest: &Path) -> anyhow::Result<()> {
        download_unpack_with(self.command("apt-get"), package, dest)
    }
}

/// Downloads `package` with `apt_get` (an `apt-get` command with its configuration) and unpacks
/// it into `dest` (never installs it).
pub fn download_unpack_with(
    mut apt_get: Command,
    package: &str,
    dest: &Path,
) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.download", dest.display()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    // The cache is root-only: download as root rather than as the `_apt` sandbox user.
    cmd::run(
        apt_get
            .args(["-o", "APT::Sandbox::User=root", "download"])
            .arg(package)
            .current_dir(&tmp),
    )?;
    let deb = std::fs::read_dir(&tmp)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let unpack = tmp.join("root");
    cmd::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&unpack))?;
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&unpack, dest)?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// Picks the dependency of the highest `linux-image-amd64` version whose kernel package is of
/// `series` (`6.1` → `linux-image-6.1.0-56-amd64`, `6.12` → `linux-image-6.12.95+deb12-amd64`).
#[must_use]
pub fn pick_kernel(apt_show: &str, series: &str) -> Option<String> {
    let prefix = format!("linux-image-{series}.");
    let mut best: Option<(Vec<u64>, String)> = None;
    for stanza in apt_show.split("\n\n") {
        let Some(version) = stanza.lines().find_map(|l| l.strip_prefix("Version: ")) else {
            continue;
        };
        let Some(dep) = stanza.lines().find_map(|l| l.strip_prefix("Depends: ")) else {
            continue;
        };
        let Some(pkg) = dep.split([',', ' ']).find(|w| w.starts_with(&prefix)) else {
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
        let show = "Package: linux-image-amd64\nVersion: 6.12.95-1~bpo12+1\nDepends: linux-image-6.12.95+deb12-amd64 (= 6.12.95-1~bpo12+1)\n\nPackage: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n\nPackage: linux-image-amd64\nVersion: 6.1.176-1\nDepends: linux-image-6.1.0-50-amd64 (= 6.1.176-1)\n";
        assert_eq!(
            pick_kernel(show, "6.1").as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(
            pick_kernel(show, "6.12").as_deref(),
            Some("linux-image-6.12.95+deb12-amd64")
        );
        assert_eq!(pick_kernel(show, "5.10"), None);
    }
}
