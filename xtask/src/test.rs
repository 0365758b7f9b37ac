//! `cargo xtask test`: every layer, one summary. A layer that cannot run fails the command
//! with the reason; nothing is skipped silently.

use std::{ffi::OsString, time::Instant};

use anyhow::{Context as _, anyhow, bail};

use crate::{arch::Arch, arm64, build, cmd, cross, dist, fuzz, kernels, setup, vm};

/// A test layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layer {
    /// Unit tests, no root (`cargo test` of the default members; the eBPF crate only builds
    /// for the BPF target).
    Unit,
    /// rustfmt and clippy.
    Lint,
    /// Every fuzz target for a bounded time (about a minute in all); fails on any crash.
    Fuzz,
    /// Integration tests loading real programs on this host (root).
    Host,
    /// Integration tests inside QEMU on each kernel (kprobe, kretprobe, fentry), `x86_64` and
    /// aarch64.
    Vm,
    /// The long-run proof, short: 90 s of `cargo xtask soak` (the release recorder with
    /// `--keep 5`: RSS, files kept, accounting, BPF objects held) (root).
    Soak,
    /// The static package (`cargo xtask dist`) installed into a fresh Debian 13 root, where it
    /// records (root).
    Dist,
}

struct Outcome {
    layer: &'static str,
    kernel: String,
    /// What passed (`13 tests, 1 unsupported`), or why it failed.
    result: anyhow::Result<String>,
    seconds: f64,
    /// Lines `unsupported on SERIES ARCH: WHAT` the VM tests printed.
    unsupported: Vec<String>,
}

