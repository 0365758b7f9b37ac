//! What `snapshot check` tells: the kernel's features ([`Features`]), what each probe kind
//! uses here (itself, its fallback, or nothing), how the recorder's protocols run here, and
//! whether recording can work at all.

use std::path::Path;

use serde::Serialize;
use snapshot_common::kfeature;

use super::{
    features::{Feature, Features, Need},
    spec::ProbeKind,
};

/// One feature as reported.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FeatureLine {
    /// Short name (`--json` key, `SNAPSHOT_HIDE_FEATURES` name).
    pub name: &'static str,
    /// What it is.
    pub what: &'static str,
    /// Whether this kernel has it.
    pub present: bool,
    /// False when the probe could not tell (then `present` is false).
    pub known: bool,
    /// Why not, in the kernel's words.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Oldest mainline kernel with it.
    pub since: &'static str,
    /// What the recorder uses it for.
    pub used_for: &'static str,
    /// What happens without it: `required`, `probe kinds`, `unused`, or the fallback.
    pub without: String,
}

/// One probe kind as the recorder will run it here.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProbeLine {
    /// The kind (`kprobe`, …).
    pub kind: &'static str,
    /// The kind of program that runs for it here (`kprobe`, or `fentry` as a fallback), or
    /// `None` when it cannot run here.
    pub uses: Option<&'static str>,
    /// True when `uses` is a fallback for the kind asked for.
    pub fallback: bool,
    /// How, or why not.
    pub detail: String,
}

/// One protocol step of the recorder and how it runs here.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UseLine {
    /// The step.
    pub what: &'static str,
    /// How it runs here.
    pub uses: &'static str,
}

/// Everything `snapshot check` prints.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    /// `uname -r`.
    pub kernel: String,
    /// The lockdown mode, or `None` without the lockdown LSM.
    pub lockdown: Option<String>,
    /// True when the recorder can record here (every required feature is present).
    pub can_record: bool,
    /// Why it cannot.
    pub problems: Vec<String>,
    /// Each probe kind.
    pub probe_kinds: Vec<ProbeLine>,
    /// How the recorder's protocols run here.
    pub recorder: Vec<UseLine>,
    /// Each feature.
    pub features: Vec<FeatureLine>,
}

fn detail(f: &Features, feature: Feature) -> String {
    f.answer(feature)
        .map(|p| p.detail.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "absent".to_owned())
}

/// How a kernel-function kind runs: itself, or its counterpart (kprobe ⇄ fentry).
fn kernel_kind(f: &Features, kind: ProbeKind) -> ProbeLine {
    let kprobes = f.has(Feature::Kprobes);
    let trampolines = f.has(Feature::Trampolines) && f.has(Feature::Btf);
    let (is_kprobe, own, other) = match kind {
        ProbeKind::Kprobe => (true, "kprobe", "fentry"),
        ProbeKind::Kretprobe => (true, "kretprobe", "fexit"),
        ProbeKind::Fentry => (false, "fentry", "kprobe"),
        _ => (false, "fexit", "kretprobe"),
    };
    let (own_ok, other_ok) = if is_kprobe {
        (kprobes, trampolines)
    } else {
        (trampolines, kprobes)
    };
    let why_not = |kprobe_side: bool| {
        if kprobe_side {
            format!("no kprobes: {}", detail(f, Feature::Kprobes))
        } else if !f.has(Feature::Btf) {
            format!("no kernel BTF: {}", detail(f, Feature::Btf))
        } else {
            format!("fentry/fexit refused: {}", detail(f, Feature::Trampolines))
        }
    };
    let how = |uses: &str| -> String {
        match uses {
            "kprobe" | "kretprobe" if f.has(Feature::FuncIp) => {
                "globs name each event's function with bpf_get_func_ip".into()
            }
            "kprobe" => {
                "globs name each event's function from the saved instruction pointer".into()
            }
            "kretprobe" => {
                "globs name each event's function from a kprobe noting each call's address".into()
            }
            _ if f.has(Feature::FuncArgs) => {
                "arguments and return value with bpf_get_func_arg/bpf_get_func_ret".into()
            }
            _ => "arguments and return value from the context, counted from the function's BTF"
                .into(),
        }
    };
    if own_ok {
        ProbeLine {
            kind: own,
            uses: Some(own),
            fallback: false,
            detail: how(own),
        }
    } else if other_ok {
        ProbeLine {
            kind: own,
            uses: Some(other),
            fallback: true,
            detail: format!(
                "{}; falls back to {other} (with a notice; --strict refuses; not for offsets or globs): {}",
                why_not(is_kprobe),
                how(other)
            ),
        }
    } else {
        ProbeLine {
            kind: own,
            uses: None,
            fallback: false,
            detail: format!("{}; and {}", why_not(is_kprobe), why_not(!is_kprobe)),
        }
    }
}

