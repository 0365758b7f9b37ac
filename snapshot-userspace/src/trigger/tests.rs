use super::*;
use crate::{
    probe::{
        ProbeInfo, ProbeSpec,
        capture::{Capture, CaptureKind},
    },
    testing::{Leaves, Rng, random_expr},
};
use snapshot_common::{MAX_SLOTS, TriggerProgram};

/// Parses each text as a `--trigger` and compiles them together.
pub(super) fn compile_texts(
    texts: &[&str],
    probes: &[ProbeInfo],
) -> Result<TriggerProgram, ExprError> {
    let triggers = texts
        .iter()
        .map(|t| t.parse::<Trigger>())
        .collect::<Result<Vec<_>, _>>()?;
    compile(&triggers, probes)
}

pub(super) fn probes() -> Vec<ProbeInfo> {
    let tp: ProbeSpec = "tracepoint:syscalls:sys_exit_openat".parse().unwrap();
    let up: ProbeSpec = "f=uprobe:/bin/x:work".parse().unwrap();
    let close: ProbeSpec = "tracepoint:syscalls:sys_enter_close".parse().unwrap();
    let ret: ProbeSpec = "r=uretprobe:/bin/x:work".parse().unwrap();
    let open: ProbeSpec = "tracepoint:syscalls:sys_enter_openat".parse().unwrap();
    let mut open = ProbeInfo::new(4, &open, vec!["dfd".into(), "filename".into()]);
    open.captures = vec![capture("filename", 1, CaptureKind::Str)];
    let s: ProbeSpec = "s=uprobe:/bin/x:s(arg0:str, arg1:buf(arg2))"
        .parse()
        .unwrap();
    let mut s = ProbeInfo::new(5, &s, vec![]);
    s.captures = vec![
        capture("arg0", 0, CaptureKind::Str),
        capture("arg1", 1, CaptureKind::Buf),
    ];
    vec![
        ProbeInfo::new(0, &tp, vec![]),
        ProbeInfo::new(1, &up, vec![]),
        ProbeInfo::new(2, &close, vec!["fd".into()]),
        ProbeInfo::new(3, &ret, vec![]),
        open,
        s,
    ]
}

fn capture(name: &str, word: u8, kind: CaptureKind) -> Capture {
    let mut c = Capture::new(name, word, kind);
    c.len_word = (kind == CaptureKind::Buf).then_some(2);
    c
}

/// An event of probe `probe` carrying the strings `strings`.
fn with_strings(probe: u32, strings: &[Option<&[u8]>]) -> EventCtx {
    let mut c = ctx(probe, [0; 6], None);
    for (slot, s) in c.strings.iter_mut().zip(strings) {
        *slot = s.map(<[u8]>::to_vec);
    }
    c
}

pub(super) fn ctx(probe: u32, args: [u64; 6], ret: Option<i64>) -> EventCtx {
    EventCtx {
        probe,
        args,
        ret: ret.map(|r| r as u64),
        latency: None,
        pid: 10,
        tid: 11,
        cpu: 1,
        comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
        strings: Default::default(),
    }
}

fn fires(expr: &str, c: &EventCtx) -> bool {
    let prog = compile_texts(&[expr], &probes()).unwrap_or_else(|e| panic!("{e}"));
    evaluate(&prog, c, &mut [(0, false); MAX_SLOTS])
}