/// The VM kernels to test, per architecture: all of them, or those named by `kernels` (an
/// `x86_64` series also by its version, e.g. sid's `7.2`). A named kernel no selected
/// architecture has is an error.
fn vm_kernels(kernels: &[String], arches: &[Arch]) -> anyhow::Result<Vec<(Arch, String)>> {
    let mut chosen = Vec::new();
    for &arch in arches {
        let all: Vec<&str> = match arch {
            Arch::X86_64 => kernels::SERIES.iter().map(|s| s.name).collect(),
            Arch::Aarch64 => arm64::SERIES.iter().map(|s| s.name).collect(),
        };
        if kernels.is_empty() {
            chosen.extend(all.iter().map(|s| (arch, (*s).to_owned())));
            continue;
        }
        for k in kernels {
            let name = match arch {
                Arch::X86_64 => kernels::series(k).ok().map(|s| s.name),
                Arch::Aarch64 => arm64::series(k).ok().map(|s| s.name),
            };
            if let Some(name) = name {
                chosen.push((arch, name.to_owned()));
            }
        }
    }
    for k in kernels {
        let known = chosen.iter().any(|(arch, name)| match arch {
            Arch::X86_64 => kernels::series(k).is_ok_and(|s| s.name == name),
            Arch::Aarch64 => name == k,
        });
        if !known {
            bail!(
                "no VM kernel `{k}` for {}: x86_64 has {}, aarch64 has {}",
                arches
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(" or "),
                kernels::SERIES.map(|s| s.name).join(", "),
                arm64::SERIES.map(|s| s.name).join(", ")
            );
        }
    }
    Ok(chosen)
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

fn cargo_ok(args: &[&str]) -> anyhow::Result<()> {
    cmd::run(build::cargo().args(args))
}

/// The recorder the host tests run: the static, optimised `snapshot` that `cargo xtask dist`
/// packs (the same build serves the VM and dist layers). The tests themselves stay a debug
/// build, as do the unit tests of the library.
fn shipped_recorder() -> anyhow::Result<std::path::PathBuf> {
    Ok(cross::binaries(Arch::host())?.join("snapshot"))
}

fn host_layer() -> anyhow::Result<()> {
    if !cmd::is_root() {
        bail!("needs root to load eBPF programs: run `sudo -E cargo xtask test`");
    }
    let recorder = shipped_recorder()?;
    let mut cargo = build::cargo();
    cargo.env("SNAPSHOT_TEST_BIN", &recorder);
    // The Perfetto export test decodes its trace with this interpreter's perfetto_trace_pb2.
    cargo.env("SNAPSHOT_PYTHON", crate::paths::python());
    // Every target runs even when one fails: a failure must not hide the others' results. No
    // `--package`: selecting the default members, as the unit layer does, unifies the
    // dependencies' features the same way, so its build is reused instead of redone.
    cargo.args(["test", "--no-fail-fast"]);
    for target in HOST_TARGETS {
        cargo.args(["--test", target]);
    }
    cargo.args(["--", "--test-threads=1"]);
    cmd::run_with_timeout(&mut cargo, std::time::Duration::from_mins(20))
}

/// The engine's and `--post`'s host tests again, with the recorder using the fallbacks of
/// kernels without BPF atomics, `bpf_get_func_ip` and `bpf_get_func_arg` (5.10's): their
/// protocols checked on two real CPUs, at speed.
fn host_fallbacks() -> anyhow::Result<()> {
    if !cmd::is_root() {
        bail!("needs root to load eBPF programs: run `sudo -E cargo xtask test`");
    }
    let recorder = shipped_recorder()?;
    let mut cargo = build::cargo();
    cargo
        .env("SNAPSHOT_TEST_BIN", &recorder)
        .env("SNAPSHOT_PYTHON", crate::paths::python())
        .env("SNAPSHOT_HIDE_FEATURES", "atomics,func_ip,func_args")
        .args(["test"])
        .args([
            "--test",
            "engine",
            "--test",
            "post",
            "--",
            "--test-threads=1",
        ]);
    cmd::run_with_timeout(&mut cargo, std::time::Duration::from_mins(10))
}

/// Integration test targets run on the host (root); `vm` runs in the VM layer. Every
/// `[[test]]` of snapshot-userspace must be in one of them (checked by a unit test).
pub const HOST_TARGETS: [&str; 12] = [
    "host",
    "engine",
    "probes",
    "triggers",
    "post",
    "findings",
    "matrix",
    "faults",
    "strings",
    "service",
    "crash",
    "sequences",
];

/// Where the VM layer keeps each kernel's results: the tests' output (`test.log`), the
/// `snapshot check --json` report (`check.json`, rendered into the README by
/// `cargo xtask kernel-table`) and the features found unsupported (`unsupported.txt`):
/// `target/vm/SERIES` for `x86_64`, `target/vm/aarch64-SERIES` for arm64.
#[must_use]
pub fn vm_results(arch: Arch, series: &str) -> std::path::PathBuf {
    let dir = match arch {
        Arch::X86_64 => series.to_owned(),
        Arch::Aarch64 => format!("aarch64-{series}"),
    };
    crate::paths::workspace().join("target/vm").join(dir)
}

/// `N passed` from libtest's closing line in `log`.
fn passed_count(log: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .find_map(|rest| rest.split(" passed").next()?.parse().ok())
}

/// The VM test binary for `arch`: optimised and static (musl), as `cargo xtask dist` builds
/// the shipped binary, so the `x86_64` build is also the one the dist layer packs.
fn vm_test_binary(arch: Arch) -> anyhow::Result<std::path::PathBuf> {
    // Optimised: under TCG a debug `snapshot record` takes 22 s where a release one takes
    // 4 (measured on 6.12), and the VM layer runs about 40 of them per kernel.
    cross::test_binary(arch, "vm")
}

/// How many VMs the VM layer runs at once: one per host CPU (a guest runs its tests one at a
/// time and keeps about one host CPU busy), or `SNAPSHOT_VM_JOBS`.
fn vm_jobs() -> usize {
    std::env::var("SNAPSHOT_VM_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// The VM layer on `arch`'s kernel `series` with the test executable `exe`: run in one boot
/// with two CPUs (arm64's VM given twice the time: under TCG arm64 runs about 2.4 times slower
/// than `x86_64`), its output lines marked with `label`.
fn vm_layer(
    arch: Arch,
    series: &str,
    exe: &std::path::Path,
    label: &str,
) -> (anyhow::Result<String>, Vec<String>) {
    let out = vm_results(arch, series);
    let run = || -> anyhow::Result<String> {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).map_err(|e| anyhow!("{}: {e}", out.display()))?;
        let opts = vm::VmOptions {
            series: series.to_owned(),
            timeout: match arch {
                Arch::X86_64 => 900,
                Arch::Aarch64 => 1800,
            },
            smp: 2,
            memory: "1G".into(),
            rw: Some(out.clone()),
            env: vec![
                ("SNAPSHOT_VM_SERIES".into(), series.into()),
                ("SNAPSHOT_VM_OUT".into(), out.to_string_lossy().into_owned()),
            ],
            stdout_copy: Some(out.join("test.log")),
            prefix: Some(format!("[{label}] ")),
            command: vec![exe.into(), OsString::from("--test-threads=1")],
        };
        let code = match arch {
            Arch::X86_64 => vm::run(&opts)?,
            Arch::Aarch64 => arm64::vm::run(&opts)?,
        };
        if code != 0 {
            bail!("VM tests exited with {code}");
        }
        let log = std::fs::read_to_string(out.join("test.log")).unwrap_or_default();
        let passed = passed_count(&log).ok_or_else(|| {
            anyhow!("the VM tests printed no `test result: ok` line: they did not run")
        })?;
        Ok(format!("{passed} tests"))
    };
    let result = run();
    let unsupported: Vec<String> = std::fs::read_to_string(out.join("unsupported.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let result = result.map(|note| {
        if unsupported.is_empty() {
            note
        } else {
            format!("{note}, {} unsupported", unsupported.len())
        }
    });
    (result, unsupported)
}

/// A VM test binary being built in the background.
type Prebuilt = (
    Arch,
    std::thread::JoinHandle<anyhow::Result<std::path::PathBuf>>,
);

/// Starts building `arch`'s VM test binary in the background, in its own target directory
/// (`target/ARCH-vm`: the soak and dist layers run cargo meanwhile, which would otherwise wait
/// for this build's lock), its output into `target/vm/ARCH-build.log`. Those layers leave a
/// CPU mostly idle, and the aarch64 build is a few minutes of the VM layer otherwise.
fn prebuild(arch: Arch) -> Prebuilt {
    let target = crate::paths::workspace().join(format!("target/{}-vm", arch.name()));
    let log = crate::paths::workspace()
        .join("target/vm")
        .join(format!("{}-build.log", arch.name()));
    cmd::step(&format!(
        "VM tests: static build for {} started in the background (progress in {})",
        arch.name(),
        log.display()
    ));
    let handle = std::thread::spawn(move || {
        let build = || -> anyhow::Result<std::path::PathBuf> {
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
            }
            let file =
                std::fs::File::create(&log).map_err(|e| anyhow!("{}: {e}", log.display()))?;
            cross::test_binary_to(arch, "vm", file, Some(&target))
        };
        build().map_err(|e| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow!("{e:#}; the end of {}:\n{}", log.display(), tail.join("\n"))
        })
    });
    (arch, handle)
}

