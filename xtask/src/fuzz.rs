//! `cargo xtask fuzz [--seconds N] [--target T…]`: builds the fuzz targets of
//! `snapshot-userspace/fuzz` with cargo-fuzz (libFuzzer, the eBPF nightly) and runs each for
//! N seconds in all, starting from the committed seeds (real snapshot files among them);
//! fails on any crash, naming the input that caused it and how to replay it.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::{cmd, paths, setup};

/// The fuzz targets, in `snapshot-userspace/fuzz/Cargo.toml`.
pub const TARGETS: [&str; 5] = [
    "snapshot_reader",
    "trigger",
    "probe_spec",
    "units",
    "command_line",
];

/// Seconds for all targets together in the test layer.
pub const TEST_SECONDS: u64 = 60;

fn fuzz_dir() -> PathBuf {
    paths::workspace().join("snapshot-userspace/fuzz")
}

/// PATH with setup's tools (cargo-fuzz) first.
fn path_with_tools() -> std::ffi::OsString {
    let mut dirs = vec![paths::tools().join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// `cargo +NIGHTLY fuzz SUBCOMMAND` with the shared arguments.
fn cargo_fuzz(subcommand: &str) -> anyhow::Result<Command> {
    let nightly = setup::pins()?.ebpf_toolchain;
    let mut c = Command::new("cargo");
    c.current_dir(paths::workspace())
        .env("PATH", path_with_tools())
        // The targets load no eBPF program: no need to build the object again.
        .env("AYA_BUILD_SKIP", "1")
        .arg(format!("+{nightly}"))
        .args(["fuzz", subcommand, "--fuzz-dir"])
        .arg(fuzz_dir())
        // No sanitizer (the code under test is safe Rust) and the dev profile: a build of a
        // few minutes instead of a quarter of an hour on two cores, with overflow checks
        // (an overflow is a crash), at a tenth of the speed, still 10^4-10^5 runs a second.
        .args(["--sanitizer", "none", "--dev", "--target-dir"])
        .arg(paths::target()?.join("fuzz"));
    Ok(c)
}

/// Runs `targets` (all when empty) for `seconds` in all; returns the exit code.
pub fn run(seconds: u64, targets: &[String]) -> anyhow::Result<i32> {
    setup::ensure()?;
    let targets: Vec<String> = if targets.is_empty() {
        TARGETS.iter().map(|t| (*t).to_owned()).collect()
    } else {
        for t in targets {
            anyhow::ensure!(
                TARGETS.contains(&t.as_str()),
                "no fuzz target `{t}`: the targets are {}",
                TARGETS.join(", ")
            );
        }
        targets.to_vec()
    };
    cmd::step("fuzz: building the targets (cargo-fuzz, libFuzzer)");
    cmd::run(&mut cargo_fuzz("build")?).context("building the fuzz targets failed")?;
    let per_target = (seconds / targets.len() as u64).max(1);
    let work = paths::target()?.join("fuzz");
    // libFuzzer runs one process per target, on one CPU: run one target per CPU at once, each
    // for its own share of the time, with its output in a log (shown when it crashes).
    let jobs = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(targets.len());
    cmd::step(&format!(
        "fuzz: {} target(s), {per_target} s each, {jobs} at a time (logs in {})",
        targets.len(),
        work.join("logs").display()
    ));
    let results = cmd::parallel(&targets, jobs, |t| fuzz_one(t, per_target, &work));
    let mut crashed = Vec::new();
    let mut failed = Vec::new();
    for (t, result) in targets.iter().zip(results) {
        match result {
            Ok(true) => {}
            Ok(false) => crashed.push(t.clone()),
            Err(e) => failed.push(format!("{t}: {e:#}")),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("fuzz targets did not run: {}", failed.join("; "));
    }
    if crashed.is_empty() {
        cmd::green(&format!(
            "fuzz: {} target(s), {per_target} s each, no crash",
            targets.len()
        ));
        Ok(0)
    } else {
        cmd::red(&format!("fuzz: crashes in {}", crashed.join(", ")));
        Ok(1)
    }
}

/// Fuzzes target `t` for `seconds` from its corpus and seeds, its output in
/// `work/logs/T.log`; true when it ran without a crash. A crash prints the log's tail, where the
/// input is and how to replay it.
fn fuzz_one(t: &str, seconds: u64, work: &std::path::Path) -> anyhow::Result<bool> {
    let corpus = work.join("corpus").join(t);
    let artifacts = work.join("artifacts").join(t);
    let logs = work.join("logs");
    for dir in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log_path = logs.join(format!("{t}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut c = cargo_fuzz("run")?;
    c.arg(t)
        .arg(&corpus)
        .arg(fuzz_dir().join("seeds").join(t))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-max_len=65536")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(log.try_clone()?)
        .stderr(log);
    let status = c.status().context("cannot start cargo fuzz")?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if status.success() {
        let runs = text
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or_else(|| "?".to_owned(), |n| n.trim().to_owned());
        eprintln!("    fuzz: {t}: {runs} runs in {seconds} s, no crash");
        return Ok(true);
    }
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    cmd::red(&format!(
        "fuzz target {t} crashed ({status}): the input is in {}; replay it with `cargo +{} fuzz run --fuzz-dir {} {t} FILE`",
        artifacts.display(),
        setup::pins()?.ebpf_toolchain,
        fuzz_dir().display()
    ));
    Ok(false)
}

#[cfg(test)]
mod tests {
    /// Every fuzz target of `snapshot-userspace/fuzz` runs (and has seeds), and no other.
    #[test]
    fn targets_match_the_fuzz_crate() {
        let manifest = std::fs::read_to_string(super::fuzz_dir().join("Cargo.toml")).unwrap();
        let bins: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|b| {
                b.lines()
                    .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
            })
            .collect();
        assert_eq!(bins, super::TARGETS);
        for t in super::TARGETS {
            let seeds = super::fuzz_dir().join("seeds").join(t);
            assert!(
                std::fs::read_dir(&seeds).is_ok_and(|mut d| d.next().is_some()),
                "no seeds in {}",
                seeds.display()
            );
        }
    }
}
