//! What the running kernel offers, read from files whose root can be moved for tests.

use std::path::Path;

/// Facts about the kernel that decide which probe kinds can work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "facts about the kernel, each yes or no"
)]
pub struct KernelSupport {
    /// `uname -r`.
    pub release: String,
    /// kprobes can be used: built in and not hidden by [`HIDE_ENV`].
    pub kprobes: bool,
    /// kprobes are built in (`/sys/bus/event_source/devices/kprobe/type` exists).
    pub kprobes_built_in: bool,
    /// kprobes are hidden by [`HIDE_ENV`].
    pub kprobes_hidden: bool,
    /// BTF for the kernel is available (needed by fentry/fexit).
    pub btf: bool,
    /// fentry/fexit not hidden by [`HIDE_ENV`] (the kernel may still refuse them at load).
    pub trampolines: bool,
}

/// Test switch: a comma-separated list of probe kinds (`kprobe`, `fentry`) to treat as missing
/// from the kernel, to exercise the errors and fallbacks on any kernel.
pub const HIDE_ENV: &str = "SNAPSHOT_HIDE_PROBE_KINDS";

impl KernelSupport {
    /// Reads the support facts from a system root (`/` normally).
    #[must_use]
    pub fn probe(root: &Path) -> Self {
        let release = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        let kprobes = root
            .join("sys/bus/event_source/devices/kprobe/type")
            .exists();
        Self {
            release,
            kprobes,
            kprobes_built_in: kprobes,
            kprobes_hidden: false,
            btf: root.join("sys/kernel/btf/vmlinux").exists(),
            trampolines: true,
        }
    }

    /// Why kprobes cannot be used (when [`Self::kprobes`] is false).
    #[must_use]
    pub fn kprobes_missing(&self) -> String {
        if !self.kprobes_built_in {
            "/sys/bus/event_source/devices/kprobe/type is missing: CONFIG_KPROBES is off".into()
        } else if self.kprobes_hidden {
            format!("hidden by {HIDE_ENV}")
        } else {
            "kprobes are available".into()
        }
    }

    /// Treats the kinds listed in `hidden` (see [`HIDE_ENV`]) as missing.
    #[must_use]
    pub fn hiding(mut self, hidden: &str) -> Self {
        for kind in hidden.split(',').map(str::trim) {
            match kind {
                "kprobe" | "kretprobe" => {
                    self.kprobes = false;
                    self.kprobes_hidden = true;
                }
                "fentry" | "fexit" => self.trampolines = false,
                _ => {}
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_support_from_a_fake_root() {
        let root = std::env::temp_dir().join(format!("snapshot-kernel-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        std::fs::create_dir_all(root.join("sys/bus/event_source/devices/kprobe")).unwrap();
        std::fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        std::fs::write(root.join("sys/bus/event_source/devices/kprobe/type"), "6\n").unwrap();
        let s = KernelSupport::probe(&root);
        assert_eq!(s.release, "6.1.0-test");
        assert!(s.kprobes);
        assert!(!s.btf);
        assert_eq!(s.kprobes_missing(), "kprobes are available");
        let hidden = s.hiding("kprobe, fentry");
        assert!(!hidden.kprobes && !hidden.trampolines);
        assert_eq!(
            hidden.kprobes_missing(),
            "hidden by SNAPSHOT_HIDE_PROBE_KINDS"
        );
        let none = KernelSupport::probe(&root.join("nothing")).hiding("kprobe");
        assert!(none.kprobes_missing().contains("CONFIG_KPROBES is off"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