/// The VM layer on every kernel of `kernels`: the test binaries built first (one per
/// architecture; `prebuilt` ones waited for), then [`vm_jobs`] VMs at a time, each kernel's
/// outcome in `kernels`' order.
fn vm_pool(kernels: &[(Arch, String)], prebuilt: Vec<Prebuilt>) -> Vec<Outcome> {
    let mut exes: Vec<(Arch, anyhow::Result<std::path::PathBuf>)> = Vec::new();
    for (arch, handle) in prebuilt {
        cmd::step(&format!(
            "VM tests: waiting for the static build for {}",
            arch.name()
        ));
        let exe = handle
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the background build panicked")));
        if let Ok(exe) = &exe {
            eprintln!("    {}", exe.display());
        }
        exes.push((arch, exe));
    }
    for &(arch, _) in kernels {
        if !exes.iter().any(|(a, _)| *a == arch) {
            cmd::step(&format!("VM tests: static build for {}", arch.name()));
            exes.push((arch, vm_test_binary(arch)));
        }
    }
    let jobs = vm_jobs().min(kernels.len()).max(1);
    cmd::step(&format!(
        "test layer vm: {} kernel(s), {jobs} VM(s) at a time, each line marked with its kernel",
        kernels.len()
    ));
    cmd::parallel(kernels, jobs, |(arch, series)| {
        let release = match arch {
            Arch::X86_64 => kernels::Kernel::find(series).map(|k| k.release),
            Arch::Aarch64 => arm64::Kernel::find(series).map(|k| k.release),
        }
        .unwrap_or_else(|_| format!("{series} {arch}"));
        let label = match arch {
            Arch::X86_64 => series.clone(),
            Arch::Aarch64 => format!("arm64 {series}"),
        };
        let start = Instant::now();
        let exe = &exes.iter().find(|(a, _)| a == arch).expect("built above").1;
        let (result, unsupported) = match exe {
            Ok(exe) => vm_layer(*arch, series, exe, &label),
            Err(e) => (
                Err(anyhow!("the VM tests did not build: {e:#}")),
                Vec::new(),
            ),
        };
        match &result {
            Ok(note) => cmd::green(&format!("[{label}] VM layer passed: {note}")),
            Err(e) => cmd::red(&format!("layer vm on {release} FAILED: {e:#}")),
        }
        Outcome {
            layer: "vm",
            kernel: release,
            result,
            seconds: start.elapsed().as_secs_f64(),
            unsupported,
        }
    })
}