#[test]
fn operators_and_literals() {
    let open_fail = ctx(0, [0; 6], Some(-2));
    assert!(fires("sys_exit_openat.ret < 0", &open_fail));
    assert!(fires("sys_exit_openat.ret == -ENOENT", &open_fail));
    assert!(!fires("sys_exit_openat.ret == -EBADF", &open_fail));
    assert!(fires("sys_exit_openat.ret != 0 && pid == 10", &open_fail));
    assert!(fires("sys_exit_openat.ret >= 0 || tid == 11", &open_fail));
    assert!(fires("!(sys_exit_openat.ret >= 0)", &open_fail));
    assert!(fires("comm == \"work\"", &open_fail));
    assert!(!fires("comm != \"work\"", &open_fail));
    let call = ctx(1, [0x30, 4096, 2_000_000, 0, 0, 0], None);
    assert!(fires("f.arg0 & 0x10", &call));
    assert!(!fires("f.arg0 & 0x4", &call));
    assert!(fires("f.arg1 == 4K", &call));
    assert!(fires("f.arg2 == 2ms", &call));
    assert!(fires("f.arg2 > 1999us && f.arg2 <= 2000000ns", &call));
    assert!(fires("cpu == 1", &call));
    assert!(
        !fires("sys_exit_openat.ret < 0", &call),
        "another probe's field is never true"
    );
    assert!(fires(
        "sys_enter_close.fd == 3",
        &ctx(2, [3, 0, 0, 0, 0, 0], None)
    ));
    let mut slow = ctx(3, [0; 6], Some(0));
    slow.latency = Some(50_000_000);
    assert!(fires("r.latency > 40ms", &slow));
    assert!(!fires("r.latency > 60ms", &slow));
}

#[test]
fn string_comparisons() {
    let lock = with_strings(4, &[Some(b"/tmp/a.lock")]);
    assert!(fires("sys_enter_openat.filename == \"/tmp/a.lock\"", &lock));
    assert!(!fires(
        "sys_enter_openat.filename != \"/tmp/a.lock\"",
        &lock
    ));
    assert!(
        fires("filename ~ \"/tmp/*.lock\"", &lock),
        "a bare name of one probe"
    );
    assert!(fires("filename ~ \"/tmp/*\"", &lock), "a prefix");
    assert!(!fires("filename ~ \"/etc/*\"", &lock));
    assert!(fires("filename !~ \"/etc/*\"", &lock));
    assert!(fires("filename ~ \"/tmp/?.lock\" && comm ~ \"w*k\"", &lock));
    assert!(!fires("comm !~ \"wor*\"", &lock));
    let unreadable = with_strings(4, &[None]);
    assert!(
        !fires("filename == \"x\"", &unreadable) && !fires("filename != \"x\"", &unreadable),
        "a NULL or unreadable string compares false both ways"
    );
    assert!(
        !fires(
            "filename ~ \"*\"",
            &with_strings(5, &[Some(b"/tmp/a.lock")])
        ),
        "another probe's string"
    );
    let s = with_strings(5, &[Some("café".as_bytes()), Some(b"a\0b")]);
    assert!(fires("s.arg0 == \"café\"", &s), "UTF-8 literals");
    assert!(
        fires("s.arg0 ~ \"caf\\xc3?\"", &s),
        "byte escapes, ? is one byte"
    );
    assert!(fires("s.arg1 == \"a\\0b\"", &s), "buffers hold any byte");
    let prog = compile_texts(&["filename ~ \"*.lock\""], &probes()).unwrap();
    assert_eq!(prog.nstr, 1);
    // Comparisons see the first 256 bytes of longer strings (--string-size 4096).
    let long = format!("/tmp/{}.lock", "x".repeat(300));
    let long = with_strings(4, &[Some(long.as_bytes())]);
    let triggers = ["filename ~ \"/tmp/x*\"".parse::<Trigger>().unwrap()];
    let prog = compile_sized(&triggers, &probes(), 4096).unwrap();
    assert!(evaluate(&prog, &long, &mut [(0, false); MAX_SLOTS]));
    let triggers = ["filename ~ \"*.lock\"".parse::<Trigger>().unwrap()];
    let prog = compile_sized(&triggers, &probes(), 4096).unwrap();
    assert!(
        !evaluate(&prog, &long, &mut [(0, false); MAX_SLOTS]),
        "the end of a 310-byte string is past what comparisons see"
    );
}

