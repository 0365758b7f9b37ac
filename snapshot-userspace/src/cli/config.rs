//! `snapshot record --config FILE`: the record options in a TOML file, for a recorder run as a
//! service.
//!
//! The keys are the long options of `snapshot record` without their dashes (`buffer-size`,
//! `max-disk`, …) and `command` for the command to start; they are read from the same clap
//! definitions as the command line, so the two cannot drift apart. Each value is checked by
//! the option's own parser, then the file's options are put on the command line *before* the
//! ones typed, for every option not typed: options given on the command line override the
//! file (a repeatable one, such as `probe`, replaces the file's list). Switches take `true` or
//! `false`; repeatable options a string or an array of strings; numbers may be written bare.
//!
//! ```toml
//! out = "/var/lib/snapshot"
//! probe = ["tracepoint:syscalls:sys_exit_openat"]
//! trigger = "sys_exit_openat.ret == -EACCES"
//! keep-going = true
//! keep = 20
//! max-disk = "1G"
//! ```

use std::{ffi::OsString, path::Path};

use anyhow::{Context as _, bail};
use clap::{ArgAction, ArgMatches, parser::ValueSource};

/// The option naming the file.
pub const CONFIG: &str = "config";
/// The key of the command to start (the arguments after `--`).
pub const COMMAND: &str = "command";

/// The config key of `arg`, if it has one (`--help` and `--config` itself have none).
#[must_use]
pub fn key_of(arg: &clap::Arg) -> Option<&str> {
    let id = arg.get_id().as_str();
    if id == CONFIG || matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) {
        return None;
    }
    if arg.is_positional() {
        return Some(id);
    }
    arg.get_long()
}

/// Every config key of `cmd`, in the order `--help` lists the options.
#[must_use]
pub fn keys(cmd: &clap::Command) -> Vec<&str> {
    cmd.get_arguments().filter_map(key_of).collect()
}

/// One TOML value as an argument.
fn scalar(file: &Path, key: &str, v: &toml::Value) -> anyhow::Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(_) => bail!(
            "{}: `{key}` takes a value, not true or false (e.g. {key} = \"…\")",
            file.display()
        ),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => bail!(
            "{}: `{key}` takes a string or a number, not {}",
            file.display(),
            v.type_str()
        ),
    }
}

/// The values of `key` (`arg`) in the file, each checked by the option's own parser.
fn values(file: &Path, arg: &clap::Arg, key: &str, v: &toml::Value) -> anyhow::Result<Vec<String>> {
    let repeatable = arg.is_positional() || matches!(arg.get_action(), ArgAction::Append);
    let values = match v {
        toml::Value::Array(items) if repeatable => items
            .iter()
            .map(|i| scalar(file, key, i))
            .collect::<anyhow::Result<Vec<_>>>()?,
        toml::Value::Array(_) => bail!("{}: `{key}` takes one value, not an array", file.display()),
        v => vec![scalar(file, key, v)?],
    };
    // The option alone, with its own parser (ranges and choices included), checks each value.
    let alone = arg
        .clone()
        .action(ArgAction::Set)
        .required(false)
        .required_unless_present(clap::builder::Resettable::Reset)
        .conflicts_with(clap::builder::Resettable::Reset);
    let check = clap::Command::new("record").no_binary_name(true).arg(alone);
    for value in values.iter().filter(|_| !arg.is_positional()) {
        if let Err(e) = check
            .clone()
            .try_get_matches_from([OsString::from(format!("--{key}={value}"))])
        {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let why = first.strip_prefix("error: ").unwrap_or(first);
            bail!("{}: `{key} = {value:?}`: {why}", file.display());
        }
    }
    Ok(values)
}

/// The arguments the file `text` (read from `file`) stands for, for the `record` command
/// `cmd`, leaving out the options `typed` (the command line's matches) gives: the options
/// first, then the command to start (empty when none or typed).
pub fn arguments(
    file: &Path,
    text: &str,
    cmd: &clap::Command,
    typed: &ArgMatches,
) -> anyhow::Result<(Vec<OsString>, Vec<OsString>)> {
    let table: toml::Table = toml::from_str(text)
        .with_context(|| format!("{} is not a valid TOML file", file.display()))?;
    let mut options = Vec::new();
    let mut command = Vec::new();
    for (key, value) in &table {
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| key_of(a) == Some(key.as_str()))
        else {
            let dashed = key.replace('_', "-");
            let hint = if keys(cmd).contains(&dashed.as_str()) {
                format!(" (did you mean `{dashed}`?)")
            } else {
                String::new()
            };
            bail!(
                "{}: unknown key `{key}`{hint}; the keys are the long options of `snapshot record` without `--`: {}",
                file.display(),
                keys(cmd).join(", ")
            );
        };
        let id = arg.get_id().as_str();
        if typed.value_source(id) == Some(ValueSource::CommandLine) {
            continue;
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            match value {
                toml::Value::Boolean(true) => options.push(OsString::from(format!("--{key}"))),
                toml::Value::Boolean(false) => {}
                other => bail!(
                    "{}: `{key}` is a switch: write `{key} = true` or `{key} = false`, not a {}",
                    file.display(),
                    other.type_str()
                ),
            }
            continue;
        }
        let values = values(file, arg, key, value)?;
        if arg.is_positional() {
            command.extend(values.into_iter().map(OsString::from));
        } else {
            options.extend(
                values
                    .into_iter()
                    .map(|v| OsString::from(format!("--{key}={v}"))),
            );
        }
    }
    Ok((options, command))
}

