//! Project tasks. `cargo xtask setup | build | run | test | vm | bench | soak | docs | fuzz |
//! kernel-table | dist`.

mod apt;
mod arch;
mod arm64;
mod build;
mod cmd;
mod cross;
mod dist;
mod docs;
mod fuzz;
mod initramfs;
mod kernel_table;
mod kernels;
// Used by snapshot-userspace/build.rs; compiled here for its unit tests.
#[cfg(test)]
mod object_cache;
mod paths;
mod run;
mod setup;
mod soak;
mod test;
mod toolchain;
mod vm;

use std::{ffi::OsString, path::PathBuf};

use clap::{Parser, Subcommand};

/// Tasks of the snapshot controller project.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: Debian packages, QEMU, toolchains, bpf-linker, VM kernels.
    Setup {
        /// Refresh the private apt lists even if they are recent.
        #[arg(long)]
        refresh: bool,
    },
    /// Build the eBPF object and the userspace binaries.
    Build {
        /// Optimised build.
        #[arg(long)]
        release: bool,
        /// Build static (musl) binaries for this architecture, optimised, into
        /// target/<arch>-unknown-linux-musl/release (aarch64 is cross-built).
        #[arg(long)]
        arch: Option<arch::Arch>,
    },
    /// Run the controller as root (`snapshot ARGS`); with no arguments, the demo.
    Run {
        /// Arguments for `snapshot`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run every test layer: unit (no root), host integration (root), VM integration.
    Test {
        /// Only these layers (unit, lint, host, vm); default all.
        #[arg(long = "layer", value_name = "LAYER")]
        layers: Vec<test::Layer>,
        /// Only these VM kernels (5.10, 6.1, 6.12, sid; sid also by its version); default all.
        #[arg(long = "kernel", value_name = "SERIES")]
        kernels: Vec<String>,
        /// Only the VM kernels of these architectures (`x86_64`, aarch64); default both.
        #[arg(long = "arch", value_name = "ARCH")]
        arches: Vec<arch::Arch>,
        /// Break mode: run the tests that have one (the VM layer) against deliberately broken
        /// inputs; every one must fail, and the command fails if any passes.
        #[arg(long = "break")]
        break_mode: bool,
    },
    /// Run the fuzz targets (cargo-fuzz, libFuzzer) for a bounded time; fails on any crash.
    Fuzz {
        /// Seconds for all targets together.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Only these targets (default: all).
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<String>,
    },
    /// Print the benchmark table (per-event cost against the peers, accounting at rate,
    /// trigger-to-file latency, drain speed). Root.
    Bench,
    /// The long-run proof (root): the release recorder with `--keep 5` on a workload that
    /// triggers every 2 ms, for 10 minutes unless told; reports RSS, files kept, accounting and
    /// the BPF objects held, and fails when a bound is broken. With `--events N`, the
    /// exactly-once engine test with N events instead.
    Soak {
        /// Hours to run.
        #[arg(long, conflicts_with_all = ["minutes", "seconds", "events"])]
        hours: Option<u64>,
        /// Minutes to run (default 10).
        #[arg(long, conflicts_with_all = ["seconds", "events"])]
        minutes: Option<u64>,
        /// Seconds to run (at least 30).
        #[arg(long, conflicts_with = "events")]
        seconds: Option<u64>,
        /// Run the exactly-once engine test with this many events instead (e.g. 10000000).
        #[arg(long)]
        events: Option<u64>,
    },
    /// Write the man pages and shell completions into target/docs/{man,completions}.
    Docs,
    /// Render the README's kernel × probe kind × feature table from the `snapshot check`
    /// reports of the last VM test run on every kernel and this host's (root).
    KernelTable,
    /// Package a static (musl) `snapshot` with its eBPF object, man pages, completions and
    /// systemd unit as a tarball and a .deb in target/dist.
    Dist {
        /// Architecture of the package.
        #[arg(long, default_value = "x86_64")]
        arch: arch::Arch,
    },
    /// Run a command as root inside QEMU (TCG) on one of Debian's kernels.
    Vm {
        /// Kernel series: 5.10, 6.1, 6.12 or sid (also by its version, e.g. 7.2).
        #[arg(long, default_value = "6.1")]
        kernel: String,
        /// Guest architecture: aarch64 boots Debian's arm64 kernel with a busybox userland and
        /// the workspace shared at its own path (run static aarch64 builds there).
        #[arg(long, default_value = "x86_64")]
        arch: arch::Arch,
        /// Seconds before the VM is stopped.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Guest CPUs.
        #[arg(long, default_value_t = 1)]
        smp: u32,
        /// Guest memory.
        #[arg(long, default_value = "1G")]
        memory: String,
        /// Host directory shared read-write at the same path (everything else is read-only).
        #[arg(long)]
        rw: Option<PathBuf>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup { refresh } => setup::run(refresh).map(|()| 0),
        Task::Build {
            release,
            arch: None,
        } => build::binaries(release).map(|_| 0),
        Task::Build {
            arch: Some(arch), ..
        } => setup::ensure()
            .and_then(|()| cross::binaries(arch))
            .map(|_| 0),
        Task::Run { args } => run::run(&args),
        Task::Test {
            layers,
            kernels,
            arches,
            break_mode,
        } => {
            if break_mode {
                test::break_run(&kernels)
            } else {
                test::run(&layers, &kernels, &arches)
            }
        }
        Task::Fuzz { seconds, targets } => fuzz::run(seconds, &targets),
        Task::Bench => run::bench(),
        Task::Soak {
            hours,
            minutes,
            seconds,
            events,
        } => match events {
            Some(events) => test::soak(events),
            None => soak::run(
                hours
                    .map(|h| h * 3600)
                    .or(minutes.map(|m| m * 60))
                    .or(seconds)
                    .unwrap_or(600),
            ),
        },
        Task::Docs => docs::run(),
        Task::KernelTable => kernel_table::run(),
        Task::Dist { arch } => dist::run(arch).map(|_| 0),
        Task::Vm {
            kernel,
            arch,
            timeout,
            smp,
            memory,
            rw,
            command,
        } => {
            let opts = vm::VmOptions {
                series: kernel,
                timeout,
                smp,
                memory,
                rw,
                env: Vec::new(),
                stdout_copy: None,
                prefix: None,
                command,
            };
            match arch {
                arch::Arch::X86_64 => vm::run(&opts),
                arch::Arch::Aarch64 => arm64::vm::run(&opts),
            }
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            cmd::red(&format!("xtask: error: {e:#}"));
            std::process::exit(1);
        }
    }
}
