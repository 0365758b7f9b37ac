//! A private apt configuration for Debian's arm64 packages (kernels, busybox), which setup
//! downloads and unpacks for the aarch64 VM and never installs: the system's mirrors (read from
//! its own sources) marked `[arch=arm64]`, with lists, package cache and (empty) dpkg status of
//! their own, so neither the system's apt configuration nor the amd64 one of [`crate::apt`]
//! changes.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;

use crate::{apt, cmd};

/// The private arm64 apt configuration.
pub struct Arm64Apt {
    dir: PathBuf,
}

/// The suites searched: bookworm's kernel (6.1) moves with bookworm-security, 6.12 is in
/// bookworm-backports.
fn sources(m: &apt::Mirrors) -> String {
    let line = |uri: &str, suite: &str| {
        format!(
            "deb [arch=arm64 signed-by={}] {uri} {suite} main\n",
            m.keyring
        )
    };
    [
        line(&m.main, "bookworm"),
        line(&m.main, "bookworm-updates"),
        line(&m.security, "bookworm-security"),
        line(&m.main, "bookworm-backports"),
    ]
    .concat()
}

impl Arm64Apt {
    /// Writes the sources and refreshes the lists when missing, older than a day, or when
    /// `refresh` is set.
    pub fn open(refresh: bool) -> anyhow::Result<Self> {
        let dir = super::cache().join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        std::fs::write(dir.join("sources.list"), sources(&apt::system_mirrors()?))?;
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

    /// `apt-get`/`apt-cache` for arm64 with the private configuration.
    pub fn command(&self, program: &str) -> Command {
        let opt = |name: &str, value: &std::path::Path| format!("{name}={}", value.display());
        let mut c = Command::new(program);
        c.arg("-o")
            .arg(opt("Dir::Etc::sourcelist", &self.dir.join("sources.list")))
            .args(["-o", "Dir::Etc::sourceparts=-", "-o"])
            .arg(opt("Dir::State::lists", &self.dir.join("lists")))
            .arg("-o")
            .arg(opt("Dir::Cache", &self.dir.join("cache")))
            // What the system has installed (amd64) is irrelevant to arm64 downloads.
            .args(["-o", "Dir::State::status=/dev/null"])
            .args([
                "-o",
                "APT::Architecture=arm64",
                "-o",
                "APT::Architectures::=arm64",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// The newest `linux-image-<series>.*-arm64` that `linux-image-arm64` points to.
    pub fn kernel_package(&self, series: &str) -> anyhow::Result<String> {
        let text = cmd::stdout(
            self.command("apt-cache")
                .args(["show", "linux-image-arm64"]),
        )?;
        apt::pick_kernel(&text, Some(series), "arm64").with_context(|| {
            format!("no arm64 linux-image-{series}.* package found through linux-image-arm64 (looked in bookworm, bookworm-security and bookworm-backports)")
        })
    }

    /// Downloads the arm64 `package` and unpacks it into `dest`.
    pub fn download_unpack(&self, package: &str, dest: &std::path::Path) -> anyhow::Result<()> {
        apt::download_unpack_with(self.command("apt-get"), &[package.to_owned()], dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_is_arm64_only() {
        let m = apt::Mirrors {
            main: "http://m/debian".into(),
            security: "http://m/debian-security".into(),
            keyring: "/k.gpg".into(),
        };
        let text = sources(&m);
        assert_eq!(text.lines().count(), 4);
        assert!(
            text.lines()
                .all(|l| l.starts_with("deb [arch=arm64 signed-by=/k.gpg] http://m/")),
            "{text}"
        );
        assert!(text.contains("debian-security bookworm-security main"));
        assert!(text.contains("debian bookworm-backports main"));
    }
}