impl Report {
    /// The report for `f`; `root` is the system root (`/`), where the uprobe PMU is looked up.
    #[must_use]
    pub fn new(f: &Features, root: &Path) -> Self {
        let mut probe_kinds: Vec<ProbeLine> = [
            ProbeKind::Kprobe,
            ProbeKind::Kretprobe,
            ProbeKind::Fentry,
            ProbeKind::Fexit,
        ]
        .into_iter()
        .map(|k| kernel_kind(f, k))
        .collect();
        let tracefs = f.has(Feature::Tracefs);
        probe_kinds.push(ProbeLine {
            kind: "tracepoint",
            uses: tracefs.then_some("tracepoint"),
            fallback: false,
            detail: if tracefs {
                "fields located from the tracepoint's format in tracefs".into()
            } else {
                format!("no tracefs: {}", detail(f, Feature::Tracefs))
            },
        });
        probe_kinds.push(ProbeLine {
            kind: "rawtp",
            uses: Some("rawtp"),
            fallback: false,
            detail: "the tracepoint's first two arguments".into(),
        });
        let uprobes = root
            .join("sys/bus/event_source/devices/uprobe/type")
            .exists();
        for kind in ["uprobe", "uretprobe"] {
            probe_kinds.push(ProbeLine {
                kind,
                uses: uprobes.then_some(kind),
                fallback: false,
                detail: if uprobes {
                    "symbols resolved from the ELF file and its debug link".into()
                } else {
                    "/sys/bus/event_source/devices/uprobe/type is missing (CONFIG_UPROBE_EVENTS is off)".into()
                },
            });
        }
        let bits = f.kernel_bits();
        let atomics = bits & kfeature::ATOMICS != 0;
        let pick = |yes: bool, a: &'static str, b: &'static str| if yes { a } else { b };
        let recorder = vec![
            UseLine {
                what: "writer exclusion per CPU",
                uses: pick(atomics, "atomic exchange", "counting lock (atomic add)"),
            },
            UseLine {
                what: "one flip per arming",
                uses: pick(atomics, "atomic exchange", "token in a queue map"),
            },
            UseLine {
                what: "--post N tickets",
                uses: pick(atomics, "atomic fetch-add", "tickets in a queue map"),
            },
            UseLine {
                what: "timestamps",
                uses: "bpf_ktime_get_boot_ns (CLOCK_BOOTTIME)",
            },
            UseLine {
                what: "flip notices",
                uses: "BPF ring buffer",
            },
            UseLine {
                what: "buffers",
                uses: "mmap-able arrays",
            },
            UseLine {
                what: "trigger stacks",
                uses: pick(
                    bits & kfeature::STACK_IDS != 0,
                    "bpf_get_stackid",
                    "none (no bpf_get_stackid)",
                ),
            },
            UseLine {
                what: "crash stacks without the memory map",
                uses: pick(
                    bits & kfeature::STACK_BUILD_ID != 0,
                    "build-id stack map",
                    "none (no build-id stack maps): the memory map only",
                ),
            },
        ];
        let features = f
            .probed
            .iter()
            .map(|p| {
                let info = p.feature.info();
                FeatureLine {
                    name: info.name,
                    what: info.what,
                    present: p.present,
                    known: p.known,
                    detail: p.detail.clone(),
                    since: info.since,
                    used_for: info.used_for,
                    without: match info.need {
                        Need::Required => "recording cannot work".into(),
                        Need::ProbeKinds => "see the probe kinds".into(),
                        Need::Unused => "nothing changes".into(),
                        Need::Fallback(how) => how.into(),
                    },
                }
            })
            .collect();
        let problems: Vec<String> = f
            .check_required()
            .err()
            .map(|e| e.to_string())
            .into_iter()
            .collect();
        Self {
            kernel: f.release.clone(),
            lockdown: f.lockdown.clone(),
            can_record: problems.is_empty(),
            problems,
            probe_kinds,
            recorder,
            features,
        }
    }