/// Runs the selected layers (all when empty) on the selected architectures' VM kernels (all
/// when empty) and prints the summary; returns the exit code.
pub fn run(layers: &[Layer], kernels: &[String], arches: &[Arch]) -> anyhow::Result<i32> {
    // The soak and dist layers before the VMs: they leave a CPU mostly idle, which builds the
    // aarch64 VM tests meanwhile (see `prebuild`).
    let all = [
        Layer::Unit,
        Layer::Lint,
        Layer::Fuzz,
        Layer::Host,
        Layer::Soak,
        Layer::Dist,
        Layer::Vm,
    ];
    let layers = if layers.is_empty() { &all[..] } else { layers };
    let arches = if arches.is_empty() {
        &Arch::ALL[..]
    } else {
        arches
    };
    let vm_kernels = vm_kernels(kernels, arches)?;
    setup::ensure()?;
    let mut outcomes = Vec::new();
    let record = |outcomes: &mut Vec<Outcome>,
                  layer: &'static str,
                  kernel: String,
                  f: &dyn Fn() -> (anyhow::Result<String>, Vec<String>)| {
        cmd::step(&format!("test layer {layer} ({kernel})"));
        let start = Instant::now();
        let (result, unsupported) = f();
        if let Err(e) = &result {
            cmd::red(&format!("layer {layer} on {kernel} FAILED: {e:#}"));
        }
        outcomes.push(Outcome {
            layer,
            kernel,
            result,
            seconds: start.elapsed().as_secs_f64(),
            unsupported,
        });
    };
    let plain = |r: anyhow::Result<()>| (r.map(|()| String::new()), Vec::new());
    let mut prebuilt = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        // The aarch64 VM build goes beside the first soak or dist layer before the VM layer.
        if matches!(layer, Layer::Soak | Layer::Dist)
            && prebuilt.is_empty()
            && layers[i..].contains(&Layer::Vm)
            && vm_kernels.iter().any(|(a, _)| *a == Arch::Aarch64)
        {
            prebuilt.push(prebuild(Arch::Aarch64));
        }
        match layer {
            Layer::Unit => record(&mut outcomes, "unit", host_kernel(), &|| {
                plain(cargo_ok(&["test"]))
            }),
            Layer::Lint => record(&mut outcomes, "lint", "-".into(), &|| plain(lint())),
            Layer::Fuzz => record(&mut outcomes, "fuzz", "-".into(), &|| {
                plain(match fuzz::run(fuzz::TEST_SECONDS, &[]) {
                    Ok(0) => Ok(()),
                    Ok(_) => Err(anyhow!("a fuzz target crashed (see above)")),
                    Err(e) => Err(e),
                })
            }),
            Layer::Host => {
                record(
                    &mut outcomes,
                    "host",
                    host_kernel(),
                    &|| plain(host_layer()),
                );
                record(
                    &mut outcomes,
                    "host",
                    format!("{}, no atomics", host_kernel()),
                    &|| plain(host_fallbacks()),
                );
            }
            Layer::Vm => {
                outcomes.extend(vm_pool(&vm_kernels, std::mem::take(&mut prebuilt)));
                if vm_kernels.len() == kernels::SERIES.len() + arm64::SERIES.len() {
                    eprintln!(
                        "    the kernels' `snapshot check` reports are in target/vm/*/check.json: `cargo xtask kernel-table` puts them into the README"
                    );
                }
            }
            Layer::Soak => record(&mut outcomes, "soak", host_kernel(), &|| {
                (crate::soak::soak(crate::soak::CI), Vec::new())
            }),
            Layer::Dist => record(&mut outcomes, "dist", host_kernel(), &|| {
                (dist::test(), Vec::new())
            }),
        }
    }
    Ok(summary(&outcomes))
}

