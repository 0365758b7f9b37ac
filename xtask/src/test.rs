//! `cargo xtask test`: every layer, one summary. A layer that cannot run fails the command
//! with the reason; nothing is skipped silently.

use std::{ffi::OsString, time::Instant};

use anyhow::bail;

use crate::{arch::Arch, arm64, build, cmd, dist, setup, vm};

/// A test layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layer {
    /// Unit tests, no root (`cargo test` of the default members; the eBPF crate only builds
    /// for the BPF target).
    Unit,
    /// rustfmt and clippy.
    Lint,
    /// Integration tests loading real programs on this host (root).
    Host,
    /// Integration tests inside QEMU on each kernel (kprobe, kretprobe, fentry), `x86_64` and
    /// aarch64.
    Vm,
    /// The static package (`cargo xtask dist`) installed into a fresh Debian 13 root, where it
    /// records (root).
    Dist,
}

struct Outcome {
    layer: &'static str,
    kernel: String,
    result: anyhow::Result<Note>,
    seconds: f64,
}

/// What a passing layer adds to its summary line.
#[derive(Default)]
struct Note {
    /// Shown after the time (`12 tests`).
    detail: String,
    /// Features the kernel lacks, each checked to fail cleanly by the tests, counted and listed.
    unsupported: Vec<String>,
}

fn plain(result: anyhow::Result<()>) -> anyhow::Result<Note> {
    result.map(|()| Note::default())
}

fn arm64_layer(series: &arm64::Series) -> anyhow::Result<Note> {
    let passed = arm64::test_layer(series)?;
    let mut detail = format!("{} tests", passed.tests);
    if !passed.unsupported.is_empty() {
        detail.push_str(&format!(", {} unsupported", passed.unsupported.len()));
    }
    Ok(Note {
        detail,
        unsupported: passed.unsupported,
    })
}

