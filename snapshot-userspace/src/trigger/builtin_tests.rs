//! The built-in triggers: parsing, errors, what they mean on events (against a hand-written
//! reference), and the compiled program against the tree when they are combined with
//! random user conditions.

use snapshot_common::MAX_SLOTS;

use super::*;
use crate::{
    probe::{ProbeInfo, ProbeSpec},
    testing::{Leaves, Rng, random_expr},
};

const SIGNAL_ID: u32 = 2;
const OOM_ID: u32 = 3;
const GENERATE_ID: u32 = 4;

fn probes() -> Vec<ProbeInfo> {
    let up: ProbeSpec = "f=uprobe:/bin/x:work".parse().unwrap();
    let tp: ProbeSpec = "tracepoint:syscalls:sys_exit_openat".parse().unwrap();
    let sig: ProbeSpec = "signal_deliver=tracepoint:signal:signal_deliver"
        .parse()
        .unwrap();
    let oom: ProbeSpec = "mark_victim=tracepoint:oom:mark_victim".parse().unwrap();
    let generate: ProbeSpec = "signal_generate=tracepoint:signal:signal_generate"
        .parse()
        .unwrap();
    let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect();
    vec![
        ProbeInfo::new(0, &up, vec![]),
        ProbeInfo::new(1, &tp, vec![]),
        ProbeInfo::new(
            SIGNAL_ID,
            &sig,
            names(&["sig", "errno", "code", "sa_handler", "sa_flags"]),
        ),
        ProbeInfo::new(OOM_ID, &oom, names(&["pid", "total_vm", "anon_rss"])),
        ProbeInfo::new(
            GENERATE_ID,
            &generate,
            names(&["sig", "errno", "code", "pid", "group", "result"]),
        ),
    ]
}

fn event(probe: u32, args: [u64; 6]) -> EventCtx {
    EventCtx {
        probe,
        args,
        ret: (probe == 1).then_some(0),
        pid: 10,
        tid: 11,
        comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
        ..EventCtx::default()
    }
}

fn fires(text: &str, c: &EventCtx) -> bool {
    let t: Trigger = text.parse().unwrap_or_else(|e| panic!("{e}"));
    let prog = compile(std::slice::from_ref(&t), &probes()).unwrap_or_else(|e| panic!("{e}"));
    let got = evaluate(&prog, c, &mut [(0, false); MAX_SLOTS]);
    let tree = evaluate_tree(
        std::slice::from_ref(&t),
        &probes(),
        c,
        &mut [(0, false); MAX_SLOTS],
    )
    .unwrap();
    assert_eq!(got, tree, "`{text}` on {c:?}");
    got
}

/// What `crash` means, written out by hand (not through the expansion).
fn is_crash(c: &EventCtx) -> bool {
    c.probe == SIGNAL_ID && [4, 5, 6, 7, 8, 11, 31].contains(&c.args[0]) && c.args[3] == 0
}

#[test]
fn crash_is_a_fatal_fault_or_abort_signal() {
    for sig in 0..=65u64 {
        for handler in [0u64, 1, 0x5555_5555_1234] {
            let c = event(SIGNAL_ID, [sig, 0, 1, handler, 0, 0]);
            assert_eq!(
                fires("crash", &c),
                is_crash(&c),
                "sig {sig} handler {handler:#x}"
            );
        }
    }
    // Another probe's event with the same words is not a crash.
    assert!(!fires("crash", &event(0, [11, 0, 1, 0, 0, 0])));
    assert!(!fires("crash", &event(OOM_ID, [11, 0, 1, 0, 0, 0])));
}

#[test]
fn signal_takes_names_and_numbers() {
    for (arg, n) in [
        ("SIGTERM", 15),
        ("TERM", 15),
        ("sigterm", 15),
        ("15", 15),
        ("SIGKILL", 9),
        ("SIGRT_3", 35),
        ("SIGRTMIN", 32),
        ("SIGIOT", 6),
        ("64", 64),
    ] {
        assert_eq!(builtin::signal_number(arg), Some(n), "{arg}");
        let text = format!("signal({arg})");
        assert!(fires(
            &text,
            &event(GENERATE_ID, [n as u64, 0, 0, 1234, 1, 0])
        ));
        assert!(!fires(
            &text,
            &event(GENERATE_ID, [n as u64 - 1, 0, 0, 1234, 1, 0])
        ));
        assert!(
            !fires(&text, &event(GENERATE_ID, [n as u64, 0, 0, 1234, 1, 1])),
            "ignored (result 1) is not sent"
        );
        assert!(
            !fires(&text, &event(SIGNAL_ID, [n as u64, 0, 0, 0, 0, 0])),
            "a delivery is no sending"
        );
    }
    assert!(fires("oom", &event(OOM_ID, [1234, 0, 0, 0, 0, 0])));
    assert!(!fires("oom", &event(SIGNAL_ID, [1234, 0, 0, 0, 0, 0])));
}