/// rustfmt, then clippy on every target, in one run.
fn lint() -> anyhow::Result<()> {
    cargo_ok(&["fmt", "--all", "--", "--check"])?;
    // The integration tests are `test = false` (root only), which `--all-targets` leaves out:
    // name each one.
    let mut args = vec!["clippy", "--all-targets"];
    for target in HOST_TARGETS.iter().chain(&["vm"]) {
        args.extend(["--test", target]);
    }
    args.extend(["--", "-D", "warnings"]);
    cargo_ok(&args)
}

/// Prints the summary of `outcomes`; returns the exit code.
fn summary(outcomes: &[Outcome]) -> i32 {
    eprintln!("\n\x1b[1mtest summary\x1b[0m");
    eprintln!(
        "  {:<6} {:<28} {:<8} {:>8}  tests",
        "layer", "kernel", "result", "time"
    );
    let (mut failed, mut unsupported) = (0, 0);
    for o in outcomes {
        let (mark, color) = if o.result.is_ok() {
            ("passed", "32")
        } else {
            ("FAILED", "31")
        };
        eprintln!(
            "  {:<6} {:<28} \x1b[{color};1m{mark:<8}\x1b[0m {:>7.1}s  {}",
            o.layer,
            o.kernel,
            o.seconds,
            o.result.as_ref().map_or("", String::as_str)
        );
        if let Err(e) = &o.result {
            failed += 1;
            eprintln!("         reason: {e:#}");
        }
        for u in &o.unsupported {
            unsupported += 1;
            eprintln!("         \x1b[33;1m{u}\x1b[0m");
        }
    }
    if unsupported > 0 {
        eprintln!(
            "  \x1b[33;1m{unsupported} check(s) met a feature missing from the kernel\x1b[0m: the tests checked that the recorder falls back or refuses naming it"
        );
    }
    let passed = outcomes.len() - failed;
    println!("{passed} passed, {failed} failed");
    i32::from(failed != 0)
}

/// The outcome of each test in libtest's output (`test NAME ... ok|FAILED`).
fn outcomes(log: &str) -> Vec<(String, bool)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("test ")?;
            let (name, result) = rest.rsplit_once(" ... ")?;
            match result.trim() {
                "ok" => Some((name.to_owned(), true)),
                "FAILED" => Some((name.to_owned(), false)),
                _ => None,
            }
        })
        .collect()
}