    /// The report as text.
    #[must_use]
    pub fn text(&self) -> String {
        let mut s = format!(
            "kernel {} (lockdown: {}): {}\n",
            self.kernel,
            self.lockdown.as_deref().unwrap_or("not built in"),
            if self.can_record {
                "the recorder works here"
            } else {
                "recording CANNOT work here"
            }
        );
        for p in &self.problems {
            s.push_str(&format!("  problem: {p}\n"));
        }
        s.push_str("\nprobe kinds\n");
        for p in &self.probe_kinds {
            let uses = match (p.uses, p.fallback) {
                (Some(u), true) => format!("uses {u}"),
                (Some(u), false) => u.to_owned(),
                (None, _) => "unavailable".to_owned(),
            };
            s.push_str(&format!("  {:<11} {:<14} {}\n", p.kind, uses, p.detail));
        }
        s.push_str("\nthe recorder here\n");
        for u in &self.recorder {
            s.push_str(&format!("  {:<26} {}\n", u.what, u.uses));
        }
        s.push_str("\nfeatures (found by probing)\n");
        for f in &self.features {
            s.push_str(&format!(
                "  {:<17} {:<4} since {:<5} {}: {}",
                f.name,
                match (f.present, f.known) {
                    (true, _) => "yes",
                    (false, true) => "no",
                    (false, false) => "n/a",
                },
                f.since,
                f.what,
                f.used_for
            ));
            if !f.present {
                s.push_str(&format!(" [{}; without it: {}]", f.detail, f.without));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::features::Probed;

    fn features(missing: &[Feature]) -> Features {
        Features {
            release: "5.10.0-test".into(),
            lockdown: Some("none".into()),
            probed: Feature::ALL
                .iter()
                .map(|&feature| Probed {
                    feature,
                    present: !missing.contains(&feature),
                    detail: if missing.contains(&feature) {
                        "invalid func unknown#173".into()
                    } else {
                        String::new()
                    },
                    known: true,
                })
                .collect(),
        }
    }

    fn kind<'a>(r: &'a Report, k: &str) -> &'a ProbeLine {
        r.probe_kinds.iter().find(|p| p.kind == k).unwrap()
    }

    #[test]
    fn an_old_kernel_uses_the_fallbacks() {
        let f = features(&[
            Feature::AtomicXchg,
            Feature::AtomicFetchAdd,
            Feature::FuncIp,
            Feature::FuncArgs,
        ]);
        let r = Report::new(&f, Path::new("/nonexistent"));
        assert!(r.can_record);
        assert_eq!(r.recorder[0].uses, "counting lock (atomic add)");
        assert_eq!(r.recorder[2].uses, "tickets in a queue map");
        assert!(kind(&r, "kretprobe").detail.contains("noting each call"));
        assert!(
            kind(&r, "fexit")
                .detail
                .contains("counted from the function's BTF")
        );
        assert_eq!(
            kind(&r, "uprobe").uses,
            None,
            "no uprobe PMU under the fake root"
        );
        let text = r.text();
        assert!(text.contains("func_ip           no"), "{text}");
    }

    #[test]
    fn kprobes_fall_back_to_fentry_and_a_missing_requirement_is_a_problem() {
        let r = Report::new(&features(&[Feature::Kprobes]), Path::new("/"));
        let k = kind(&r, "kprobe");
        assert_eq!((k.uses, k.fallback), (Some("fentry"), true));
        let fentry = kind(&r, "fentry");
        assert_eq!((fentry.uses, fentry.fallback), (Some("fentry"), false));
        let none = Report::new(
            &features(&[Feature::Kprobes, Feature::Trampolines, Feature::RingBuf]),
            Path::new("/"),
        );
        assert_eq!(kind(&none, "kprobe").uses, None);
        assert!(!none.can_record);
        assert!(none.problems[0].contains("ring buffer"));
        assert!(none.text().contains("recording CANNOT work here"));
    }
}