/// The VM kernels to test: each architecture's (all of them, or those named by `kernels`).
/// A named kernel no selected architecture has, or an architecture named with none of the
/// named kernels, is an error.
fn vm_kernels(
    kernels: &[String],
    arches: &[Arch],
) -> anyhow::Result<(Vec<String>, Vec<arm64::Series>)> {
    let named = |name: &str| kernels.is_empty() || kernels.iter().any(|k| k == name);
    let x86: Vec<String> = if arches.contains(&Arch::X86_64) {
        vm::SERIES
            .iter()
            .filter(|s| named(s))
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        Vec::new()
    };
    let arm: Vec<arm64::Series> = if arches.contains(&Arch::Aarch64) {
        arm64::SERIES
            .into_iter()
            .filter(|s| named(s.name))
            .collect()
    } else {
        Vec::new()
    };
    for k in kernels {
        if !x86.contains(k) && !arm.iter().any(|s| s.name == k) {
            bail!(
                "no VM kernel `{k}` for {}: x86_64 has {}, aarch64 has {}",
                arches
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(" or "),
                vm::SERIES.join(", "),
                arm64::SERIES.map(|s| s.name).join(", ")
            );
        }
    }
    Ok((x86, arm))
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

fn cargo_ok(args: &[&str]) -> anyhow::Result<()> {
    cmd::run(build::cargo().args(args))
}

fn host_layer() -> anyhow::Result<()> {
    if !cmd::is_root() {
        bail!("needs root to load eBPF programs: run `sudo -E cargo xtask test`");
    }
    let mut cargo = build::cargo();
    // The Perfetto export test decodes its trace with this interpreter's perfetto_trace_pb2.
    cargo.env("SNAPSHOT_PYTHON", crate::paths::python());
    // Every target runs even when one fails: a failure must not hide the others' results.
    cargo.args(["test", "--no-fail-fast", "--package", "snapshot-userspace"]);
    for target in HOST_TARGETS {
        cargo.args(["--test", target]);
    }
    cargo.args(["--", "--test-threads=1"]);
    cmd::run_with_timeout(&mut cargo, std::time::Duration::from_mins(20))
}

/// Integration test targets run on the host (root); `vm` runs in the VM layer. Every
/// `[[test]]` of snapshot-userspace must be in one of them (checked by a unit test).
pub const HOST_TARGETS: [&str; 5] = ["host", "engine", "probes", "triggers", "post"];

fn vm_layer(series: &str) -> anyhow::Result<()> {
    let exe = build::test_binary("vm")?;
    build::binaries(false)?;
    let opts = vm::VmOptions {
        series: series.to_owned(),
        timeout: 900,
        smp: 2,
        memory: "1G".into(),
        rw: None,
        env: vec![("SNAPSHOT_VM_SERIES".into(), series.into())],
        command: vec![exe.into_os_string(), OsString::from("--test-threads=1")],
    };
    match vm::run(&opts)? {
        0 => Ok(()),
        code => bail!("VM tests exited with {code}"),
    }
}

/// Runs the selected layers (all when empty) and prints the summary; returns the exit code.
pub fn run(layers: &[Layer], kernels: &[String], arches: &[Arch]) -> anyhow::Result<i32> {
    let all = [
        Layer::Unit,
        Layer::Lint,
        Layer::Host,
        Layer::Vm,
        Layer::Dist,
    ];
    let layers = if layers.is_empty() { &all[..] } else { layers };
    let arches = if arches.is_empty() {
        &Arch::ALL[..]
    } else {
        arches
    };
    let (kernels, arm64_kernels) = vm_kernels(kernels, arches)?;
    setup::ensure()?;
    let mut outcomes = Vec::new();
    let mut record = |layer: &'static str, kernel: String, f: &dyn Fn() -> anyhow::Result<Note>| {
        cmd::step(&format!("test layer {layer} ({kernel})"));
        let start = Instant::now();
        let result = f();
        if let Err(e) = &result {
            cmd::red(&format!("layer {layer} on {kernel} FAILED: {e:#}"));
        }
        outcomes.push(Outcome {
            layer,
            kernel,
            result,
            seconds: start.elapsed().as_secs_f64(),
        });
    };
    for layer in layers {
        match layer {
            Layer::Unit => record("unit", host_kernel(), &|| plain(cargo_ok(&["test"]))),
            Layer::Lint => record("lint", "-".into(), &|| plain(lint())),
            Layer::Host => record("host", host_kernel(), &|| plain(host_layer())),
            Layer::Vm => {
                for series in &kernels {
                    let label =
                        vm::Kernel::find(series).map_or_else(|_| series.clone(), |k| k.release);
                    record("vm", label, &|| plain(vm_layer(series)));
                }
                for series in &arm64_kernels {
                    let label = arm64::Kernel::find(series.name)
                        .map_or_else(|_| format!("{} arm64", series.name), |k| k.release);
                    record("vm", label, &|| arm64_layer(series));
                }
            }
            Layer::Dist => record("dist", host_kernel(), &|| {
                dist::test().map(|detail| Note {
                    detail,
                    unsupported: Vec::new(),
                })
            }),
        }
    }
    Ok(summary(&outcomes))
}

/// rustfmt, then clippy on every target.
fn lint() -> anyhow::Result<()> {
    cargo_ok(&["fmt", "--all", "--", "--check"])?;
    // The integration tests are `test = false` (root only), which `--all-targets` leaves out:
    // name each one.
    cargo_ok(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    let mut args = vec!["clippy", "--package", "snapshot-userspace"];
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
        "  {:<6} {:<28} {:<8} {:>8}",
        "layer", "kernel", "result", "time"
    );
    let mut failed = 0;
    let mut unsupported = 0;
    for o in outcomes {
        let (mark, color) = if o.result.is_ok() {
            ("passed", "32")
        } else {
            ("FAILED", "31")
        };
        let detail = o.result.as_ref().map_or("", |n| n.detail.as_str());
        eprintln!(
            "  {:<6} {:<28} \x1b[{color};1m{mark:<8}\x1b[0m {:>7.1}s  {detail}",
            o.layer, o.kernel, o.seconds
        );
        match &o.result {
            Err(e) => {
                failed += 1;
                eprintln!("         reason: {e:#}");
            }
            Ok(note) => {
                for u in &note.unsupported {
                    unsupported += 1;
                    eprintln!("         \x1b[33;1m{u}\x1b[0m");
                }
            }
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

/// `cargo xtask soak`: the exactly-once engine test with `events` events (release build).
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
    match result {
        Ok(()) => {
            cmd::green(&format!(
                "soak passed: {events} events in {:.0} s",
                start.elapsed().as_secs_f64()
            ));
            Ok(0)
        }
        Err(e) => {
            cmd::red(&format!("soak FAILED: {e:#}"));
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use cargo_metadata::TargetKind;

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