#[test]
fn string_errors_say_which_type_is_wrong() {
    let e = error("sys_enter_close.fd == \"3\"");
    assert!(e.msg.contains("`fd` is a number"), "{e}");
    let e = error("sys_enter_close.fd ~ \"3*\"");
    assert!(
        e.msg.contains("`fd` is a number") && e.msg.contains('~'),
        "{e}"
    );
    let e = error("filename < \"a\"");
    assert!(e.msg.contains("strings compare with ==, != and ~"), "{e}");
    let e = error("filename == 3");
    assert!(e.msg.contains("`filename` is a string"), "{e}");
    let e = error("filename > 0");
    assert!(e.msg.contains("`filename` is a string"), "{e}");
    let e = error("filename ~ 3");
    assert!(e.msg.contains("takes a string pattern"), "{e}");
    let long = format!("filename == \"{}\"", "x".repeat(64));
    assert!(
        error(&long).msg.contains("longer than 63"),
        "{}",
        error(&long)
    );
    let wide = format!("filename == \"{}\"", "x".repeat(60));
    let e = compile_texts(&[&wide], &probes()).map(|_| ());
    assert!(e.is_ok(), "60 bytes fit the default --string-size 64");
    let triggers = [wide.parse::<Trigger>().unwrap()];
    let e = compile_sized(&triggers, &probes(), 32).unwrap_err();
    assert!(e.msg.contains("can never match"), "{e}");
    let five = ["filename == \"a\""; 5].join(" || ");
    assert!(error(&five).msg.contains("more than 4 string comparisons"));
    assert!(error("filename == \"bad\\q\"").msg.contains("bad escape"));
    assert!(error("\"x\" == \"y\"").msg.contains("incompatible types"));
    let mut two = probes();
    two[5].captures[0].name = "filename".into();
    let prog = compile_texts(&["filename == \"x\""], &two).unwrap();
    let mut state = [(0, false); MAX_SLOTS];
    let x: &[u8] = b"x";
    assert!(
        evaluate(&prog, &with_strings(4, &[Some(x)]), &mut state)
            && evaluate(&prog, &with_strings(5, &[Some(x)]), &mut state),
        "a string several probes have: either one's event"
    );
    assert!(!evaluate(
        &prog,
        &with_strings(5, &[Some(b"y")]),
        &mut state
    ));
    let prog = compile_texts(&["filename != \"x\""], &two).unwrap();
    assert!(evaluate(&prog, &with_strings(4, &[Some(b"y")]), &mut state));
    assert!(!evaluate(&prog, &with_strings(5, &[Some(x)]), &mut state));
}

#[test]
fn max_and_changed_keep_state() {
    let prog = compile_texts(&["max(f.arg0)"], &probes()).unwrap();
    let mut state = [(0, false); MAX_SLOTS];
    let seq: Vec<bool> = [3u64, 2, 5, 5, 7]
        .iter()
        .map(|&v| evaluate(&prog, &ctx(1, [v, 0, 0, 0, 0, 0], None), &mut state))
        .collect();
    assert_eq!(seq, [true, false, true, false, true]);
    let prog = compile_texts(&["changed(f.arg0)"], &probes()).unwrap();
    let mut state = [(0, false); MAX_SLOTS];
    let seq: Vec<bool> = [3u64, 3, 4, 4, 3]
        .iter()
        .map(|&v| evaluate(&prog, &ctx(1, [v, 0, 0, 0, 0, 0], None), &mut state))
        .collect();
    assert_eq!(seq, [false, false, true, false, true]);
}

#[test]
fn several_triggers_are_or_ed_and_manual_is_empty() {
    let p = compile_texts(&["f.arg0 == 1", "f.arg0 == 2"], &probes()).unwrap();
    let mut s = [(0, false); MAX_SLOTS];
    assert!(evaluate(&p, &ctx(1, [2, 0, 0, 0, 0, 0], None), &mut s));
    assert!(!evaluate(&p, &ctx(1, [3, 0, 0, 0, 0, 0], None), &mut s));
    assert_eq!(compile_texts(&["manual"], &probes()).unwrap().len, 0);
}

