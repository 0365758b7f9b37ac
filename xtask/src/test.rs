//! `cargo xtask test`: every layer, one summary. A layer that cannot run fails the command
//! with the reason; nothing is skipped silently.

use std::{ffi::OsString, time::Instant};

use crate::{build, cmd, setup, vm};

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
    /// Integration tests inside QEMU on each kernel (kprobe, kretprobe, fentry).
    Vm,
}

struct Outcome {
    layer: &'static str,
    kernel: String,
    result: Result<(), String>,
    seconds: f64,
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

fn cargo_ok(args: &[&str]) -> Result<(), String> {
    cmd::run(build::cargo().args(args)).map_err(|e| format!("{e:#}"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn host_layer() -> Result<(), String> {
    if !is_root() {
        return Err("needs root to load eBPF programs: run `sudo -E cargo xtask test`".into());
    }
    let mut cargo = build::cargo();
    // The Perfetto export test decodes its trace with this interpreter's perfetto_trace_pb2.
    cargo.env("SNAPSHOT_PYTHON", crate::paths::python());
    cargo.args(["test", "--package", "snapshot-userspace"]);
    for target in HOST_TARGETS {
        cargo.args(["--test", target]);
    }
    cargo.args(["--", "--test-threads=1"]);
    cmd::run_with_timeout(&mut cargo, std::time::Duration::from_mins(20))
        .map_err(|e| format!("{e:#}"))
}

/// Integration test targets run on the host (root); `vm` runs in the VM layer. Every
/// `[[test]]` of snapshot-userspace must be in one of them (checked by a unit test).
pub const HOST_TARGETS: [&str; 6] = ["host", "engine", "probes", "triggers", "post", "strings"];

fn vm_layer(series: &str) -> Result<(), String> {
    let exe = build::test_binary("vm").map_err(|e| format!("{e:#}"))?;
    build::binaries(false).map_err(|e| format!("{e:#}"))?;
    let opts = vm::VmOptions {
        series: series.to_owned(),
        timeout: 900,
        smp: 2,
        memory: "1G".into(),
        rw: None,
        env: vec![("SNAPSHOT_VM_SERIES".into(), series.into())],
        command: vec![exe.into_os_string(), OsString::from("--test-threads=1")],
    };
    match vm::run(&opts) {
        Ok(0) => Ok(()),
        Ok(code) => Err(format!("VM tests exited with {code}")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Runs the selected layers (all when empty) and prints the summary; returns the exit code.
pub fn run(layers: &[Layer], kernels: &[String]) -> anyhow::Result<i32> {
    let all = [Layer::Unit, Layer::Lint, Layer::Host, Layer::Vm];
    let layers = if layers.is_empty() { &all[..] } else { layers };
    let kernels: Vec<String> = if kernels.is_empty() {
        vm::SERIES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        kernels.to_vec()
    };
    if !setup::complete() {
        cmd::step("something is missing: running `cargo xtask setup` first");
        setup::run(false)?;
    }
    let mut outcomes = Vec::new();
    let mut record = |layer: &'static str, kernel: String, f: &dyn Fn() -> Result<(), String>| {
        cmd::step(&format!("test layer {layer} ({kernel})"));
        let start = Instant::now();
        let result = f();
        if let Err(e) = &result {
            cmd::red(&format!("layer {layer} on {kernel} FAILED: {e}"));
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
            Layer::Unit => record("unit", host_kernel(), &|| cargo_ok(&["test"])),
            Layer::Lint => record("lint", "-".into(), &|| {
                cargo_ok(&["fmt", "--all", "--", "--check"])?;
                // The integration tests are `test = false` (root only), which `--all-targets`
                // leaves out: name each one.
                cargo_ok(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
                let mut args = vec!["clippy", "--package", "snapshot-userspace"];
                for target in HOST_TARGETS.iter().chain(&["vm"]) {
                    args.extend(["--test", target]);
                }
                args.extend(["--", "-D", "warnings"]);
                cargo_ok(&args)
            }),
            Layer::Host => record("host", host_kernel(), &host_layer),
            Layer::Vm => {
                for series in &kernels {
                    let label =
                        vm::Kernel::find(series).map_or_else(|_| series.clone(), |k| k.release);
                    record("vm", label, &|| vm_layer(series));
                }
            }
        }
    }
    eprintln!("\n\x1b[1mtest summary\x1b[0m");
    eprintln!(
        "  {:<6} {:<28} {:<8} {:>8}",
        "layer", "kernel", "result", "time"
    );
    let mut failed = 0;
    for o in &outcomes {
        let (mark, color) = if o.result.is_ok() {
            ("passed", "32")
        } else {
            ("FAILED", "31")
        };
        eprintln!(
            "  {:<6} {:<28} \x1b[{color};1m{mark:<8}\x1b[0m {:>7.1}s",
            o.layer, o.kernel, o.seconds
        );
        if let Err(e) = &o.result {
            failed += 1;
            eprintln!("         reason: {e}");
        }
    }
    let passed = outcomes.len() - failed;
    println!("{passed} passed, {failed} failed");
    Ok(i32::from(failed != 0))
}

/// `cargo xtask soak`: the exactly-once engine test with `events` events (release build).
pub fn soak(events: u64) -> anyhow::Result<i32> {
    if !setup::complete() {
        cmd::step("something is missing: running `cargo xtask setup` first");
        setup::run(false)?;
    }
    if !is_root() {
        anyhow::bail!(
            "the soak test loads eBPF programs and needs root: run `sudo -E cargo xtask soak`"
        );
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
    #[test]
    fn every_integration_test_target_runs_in_a_layer() {
        let manifest = std::fs::read_to_string(
            crate::paths::workspace().join("snapshot-userspace/Cargo.toml"),
        )
        .unwrap();
        let targets: Vec<&str> = manifest
            .split("[[test]]")
            .skip(1)
            .filter_map(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
            })
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
