//! Bad input as a matrix: over a hundred command lines that must be refused, each with a clear
//! message naming what is wrong, the exit status (2: the command line; 1: refused when
//! checked against the system), no panic, nothing written into `--out`, and no BPF object
//! left behind that no live process holds.

mod common;

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use common::{OutDir, SNAPSHOT, WORKLOAD, require_root};

/// The files the cases point at.
struct Fixture {
    dir: OutDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = OutDir::new();
        let d = &dir.0;
        std::fs::create_dir_all(d.join("shared")).unwrap();
        std::fs::set_permissions(d.join("shared"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::fs::create_dir_all(d.join("norecorder")).unwrap();
        std::fs::create_dir_all(d.join("stale")).unwrap();
        std::fs::write(d.join("stale/.recorder.sock"), b"not a socket").unwrap();
        std::fs::create_dir_all(d.join("badlock")).unwrap();
        std::os::unix::fs::symlink(d.join("file"), d.join("badlock/.recorder.lock")).unwrap();
        std::fs::write(d.join("file"), b"a regular file").unwrap();
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1.snap");
        let bytes = std::fs::read(golden).unwrap();
        std::fs::write(d.join("good.snap"), &bytes).unwrap();
        std::fs::write(d.join("trunc.snap"), &bytes[..bytes.len() / 2]).unwrap();
        std::os::unix::fs::symlink(d.join("file"), d.join("link-to-file")).unwrap();
        common::mkfifo(&d.join("fifo.snap"));
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).to_string_lossy().into_owned()
    }
}

/// One case: the arguments (`{out}` is a fresh output directory, `{f:NAME}` a fixture), the
/// exit status, and what stderr must say.
struct Case {
    args: Vec<String>,
    code: i32,
    says: &'static str,
}

fn case(args: &[&str], code: i32, says: &'static str) -> Case {
    Case {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code,
        says,
    }
}