fn error(expr: &str) -> ExprError {
    compile_texts(&[expr], &probes()).expect_err("must be refused")
}

#[test]
fn errors_point_at_the_fault() {
    let e = error("f.arg0 = 1");
    assert_eq!(e.pos, 7);
    assert!(
        e.to_string().contains("`=` is not an operator")
            && e.to_string().contains("\n           ^"),
        "{e}"
    );
    let e = error("nope.ret < 0");
    assert!(
        e.msg.contains("unknown probe `nope`") && e.hint.contains("`sys_exit_openat`, `f`"),
        "{e}"
    );
    let e = error("f.ret < 0");
    assert!(
        e.msg.contains("has no field `ret`") && e.hint.contains("arg0"),
        "{e}"
    );
    let e = error("comm < \"x\"");
    assert!(e.msg.contains("only compares with ==, != or ~"), "{e}");
    let e = error("f.arg0 == \"x\"");
    assert!(e.msg.contains("`arg0` is a number"), "{e}");
    assert!(
        error("f.arg0")
            .msg
            .contains("expected a comparison operator")
    );
    assert!(error("(f.arg0 == 1").msg.contains("missing `)`"));
    // The fuzzer found this: negating the most negative hex literal overflowed.
    let min = compile_texts(&["f.arg0 == -0x8000000000000000"], &probes()).expect("parses");
    assert_eq!(min.consts[0], 1 << 63);
    // The property test found this: the kernel program holds one command name; a second one
    // is compared as a string.
    let two = compile_texts(&["comm == \"a\" || comm != \"b\""], &probes()).expect("two names");
    assert_eq!(two.nstr, 1, "the second name is a string comparison");
    let mut c = ctx(1, [0; 6], None);
    c.comm = *b"b\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    assert!(!evaluate(&two, &c, &mut [(0, false); MAX_SLOTS]));
    c.comm[0] = b'c';
    assert!(evaluate(&two, &c, &mut [(0, false); MAX_SLOTS]));
    let one =
        compile_texts(&["comm == \"a\" || comm != \"a\""], &probes()).expect("one name twice");
    assert_eq!(one.nstr, 0, "one name needs no string comparison");
    assert!(
        error("f.arg0 == -EWHAT")
            .msg
            .contains("unknown errno name `EWHAT`")
    );
    assert!(error("f.arg0 == 5 parsecs").msg.contains("unexpected text"));
    assert!(error("f.arg0 == 5h").msg.contains("unknown unit `h`"));
    let long = ["f.arg0 == 1"; 12].join(" || ");
    assert!(error(&long).msg.contains("too long"), "{}", error(&long));
    // Eight right-nested comparisons keep nine values on the stack at once.
    let deep = (1..=8).rev().fold(String::new(), |inner, i| {
        if inner.is_empty() {
            format!("f.arg0 == {i}")
        } else {
            format!("(f.arg0 == {i} && {inner})")
        }
    });
    assert!(
        error(&deep).msg.contains("nests too deeply"),
        "{}",
        error(&deep)
    );
}