#[test]
fn builtins_are_refused_clearly_and_shown_as_written() {
    for (text, msg) in [
        ("signal(SIGFOO)", "unknown signal `SIGFOO`"),
        ("signal(0)", "unknown signal `0`"),
        ("signal(65)", "unknown signal `65`"),
        ("signal()", "takes a signal name or number"),
        ("signal", "takes a signal name or number"),
        ("signal(SIGTERM", "missing `)`"),
    ] {
        let e = text.parse::<Trigger>().expect_err(text);
        assert!(e.msg.contains(msg), "`{text}`: {e}");
        assert!(!e.hint.is_empty());
    }
    let t: Trigger = "crash && comm == \"nginx\"".parse().unwrap();
    assert_eq!(t.to_string(), "crash && comm == \"nginx\"");
    let both = [
        "crash".parse().unwrap(),
        "f.ret < 0".parse::<Trigger>().unwrap(),
    ];
    assert_eq!(describe(&both), "crash || f.ret < 0");
    // A probe named like a keyword is still a probe.
    let p = crate::trigger::parse("crash.ret < 0").unwrap();
    assert!(matches!(p, Ast::Cmp { .. }), "{p:?}");
}

#[test]
fn builtins_add_their_probes_once_and_refuse_a_name_taken() {
    let t = |s: &str| s.parse::<Trigger>().unwrap();
    let specs = builtin::with_probes(&[t("crash"), t("signal(9)"), t("oom")], &[]).unwrap();
    let texts: Vec<&str> = specs.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "signal_deliver=tracepoint:signal:signal_deliver",
            "signal_generate=tracepoint:signal:signal_generate",
            "mark_victim=tracepoint:oom:mark_victim"
        ]
    );
    // Sending and OOM-killing are filtered by their victim, delivery by the current task.
    let subjects: Vec<Option<&str>> = specs.iter().map(|s| s.subject_pid.as_deref()).collect();
    assert_eq!(subjects, [None, Some("pid"), Some("pid")]);
    // The user's own probe of the same tracepoint is used as it is.
    let own: ProbeSpec = "tracepoint:signal:signal_deliver".parse().unwrap();
    let specs = builtin::with_probes(&[t("crash")], std::slice::from_ref(&own)).unwrap();
    assert_eq!(specs, [own]);
    let other: ProbeSpec = "signal_deliver=tracepoint:syscalls:sys_enter_kill"
        .parse()
        .unwrap();
    let e = builtin::with_probes(&[t("crash")], &[other]).unwrap_err();
    assert!(e.to_string().contains("rename yours"), "{e}");
    assert!(
        builtin::with_probes(&[t("f.ret < 0")], &[])
            .unwrap()
            .is_empty()
    );
}

/// The compiled program agrees with the tree on built-ins alone, negated, and combined with
/// random user conditions, in one trigger or as several `--trigger`s; and a lone `crash`
/// agrees with [`is_crash`].
#[test]
fn property_builtins_compile_as_the_tree_evaluates() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let probes = probes();
    let atoms = ["crash", "oom", "signal(SIGTERM)", "signal(9)", "!crash"];
    let leaves = Leaves {
        fields: &[
            "f.arg0",
            "f.arg1",
            "sys_exit_openat.ret",
            "pid",
            "signal_deliver.code",
        ],
        values: &crate::testing::BOUNDARY_VALUES,
        comms: &["work"],
        stateful: true,
        strings: &[],
        texts: &[],
    };
    let (mut checked, mut fired) = (0, 0);
    for _ in 0..1500 {
        let atom = rng.pick(&atoms);
        let user = random_expr(&mut rng, leaves, 2);
        let texts: Vec<String> = match rng.next_u64() % 4 {
            0 => vec![atom.to_owned()],
            1 => vec![format!("{atom} && {user}")],
            2 => vec![format!("({user}) || {atom}")],
            _ => vec![user.clone(), atom.to_owned()],
        };
        let Ok(triggers) = texts
            .iter()
            .map(|t| t.parse::<Trigger>())
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        let ordered = builtin::ordered(&triggers);
        let Ok(prog) = compile(&ordered, &probes) else {
            continue;
        };
        let (mut tree_state, mut prog_state) = ([(0, false); MAX_SLOTS], [(0, false); MAX_SLOTS]);
        for _ in 0..8 {
            let probe =
                [0, 1, SIGNAL_ID, SIGNAL_ID, GENERATE_ID, OOM_ID][(rng.next_u64() % 6) as usize];
            let sig = [4, 6, 8, 9, 11, 15, 31, 3, 0, 12][(rng.next_u64() % 10) as usize];
            let handler = [0, 0, 1, 0x7f00_1234][(rng.next_u64() % 4) as usize];
            let arg = |rng: &mut Rng| crate::testing::BOUNDARY_ARGS[(rng.next_u64() % 12) as usize];
            let args = if probe == SIGNAL_ID {
                [sig, 0, arg(&mut rng), handler, 0, 0]
            } else if probe == GENERATE_ID {
                [sig, 0, 0, 1234, 1, rng.next_u64() % 2]
            } else {
                [arg(&mut rng), arg(&mut rng), 0, 0, 0, 0]
            };
            let mut c = event(probe, args);
            c.pid = rng.next_u64() % 4;
            let want = evaluate_tree(&ordered, &probes, &c, &mut tree_state).expect("evaluates");
            let got = evaluate(&prog, &c, &mut prog_state);
            assert_eq!(got, want, "{texts:?} on {c:?}");
            assert_eq!(prog_state, tree_state, "{texts:?}: max()/changed() state");
            if texts == ["crash"] {
                assert_eq!(got, is_crash(&c), "crash on {c:?}");
            }
            checked += 1;
            fired += usize::from(got);
        }
    }
    assert!(checked > 5000, "only {checked} cases checked");
    assert!(fired > checked / 20, "{fired} of {checked} fired");
}