/// `record --out {out} --probe UPROBE --trigger TRIGGER EXTRA… -- WORKLOAD calls 1`.
fn rec(trigger: &str, extra: &[&str], code: i32, says: &'static str) -> Case {
    let probe = common::workload_probe("uprobe");
    let mut args = vec![
        "record",
        "--out",
        "{out}",
        "--probe",
        &probe,
        "--trigger",
        trigger,
    ];
    args.extend_from_slice(extra);
    args.extend(["--", WORKLOAD, "calls", "1"]);
    case(&args, code, says)
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let up = common::workload_probe("uprobe");
    let t = "snapshot_workload_fn";
    let deep = format!("{}{t}.arg0 == 1{}", "(".repeat(100), ")".repeat(100));
    let many_tokens = vec![format!("{t}.arg0 == 1"); 400].join(" || ");
    let long = vec![format!("{t}.arg0 == 1"); 12].join(" || ");
    let consts = (1..=9)
        .map(|i| format!("{t}.arg0 == {i}"))
        .collect::<Vec<_>>()
        .join(" || ");
    let maxes = vec![format!("max({t}.arg0)"); 5].join(" || ");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let (deep, many_tokens, long, consts, maxes) = (
        leak(deep),
        leak(many_tokens),
        leak(long),
        leak(consts),
        leak(maxes),
    );
    let dup = format!("x={up}");
    let dup = leak(dup);
    let mut v = vec![
        // The command line itself (exit 2).
        case(&["record"], 2, "required arguments were not provided"),
        case(&["record", "--out", "{out}", "--trigger", "manual"], 1, "nothing to record"),
        case(&["record", "--out", "{out}", "-p", &up], 2, "--trigger <EXPR>"),
        case(&["record", "-p", &up, "--trigger", "manual"], 2, "--out <DIR>"),
        case(&["record", "--bogus"], 2, "unexpected argument '--bogus'"),
        case(&["frobnicate"], 2, "unrecognized subcommand 'frobnicate'"),
        rec("manual", &["--buffer-size", "12Q"], 2, "bad buffer size `12Q`"),
        rec("manual", &["--buffer-size", "0"], 2, "it must be between 16"),
        rec("manual", &["--buffer-size", "8ev"], 2, "it must be between 16"),
        rec("manual", &["--buffer-size", "64G"], 2, "it must be between 16"),
        rec("manual", &["--buffer-size", "99999999999999999999G"], 2, "bad buffer size"),
        rec("manual", &["--buffer-size", ""], 2, "bad buffer size"),
        rec("manual", &["--on-no-spare", "never"], 2, "invalid value 'never'"),
        rec("manual", &["--count", "0"], 2, "0 is not in 1.."),
        rec("manual", &["--count=-1"], 2, "invalid value '-1'"),
        rec("manual", &["--count", "x"], 2, "invalid value 'x'"),
        rec("manual", &["--max-snapshots", "0"], 2, "0 is not in 1.."),
        rec("manual", &["--holdoff", "10"], 2, "bad duration `10`"),
        rec("manual", &["--holdoff", "86401s"], 2, "at most 86400s"),
        rec("manual", &["--holdoff", "10h"], 2, "bad duration `10h`"),
        rec("manual", &["--post", "18446744073s"], 2, "--post `18446744073s` is too long"),
        rec("manual", &["--post", "abc"], 2, "bad --post `abc`"),
        rec("manual", &["--post=-5"], 2, "bad --post `-5`"),
        rec("manual", &["--post", "10ms5"], 2, "bad --post `10ms5`"),
        rec("manual", &["--max-glob", "x"], 2, "invalid value 'x'"),
        rec("manual", &["--max-pending", "0"], 2, "bad size `0`"),
        rec("manual", &["--max-pending", "1X"], 2, "bad size `1X`"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--pid", "abc"], 2, "invalid value 'abc'"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--pid", "1", "--", "/bin/true"], 2, "cannot be used with"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--tid", "1", "--comm", "x"], 2, "cannot be used with"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--tid", "1", "--follow-forks"], 2, "cannot be used with"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--comm", ""], 2, "--comm needs a command name"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--json-out"], 2, "a value is required"),
        // Trigger syntax (exit 2, with a caret).
        rec(&format!("{t}.arg0 = 1"), &[], 2, "`=` is not an operator"),
        rec(&format!("{t}.arg0 == 1 | {t}.arg0 == 2"), &[], 2, "`|` is not an operator"),
        rec("comm == \"x", &[], 2, "unterminated string"),
        rec(&format!("{t}.ret == -EWHAT"), &[], 2, "unknown errno name `EWHAT`"),
        rec(&format!("{t}.arg0 == 99999999999999999999"), &[], 2, "is too large"),
        rec(&format!("{t}.arg0 == 5h"), &[], 2, "unknown unit `h`"),
        rec("max(1)", &[], 2, "max() takes a field"),
        rec("", &[], 2, "empty trigger"),
        rec(")", &[], 2, "expected a field or a value here"),
        rec(&format!("{t}."), &[], 2, "expected a field name after `.`"),
        rec(&format!("{t}.arg0 == -"), &[], 2, "`-` must be followed by a number"),
        rec(&format!("({t}.arg0 == 1"), &[], 2, "missing `)`"),
        rec(&format!("{t}.arg0"), &[], 2, "expected a comparison operator"),
        rec(&format!("{t}.arg0 == 1 2"), &[], 2, "unexpected text after the condition"),
        rec(deep, &[], 2, "nests too deeply"),
        rec(many_tokens, &[], 2, "too long: more than 1024 tokens"),
        rec("@", &[], 2, "unexpected character `@`"),
        rec(&format!("{t}.arg0 == 0xZZ"), &[], 2, "bad hex number"),
        // Probe specs (exit 2).
        case(&["record", "--out", "{out}", "-p", "vfs_read", "--trigger", "manual"], 2, "has no kind"),
        case(&["record", "--out", "{out}", "-p", "kprob:vfs_read", "--trigger", "manual"], 2, "unknown probe kind `kprob`"),
        case(&["record", "--out", "{out}", "-p", "tracepoint:syscalls", "--trigger", "manual"], 2, "expected `tracepoint:CATEGORY:NAME`"),
        case(&["record", "--out", "{out}", "-p", "fentry:vfs_*", "--trigger", "manual"], 2, "globs work with kprobe and kretprobe only"),
        case(&["record", "--out", "{out}", "-p", "kprobe:vfs_read+zz", "--trigger", "manual"], 2, "bad offset `zz`"),
        case(&["record", "--out", "{out}", "-p", "1x=kprobe:f", "--trigger", "manual"], 2, "bad probe name `1x`"),
        case(&["record", "--out", "{out}", "-p", "uretprobe:/bin/x:f+4", "--trigger", "manual"], 2, "expected `uretprobe:PATH:SYMBOL`"),
        case(&["record", "--out", "{out}", "-p", "uprobe::main", "--trigger", "manual"], 2, "expected `uprobe:PATH:SYMBOL[+OFFSET]`"),
        case(&["record", "--out", "{out}", "-p", "kretprobe:vfs_read+4", "--trigger", "manual"], 2, "expected `kretprobe:FUNCTION`"),
        case(&["record", "--out", "{out}", "-p", "rawtp:", "--trigger", "manual"], 2, "expected `rawtp:NAME`"),
        // Refused against the probes and the system (exit 1).
        rec("nope.ret < 0", &[], 1, "unknown probe `nope`"),
        rec(&format!("{t}.fdd == 1"), &[], 1, "has no field `fdd`"),
        rec(&format!("{t}.ret < 0"), &[], 1, "has no field `ret`"),
        rec("comm < \"x\"", &[], 1, "only compares with ==, != or ~"),
        rec(&format!("{t}.arg0 == \"s\""), &[], 1, "`arg0` is a number"),
        rec(long, &[], 1, "too long: more than 32 instructions"),
        rec(consts, &[], 1, "more than 8 different constants"),
        rec(maxes, &[], 1, "more than 4 max()/changed()"),
        rec("comm == \"0123456789abcdefg\"", &[], 1, "longer than a command name"),
        case(&["record", "--out", "{out}", "-p", dup, "-p", "x=tracepoint:syscalls:sys_enter_close", "--trigger", "manual", "--", WORKLOAD, "calls", "1"], 1, "two probes are named `x`"),
        case(&["record", "--out", "{out}", "-p", "tracepoint:syscalls:sys_enter_nope", "--trigger", "manual", "--", WORKLOAD, "calls", "1"], 1, "no tracepoint `syscalls:sys_enter_nope`"),
        case(&["record", "--out", "{out}", "-p", "uprobe:/no/such/binary:main", "--trigger", "manual", "--", WORKLOAD, "calls", "1"], 1, "/no/such/binary does not exist"),
        case(&["record", "--out", "{out}", "-p", leak(format!("uprobe:{WORKLOAD}:no_such_symbol")), "--trigger", "manual", "--", WORKLOAD, "calls", "1"], 1, "no_such_symbol"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--pid", "999999999"], 1, "no process with pid 999999999"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--tid", "999999999"], 1, "no thread with tid 999999999"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--comm", "0123456789abcdefg"], 1, "longer than the kernel's 15-character"),
        rec("manual", &["--post", "16", "--buffer-size", "16ev"], 1, "--post 16 does not fit"),
        case(&["record", "--out", "{out}", "-p", &up, "--trigger", "manual", "--", "/no/such/cmd"], 1, "cannot run `/no/such/cmd`"),
        case(&["record", "--out", "{f:file}", "-p", &up, "--trigger", "manual", "--", WORKLOAD], 1, "cannot use the output directory"),
        case(&["record", "--out", "{f:file}/sub", "-p", &up, "--trigger", "manual", "--", WORKLOAD], 1, "cannot use the output directory"),
        case(&["record", "--out", "{f:shared}", "-p", &up, "--trigger", "manual", "--", WORKLOAD], 1, "is not private: other users can write to it (mode 0777"),
        case(&["record", "--out", "{f:badlock}", "-p", &up, "--trigger", "manual", "--", WORKLOAD], 1, "is not a lock file of this user"),
        rec("manual", &["--json-out", "{f:link-to-file}"], 1, "is a symbolic link to a file"),
        rec("manual", &["--json-out", "{f:empty}"], 1, "is a directory"),
        rec("manual", &["--json-out", "{f:fifo.snap}/x"], 1, "cannot open"),
        // The other subcommands.
        case(&["show", "{f:nothing.snap}"], 1, "cannot read"),
        case(&["show", "{f:empty}"], 1, "is not a regular file (a directory)"),
        case(&["show", "{f:file}"], 1, "is not a snapshot file"),
        case(&["show", "{f:fifo.snap}"], 1, "is not a regular file (a FIFO)"),
        case(&["show", "{f:trunc.snap}"], 1, "is truncated"),
        case(&["show", "/dev/null"], 1, "is not a regular file (a character device)"),
        case(&["show"], 2, "<FILE>"),
        case(&["list", "{f:nothing}"], 1, "cannot list"),
        case(&["list", "{f:empty}"], 1, "no snapshot files"),
        case(&["list", "{f:file}"], 1, "cannot list"),
        case(&["export", "{f:good.snap}", "--format", "pdf", "-o", "{out}"], 2, "invalid value 'pdf'"),
        case(&["export", "{f:good.snap}", "--format", "text"], 2, "--output <OUT>"),
        case(&["export", "{f:good.snap}", "--format", "text", "-o", "{f:empty}/"], 1, "is a directory"),
        case(&["export", "{f:good.snap}", "--format", "text", "-o", "{f:link-to-file}"], 1, "is a symbolic link to a file"),
        case(&["export", "{f:file}", "--format", "text", "-o", "{out}"], 1, "is not a snapshot file"),
        case(&["export", "{f:good.snap}", "--format", "text", "-o", "{f:nothing}/out.txt"], 1, "check that the directory"),
        case(&["trigger", "{f:norecorder}"], 1, "no recorder is writing into"),
        case(&["trigger", "{f:nothing}"], 1, "cannot open"),
        case(&["trigger", "{f:stale}"], 1, "no recorder is writing into"),
        case(&["trigger"], 2, "<DIR>"),
    ];
    // The kernel probe kinds hidden (as on a kernel without them) are checked in host.rs.
    v.retain(|c| !c.args.is_empty());
    v
}

