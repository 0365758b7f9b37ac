//! What the running kernel offers, read from files whose root can be moved for tests.

use std::path::Path;

/// Facts about the kernel that decide which probe kinds can work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSupport {
    /// `uname -r`.
    pub release: String,
    /// kprobes are built in (`/sys/bus/event_source/devices/kprobe/type` exists).
    pub kprobes: bool,
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
        Self {
            release,
            kprobes: root
                .join("sys/bus/event_source/devices/kprobe/type")
                .exists(),
            btf: root.join("sys/kernel/btf/vmlinux").exists(),
            trampolines: true,
        }
    }

    /// Treats the kinds listed in `hidden` (see [`HIDE_ENV`]) as missing.
    #[must_use]
    pub fn hiding(mut self, hidden: &str) -> Self {
        for kind in hidden.split(',').map(str::trim) {
            match kind {
                "kprobe" | "kretprobe" => self.kprobes = false,
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
        let hidden = s.hiding("kprobe, fentry");
        assert!(!hidden.kprobes && !hidden.trampolines);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