/// `cargo xtask test --break`: the VM tests against broken inputs (`SNAPSHOT_TEST_BREAK=1`:
/// a function the workload never calls, names spelt right where a misspelling is expected).
/// Every test must fail; a test that passes cannot catch what it covers, and fails the run.
pub fn break_run(kernels: &[String]) -> anyhow::Result<i32> {
    setup::ensure()?;
    let kernels: Vec<String> = if kernels.is_empty() {
        kernels::SERIES.iter().map(|s| s.name.to_owned()).collect()
    } else {
        kernels
            .iter()
            .map(|k| kernels::series(k).map(|s| s.name.to_owned()))
            .collect::<anyhow::Result<_>>()?
    };
    let exe = vm_test_binary(Arch::X86_64)?;
    let dir = crate::paths::target()?.join("break");
    std::fs::create_dir_all(&dir)?;
    let mut failed = 0;
    for series in &kernels {
        cmd::step(&format!("break mode: VM tests on {series}, each must fail"));
        let log = dir.join(format!("vm-{series}.log"));
        let _ = std::fs::remove_file(&log);
        let script = format!(
            "'{}' --test-threads=1 > '{}' 2>&1",
            exe.display(),
            log.display()
        );
        let opts = vm::VmOptions {
            series: series.clone(),
            timeout: 900,
            smp: 2,
            memory: "1G".into(),
            rw: Some(dir.clone()),
            env: vec![
                ("SNAPSHOT_VM_SERIES".into(), series.clone()),
                ("SNAPSHOT_TEST_BREAK".into(), "1".into()),
            ],
            stdout_copy: None,
            prefix: None,
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        };
        let _ = vm::run(&opts)?;
        let text = std::fs::read_to_string(&log)
            .with_context(|| format!("the VM wrote no test log at {}", log.display()))?;
        let results = outcomes(&text);
        let passed: Vec<&str> = results
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(n, _)| n.as_str())
            .collect();
        if results.is_empty() || !passed.is_empty() {
            failed += 1;
            cmd::red(&format!(
                "break mode on {series}: {} test(s) ran, these passed though broken: {passed:?} (log: {})",
                results.len(),
                log.display()
            ));
        } else {
            cmd::green(&format!(
                "break mode on {series}: all {} tests failed, as they must",
                results.len()
            ));
        }
    }
    Ok(i32::from(failed != 0))
}

/// `cargo xtask soak --events N`: the exactly-once engine test with `events` events (release build).
pub fn soak(events: u64) -> anyhow::Result<i32> {
    setup::ensure()?;
    if !cmd::is_root() {
        bail!("the soak test loads eBPF programs and needs root: run `sudo -E cargo xtask soak`");
    }
    cmd::step(&format!(
        "soak: exactly-once accounting over {events} events"
    ));
    let start = Instant::now();
    let result = cmd::run(
        build::cargo()
            .args([
                "test",
                "--release",
                "--package",
                "snapshot-userspace",
                "--test",
                "engine",
                "--",
                "--exact",
                "exactly_once_across_many_flips_on_two_cpus",
                "--nocapture",
            ])
            .env("SNAPSHOT_EXACTLY_ONCE_EVENTS", events.to_string()),
    );
    Ok(crate::soak::verdict(result.map(|()| {
        format!("{events} events in {:.0} s", start.elapsed().as_secs_f64())
    })))
}

#[cfg(test)]
mod tests {
    use cargo_metadata::TargetKind;

    #[test]
    fn reads_the_passed_count() {
        let log =
            "running 13 tests\ntest a ... ok\n\ntest result: ok. 13 passed; 0 failed; 0 ignored\n";
        assert_eq!(super::passed_count(log), Some(13));
        assert_eq!(
            super::passed_count("test result: FAILED. 1 passed; 2 failed"),
            None
        );
    }

    #[test]
    fn libtest_outcomes_are_read() {
        let log = "running 2 tests\ntest a ... ok\ntest b::c ... FAILED\ntest d ... ignored\n";
        assert_eq!(
            super::outcomes(log),
            [("a".to_owned(), true), ("b::c".to_owned(), false)]
        );
    }

    #[test]
    fn every_integration_test_target_runs_in_a_layer() {
        let metadata = crate::paths::metadata().unwrap();
        let userspace = metadata
            .packages
            .iter()
            .find(|p| p.name.as_str() == "snapshot-userspace")
            .unwrap();
        let targets: Vec<&str> = userspace
            .targets
            .iter()
            .filter(|t| t.kind.contains(&TargetKind::Test))
            .map(|t| t.name.as_str())
            .collect();
        assert!(targets.len() >= 5, "{targets:?}");
        for t in targets {
            assert!(
                super::HOST_TARGETS.contains(&t) || t == "vm",
                "integration test target `{t}` runs in no layer of `cargo xtask test`"
            );
        }
    }
}