#[test]
fn more_than_eighty_bad_command_lines_are_refused_clearly() {
    require_root();
    let fixture = Fixture::new();
    let cases = cases();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let out = OutDir::new();
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| {
                let a = a.replace("{out}", &out.arg());
                match a.split_once("{f:") {
                    Some((before, rest)) => {
                        let (name, after) = rest.split_once('}').unwrap();
                        format!("{before}{}{after}", fixture.path(name))
                    }
                    None => a,
                }
            })
            .collect();
        let before = common::bpf_ids();
        let Some(o) = common::output_within(Command::new(&*SNAPSHOT).args(&args), 60) else {
            failures.push(format!(
                "{:?}: still running after 60 s (killed)",
                &args[..args.len().min(12)]
            ));
            continue;
        };
        let stderr = String::from_utf8_lossy(&o.stderr);
        let shown = format!("{:?}", &args[..args.len().min(12)]);
        let mut bad = Vec::new();
        if o.status.code() != Some(c.code) {
            bad.push(format!("exit {:?}, not {}", o.status.code(), c.code));
        }
        if !stderr.contains(c.says) {
            bad.push(format!("stderr lacks `{}`", c.says));
        }
        if stderr.contains("panicked") || stderr.len() > 4000 {
            bad.push("a panic or an unreadable wall of text".into());
        }
        if !common::snapshot_files(&out.0).is_empty() {
            bad.push("snapshot files written".into());
        }
        if c.code == 2 && out.0.exists() {
            bad.push("--out created for a refused command line".into());
        }
        if !bad.is_empty() {
            failures.push(format!("{shown}: {}\n{stderr}", bad.join("; ")));
        }
        common::assert_no_bpf_left(&before, &shown);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