/// The compiled program (the kernel's bytecode, run by its userspace twin) agrees with the
/// syntax-tree semantics on random expressions over every kind of field (arguments, `ret`,
/// `latency`, `pid`/`tid`/`cpu`, `comm`, captured strings), literals at every sign boundary,
/// string literals and globs, and `max()` / `changed()` whose state carries from event to
/// event.
#[test]
fn property_compiled_programs_agree_with_the_tree() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let probes = probes();
    let (mut checked, mut fired) = (0, 0);
    for _ in 0..3000 {
        let text = random_expr(
            &mut rng,
            Leaves {
                fields: &[
                    "f.arg0",
                    "f.arg1",
                    "f.arg2",
                    "r.ret",
                    "r.latency",
                    "sys_exit_openat.ret",
                    "pid",
                    "tid",
                    "cpu",
                ],
                values: &crate::testing::BOUNDARY_VALUES,
                comms: &["work", "other"],
                stateful: true,
                strings: &["filename", "s.arg0", "comm"],
                texts: &[
                    "/tmp/a.lock",
                    "/tmp/*",
                    "*.lock",
                    "*",
                    "",
                    "wo?k",
                    "/t*a*",
                    "work",
                ],
            },
            3,
        );
        let Ok(trigger) = text.parse::<Trigger>() else {
            continue;
        };
        let Ok(prog) = compile(std::slice::from_ref(&trigger), &probes) else {
            continue;
        };
        let (mut tree_state, mut prog_state) = ([(0, false); MAX_SLOTS], [(0, false); MAX_SLOTS]);
        for _ in 0..6 {
            let arg = |rng: &mut Rng| crate::testing::BOUNDARY_ARGS[(rng.next_u64() % 12) as usize];
            let probe = [0, 1, 3, 4, 4, 5, 5][(rng.next_u64() % 7) as usize];
            let texts: [&[u8]; 6] = [
                b"/tmp/a.lock",
                b"/tmp/",
                b"",
                b"work",
                b"x.lock",
                b"/tmp/aa",
            ];
            let chosen = texts[(rng.next_u64() % 6) as usize];
            let string = (!rng.next_u64().is_multiple_of(5)).then(|| chosen.to_vec());
            let c = EventCtx {
                probe,
                args: [arg(&mut rng), arg(&mut rng), arg(&mut rng), 0, 0, 0],
                ret: (probe != 1).then(|| arg(&mut rng)),
                latency: (probe == 3).then(|| arg(&mut rng)),
                pid: rng.next_u64() % 4,
                tid: rng.next_u64() % 4,
                cpu: rng.next_u64() % 2,
                comm: if rng.next_u64().is_multiple_of(2) {
                    *b"work\0\0\0\0\0\0\0\0\0\0\0\0"
                } else {
                    *b"else\0\0\0\0\0\0\0\0\0\0\0\0"
                },
                strings: [string, None, None, None],
            };
            let want = evaluate_tree(std::slice::from_ref(&trigger), &probes, &c, &mut tree_state)
                .expect("what compiles evaluates");
            let got = evaluate(&prog, &c, &mut prog_state);
            assert_eq!(got, want, "`{text}` on {c:?}");
            assert_eq!(prog_state, tree_state, "`{text}`: max()/changed() state");
            checked += 1;
            fired += usize::from(got);
        }
    }
    assert!(checked > 5000, "only {checked} cases checked");
    assert!(
        fired > checked / 10 && fired < checked * 9 / 10,
        "{fired} of {checked} fired"
    );
}

#[test]
fn deep_nesting_and_huge_expressions_are_clear_errors() {
    // Issue 11, finding 2: these overflowed the parser's stack.
    let cases = [
        format!("{}f.arg1 == 1{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}f.arg1 == 1", "!".repeat(20_000)),
        vec!["f.arg1 == 1"; 100_000].join(" || "),
        vec!["f.arg1 == 1"; 100_000].join(" && "),
    ];
    for text in cases {
        let e = text.parse::<Trigger>().expect_err("refused");
        assert!(
            e.msg.contains("nests too deeply") || e.msg.contains("too long"),
            "{}",
            e.msg
        );
        assert!(
            e.to_string().len() < 4096,
            "the error quotes a bounded excerpt"
        );
    }
    // The limits leave room for every expression the kernel program can hold.
    let ok = format!("{}f.arg1 == 1{}", "(".repeat(30), ")".repeat(30));
    compile_texts(&[&ok], &probes()).expect("30 parentheses are fine");
}