/// The command line `args` (`snapshot record … [-- CMD…]`) with the options of the config
/// file `file` merged in (see the module's text); `--config` itself is left out.
pub fn merge(
    args: &[OsString],
    file: &Path,
    cmd: &clap::Command,
    typed: &ArgMatches,
) -> anyhow::Result<Vec<OsString>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the --config file {}", file.display()))?;
    let (options, command) = arguments(file, &text, cmd, typed)?;
    let Some(at) = args.iter().position(|a| a == "record") else {
        bail!("--config is an option of `snapshot record`");
    };
    let mut merged: Vec<OsString> = args[..=at].to_vec();
    merged.extend(options);
    let mut rest = args[at + 1..].iter();
    let mut separator = false;
    while let Some(a) = rest.next() {
        if a == "--" {
            separator = true;
            merged.push(a.clone());
            merged.extend(rest.by_ref().cloned());
            break;
        }
        if a == "--config" {
            rest.next();
            continue;
        }
        if a.to_str().is_some_and(|s| s.starts_with("--config=")) {
            continue;
        }
        merged.push(a.clone());
    }
    if !command.is_empty() {
        if !separator {
            merged.push("--".into());
        }
        merged.extend(command);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::CommandFactory as _;

    use super::*;
    use crate::cli::{Cli, Command, record::RecordArgs};

    /// A sample value for every key: a new record option must get one here, and is then
    /// checked to pass from a file to the command line.
    const SAMPLES: &[(&str, &str)] = &[
        (
            "probe",
            r#"["tracepoint:syscalls:sys_enter_openat", "rawtp:sys_exit"]"#,
        ),
        ("pid", "42"),
        ("tid", "43"),
        ("comm", r#""nginx""#),
        ("follow-forks", "true"),
        ("keep-going", "true"),
        ("strict", "true"),
        ("max-glob", "7"),
        ("string-size", "128"),
        ("trigger", r#""manual""#),
        ("out", r#""/tmp/from-config""#),
        ("allow-shared-out", "true"),
        ("buffer-size", r#""2M""#),
        ("on-no-spare", r#""stop""#),
        ("count", "3"),
        ("holdoff", r#""10ms""#),
        ("post", r#""100""#),
        ("max-snapshots", "9"),
        ("max-pending", r#""8M""#),
        ("keep", "5"),
        ("max-disk", r#""1G""#),
        ("on-snapshot", r#""echo uploaded""#),
        ("dump-on-exit", "true"),
        ("json", "true"),
        ("json-out", r#""/tmp/lines.json""#),
        ("quiet", "true"),
        ("command", r#"["/bin/true", "--flag"]"#),
    ];

    fn record_cmd() -> clap::Command {
        Cli::command().find_subcommand("record").unwrap().clone()
    }

    /// Parses `args` with the config `text` (written to a temporary file).
    fn parse(args: &[&str], text: &str) -> anyhow::Result<(Vec<OsString>, RecordArgs)> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let file = std::env::temp_dir().join(format!(
            "snapshot-config-test-{}-{n}.toml",
            std::process::id()
        ));
        std::fs::write(&file, text).unwrap();
        let mut argv: Vec<OsString> = vec!["snapshot".into(), "record".into()];
        argv.push("--config".into());
        argv.push(file.clone().into());
        argv.extend(args.iter().map(OsString::from));
        let result = crate::cli::parse_from(&argv).map(|cli| match cli.command {
            Command::Record(r) => r,
            _ => unreachable!(),
        });
        let merged = std::fs::read_to_string(&file).map_or_else(
            |_| Vec::new(),
            |_| {
                let m = Cli::command().try_get_matches_from(&argv).unwrap();
                let sub = m.subcommand_matches("record").unwrap();
                merge(&argv, &file, &record_cmd(), sub).unwrap_or_default()
            },
        );
        let _ = std::fs::remove_file(&file);
        result.map(|r| (merged, r))
    }

    #[test]
    fn every_record_option_has_a_config_key_that_reaches_the_parser() {
        let cmd = record_cmd();
        let keys = keys(&cmd);
        for key in &keys {
            assert!(
                SAMPLES.iter().any(|(k, _)| k == key),
                "record option `{key}` has no sample in SAMPLES: add one"
            );
        }
        let base = r#"out = "/tmp/x"
probe = ["tracepoint:syscalls:sys_enter_openat"]
trigger = "manual"
"#;
        for (key, value) in SAMPLES {
            assert!(keys.contains(key), "sample `{key}` is not a record option");
            let text = if ["out", "probe", "trigger"].contains(key) {
                format!(
                    "{key} = {value}\n{}",
                    base.lines()
                        .filter(|l| !l.starts_with(key))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            } else {
                format!("{base}{key} = {value}\n")
            };
            let (merged, _) =
                parse(&[], &text).unwrap_or_else(|e| panic!("`{key} = {value}` is refused: {e:#}"));
            let m = Cli::command().try_get_matches_from(&merged).unwrap();
            let sub = m.subcommand_matches("record").unwrap();
            let arg = cmd
                .get_arguments()
                .find(|a| key_of(a) == Some(key))
                .unwrap();
            assert_eq!(
                sub.value_source(arg.get_id().as_str()),
                Some(ValueSource::CommandLine),
                "`{key}` from the file did not reach the parser: {merged:?}"
            );
        }
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let text = r#"out = "/tmp/file-out"
probe = ["tracepoint:syscalls:sys_enter_openat", "rawtp:sys_exit"]
trigger = "manual"
buffer-size = "2M"
keep = 3
max-disk = "64M"
command = ["/bin/echo", "from-file"]
"#;
        let (_, file_only) = parse(&[], text).unwrap();
        assert_eq!(file_only.out, PathBuf::from("/tmp/file-out"));
        assert_eq!(file_only.keep, Some(3));
        assert_eq!(file_only.max_disk, Some(64 << 20));
        assert_eq!(file_only.probes.len(), 2);
        assert_eq!(file_only.command, ["/bin/echo", "from-file"]);
        let (_, typed) = parse(
            &[
                "--out",
                "/tmp/typed",
                "--keep",
                "7",
                "--probe",
                "rawtp:sys_enter",
                "--",
                "/bin/true",
            ],
            text,
        )
        .unwrap();
        assert_eq!(typed.out, PathBuf::from("/tmp/typed"));
        assert_eq!(typed.keep, Some(7));
        assert_eq!(typed.max_disk, Some(64 << 20), "not typed: from the file");
        assert_eq!(typed.buffer_size, file_only.buffer_size);
        assert_eq!(typed.probes.len(), 1, "a typed list replaces the file's");
        assert_eq!(typed.command, ["/bin/true"]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let base = "out = \"/tmp/x\"\nprobe = \"rawtp:sys_enter\"\ntrigger = \"manual\"\n";
        let cases = [
            ("kep = 3", "unknown key `kep`"),
            ("buffer_size = \"1M\"", "did you mean `buffer-size`?"),
            ("keep = \"many\"", "`keep = \"many\"`"),
            ("keep = 0", "`keep = \"0\"`"),
            ("keep-going = \"yes\"", "`keep-going` is a switch"),
            ("out2 = 1", "the keys are the long options"),
            ("max-disk = [\"1G\"]", "`max-disk` takes one value"),
            ("holdoff = true", "`holdoff` takes a value"),
            ("[section]\nkeep = 1", "unknown key `section`"),
            (
                "pid = { x = 1 }",
                "`pid` takes a string or a number, not table",
            ),
            ("keep = ", "not a valid TOML file"),
        ];
        for (line, expected) in cases {
            let err = parse(&[], &format!("{base}{line}\n"))
                .err()
                .unwrap_or_else(|| panic!("`{line}` was accepted"));
            let text = format!("{err:#}");
            assert!(text.contains(expected), "`{line}`: {text}");
        }
        let err = parse(&[], "kep = 3\n").err().unwrap();
        let text = format!("{err:#}");
        for key in [
            "probe",
            "trigger",
            "out",
            "keep",
            "max-disk",
            "on-snapshot",
            "command",
        ] {
            assert!(text.contains(key), "the valid keys are listed: {text}");
        }
    }

    #[test]
    fn a_missing_required_option_is_still_refused() {
        let err = parse(&[], "probe = \"rawtp:sys_enter\"\ntrigger = \"manual\"\n")
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("--out"), "{err:#}");
    }
}
