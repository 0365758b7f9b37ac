//! Sequence triggers: errors, the semantics on hand-made streams, and the property test of
//! the compiled program against the reference semantics over random per-thread streams.

use snapshot_common::MAX_SLOTS;

use super::{
    tests::{compile_texts, ctx, probes},
    *,
};
use crate::testing::{Leaves, Rng, random_expr};

const MS: u64 = 1_000_000;

/// One of `xs`.
fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[(rng.next_u64() % xs.len() as u64) as usize]
}

/// The error of `text` (parsed and compiled against the test probes).
fn error(text: &str) -> ExprError {
    compile_texts(&[text], &probes()).expect_err("must be refused")
}

/// Runs `texts` (compiled together) over `events` (probe, tid, ret, ts): which fired.
fn run(texts: &[&str], events: &[(u32, u64, i64, u64)]) -> Vec<bool> {
    let prog = compile_texts(texts, &probes()).unwrap_or_else(|e| panic!("{e}"));
    let (mut state, mut seqs) = ([(0, false); MAX_SLOTS], SeqState::new());
    events
        .iter()
        .map(|&(probe, tid, ret, ts)| {
            let mut c = ctx(probe, [0; 6], Some(ret));
            c.tid = tid;
            evaluate_at(&prog, (&c, ts), &mut state, &mut seqs)
        })
        .collect()
}

/// `sys_exit_openat` is probe 0, `sys_enter_close` probe 2 (its `ret` is absent: `fd`).
const SEQ: &str = "sys_exit_openat.ret == -EACCES then sys_enter_close.fd >= 0 within 10ms";

#[test]
fn a_then_b_on_the_same_thread_within_the_window_fires_once() {
    let eacces = -13;
    // A on thread 1, B on thread 1 after 3 ms: fires. A second B: A was consumed.
    assert_eq!(
        run(
            &[SEQ],
            &[(0, 1, eacces, 0), (2, 1, 0, 3 * MS), (2, 1, 0, 4 * MS)]
        ),
        [false, true, false]
    );
    // B on another thread, B too late, B before A, A that does not hold.
    assert_eq!(
        run(&[SEQ], &[(0, 1, eacces, 0), (2, 2, 0, MS)]),
        [false, false]
    );
    assert_eq!(
        run(&[SEQ], &[(0, 1, eacces, 0), (2, 1, 0, 10 * MS + 1)]),
        [false, false]
    );
    assert_eq!(
        run(&[SEQ], &[(0, 1, eacces, 0), (2, 1, 0, 10 * MS)]),
        [false, true],
        "the window is inclusive"
    );
    assert_eq!(
        run(&[SEQ], &[(2, 1, 0, 0), (0, 1, eacces, MS)]),
        [false, false]
    );
    assert_eq!(run(&[SEQ], &[(0, 1, -2, 0), (2, 1, 0, MS)]), [false, false]);
    // A late B consumes the stale A: a B after a new A within the window still fires.
    assert_eq!(
        run(
            &[SEQ],
            &[
                (0, 1, eacces, 0),
                (2, 1, 0, 20 * MS),
                (2, 1, 0, 21 * MS),
                (0, 1, eacces, 22 * MS),
                (2, 1, 0, 23 * MS)
            ]
        ),
        [false, false, false, false, true]
    );
    // A re-arms: the window runs from the latest A.
    assert_eq!(
        run(
            &[SEQ],
            &[
                (0, 1, eacces, 0),
                (0, 1, eacces, 8 * MS),
                (2, 1, 0, 15 * MS)
            ]
        ),
        [false, false, true]
    );
}

#[test]
fn an_event_that_is_both_a_and_b_never_pairs_with_itself() {
    let same = "sys_exit_openat.ret < 0 then sys_exit_openat.ret < 0 within 1ms";
    assert_eq!(
        run(&[same], &[(0, 1, -1, 0), (0, 1, -1, 100), (0, 1, -1, 200)]),
        [false, true, true],
        "the second completes the first and arms again"
    );
}

#[test]
fn sequences_and_conditions_combine_as_separate_triggers() {
    let other = "sys_exit_openat.ret == -EPERM then sys_enter_close.fd >= 0 within 1ms";
    let plain = "sys_exit_openat.ret == 7";
    let events = [
        (0, 1, -13, 0),
        (0, 2, -1, 0),
        (2, 2, 0, 2 * MS),
        (2, 1, 0, 2 * MS),
        (0, 3, 7, 3 * MS),
    ];
    assert_eq!(
        run(&[SEQ, other, plain], &events),
        [false, false, false, true, true],
        "thread 2's -EPERM sequence has a 1 ms window"
    );
    assert_eq!(
        sequences(&[SEQ, plain, other].map(|t| t.parse().unwrap())),
        [SEQ, other]
    );
}

#[test]
fn windows_that_cannot_be_checked_are_refused_with_a_caret() {
    let cases: [(&str, &str, &str); 5] = [
        (
            "f.arg0 == 1 then f.arg1 == 2 within 0ms",
            "0ms",
            "longer than 0",
        ),
        (
            "f.arg0 == 1 then f.arg1 == 2 within -5ms",
            "-5ms",
            "longer than 0",
        ),
        (
            "f.arg0 == 1 then f.arg1 == 2 within 3601s",
            "3601s",
            "longer than the 3600 s",
        ),
        (
            "f.arg0 == 1 then f.arg1 == 2 within 10",
            "10",
            "not a duration",
        ),
        (
            "f.arg0 == 1 then f.arg1 == 2 within 4K",
            "4K",
            "not a duration",
        ),
    ];
    for (text, at, msg) in cases {
        let e = error(text);
        assert!(e.msg.contains(msg), "{text}: {e}");
        assert_eq!(e.pos, text.find(at).unwrap(), "{e}");
        assert!(e.to_string().contains("^\n  hint:"), "{e}");
    }
    let ok = compile_texts(&["f.arg0 == 1 then f.arg1 == 2 within 3600s"], &probes());
    assert!(ok.is_ok(), "an hour is the longest window");
}

#[test]
fn sequences_in_unsupported_places_are_refused_where_they_are() {
    let cases: [(&str, &str, &str); 9] = [
        ("f.arg0 == 1 then f.arg1 == 2", "", "needs a window"),
        (
            "f.arg0 == 1 then f.arg1 == 2 within",
            "",
            "takes a duration",
        ),
        ("f.arg0 == 1 then", "", "needs a condition after"),
        (
            "then f.arg1 == 2 within 1ms",
            "then",
            "expected a condition",
        ),
        (
            "(f.arg0 == 1 then f.arg1 == 2 within 1ms)",
            "then",
            "cannot be nested",
        ),
        (
            "!(f.arg0 == 1 then f.arg1 == 2 within 1ms)",
            "then",
            "cannot be nested",
        ),
        (
            "f.arg0 == 1 then f.arg1 == 2 then f.arg2 == 3 within 1ms",
            "then f.arg2",
            "two steps",
        ),
        (
            "f.arg0 == 1 then f.arg1 == 2 within 1ms && f.arg2 == 3",
            "&&",
            "nothing may follow",
        ),
        (
            "f.arg0 == 1 then nothing.arg1 == 2 within 1ms",
            "nothing",
            "unknown probe `nothing`",
        ),
    ];
    for (text, at, msg) in cases {
        let e = error(text);
        assert!(e.msg.contains(msg), "{text}: {e}");
        let want = if at.is_empty() {
            text.len()
        } else {
            text.find(at).unwrap()
        };
        assert_eq!(e.pos, want, "{e}");
    }
    // Three simple sequences fill the 32 instructions; the sequence limit stands behind it.
    let four: Vec<String> = (0..4)
        .map(|i| format!("f.arg0 == {i} then f.arg1 == 2 within 1ms"))
        .collect();
    let texts: Vec<&str> = four.iter().map(String::as_str).collect();
    compile_texts(&texts[..3], &probes()).expect("three sequences fit");
    let e = compile_texts(&texts, &probes()).expect_err("four do not");
    assert!(e.msg.contains("more than 32 instructions"), "{e}");
    let e = sequence::number("f then r within 1ms", 2, 4).expect_err("a fifth sequence");
    assert!(e.msg.contains("more than 4 sequences"), "{e}");
}

/// The compiled program (run by the kernel's userspace twin with the kernel's one-slot
/// per-thread state) agrees with the reference semantics (each thread's list of A times) on
/// random sequences over random streams of four threads, with gaps around the window's edge,
/// alone and with a second sequence or a plain condition compiled alongside.
#[test]
fn property_compiled_sequences_agree_with_the_reference() {
    let mut rng = Rng(0x5eed_5e90_0000_0001);
    let probes = probes();
    let leaves = Leaves {
        fields: &["f.arg0", "f.arg1", "r.ret", "sys_exit_openat.ret", "tid"],
        values: &["0", "1", "2", "-1", "-EACCES"],
        comms: &[],
        stateful: true,
        strings: &[],
        texts: &[],
    };
    let windows = ["1000ns", "1us", "5us", "3ms"];
    let (mut checked, mut fired, mut seq_fired) = (0, 0, 0);
    for _ in 0..1500 {
        let window = rng.pick(&windows);
        // A probe's name alone (any of its events) is the usual A or B.
        let step = |rng: &mut Rng| match rng.next_u64() % 4 {
            0 => rng.pick(&["f", "r", "sys_exit_openat", "!r"]).to_owned(),
            _ => random_expr(rng, leaves, 2),
        };
        let seq = format!("{} then {} within {window}", step(&mut rng), step(&mut rng));
        let mut texts = vec![seq];
        match rng.next_u64() % 4 {
            0 => texts.push(random_expr(&mut rng, leaves, 1)),
            1 => texts.push(format!(
                "{} then {} within 2us",
                random_expr(&mut rng, leaves, 1),
                random_expr(&mut rng, leaves, 1)
            )),
            _ => {}
        }
        let Ok(triggers) = texts
            .iter()
            .map(|t| t.parse::<Trigger>())
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        let Ok(prog) = compile(&triggers, &probes) else {
            continue;
        };
        let (mut tree_state, mut prog_state) = ([(0, false); MAX_SLOTS], [(0, false); MAX_SLOTS]);
        let (mut history, mut seqs) = (History::default(), SeqState::new());
        let mut ts = 1_000_000;
        for _ in 0..24 {
            ts += pick(
                &mut rng,
                &[0, 1, 999, 1000, 1001, 2000, 4999, 5000, 5001, 3 * MS],
            );
            let probe = pick(&mut rng, &[0, 1, 3]);
            let small = |rng: &mut Rng| pick(rng, &[0u64, 1, 2, u64::MAX, (-13i64) as u64]);
            let mut c = ctx(probe, [small(&mut rng), small(&mut rng), 0, 0, 0, 0], None);
            c.ret = (probe != 1).then(|| small(&mut rng));
            c.tid = rng.next_u64() % 3;
            let want =
                evaluate_tree_at(&triggers, &probes, (&c, ts), &mut tree_state, &mut history)
                    .expect("what compiles evaluates");
            let got = evaluate_at(&prog, (&c, ts), &mut prog_state, &mut seqs);
            assert_eq!(got, want, "{texts:?} at {ts} on {c:?}");
            assert_eq!(prog_state, tree_state, "{texts:?}: max()/changed() state");
            checked += 1;
            fired += usize::from(got);
            // How often sequences alone fired.
            if triggers
                .iter()
                .all(|t| matches!(t, Trigger::Sequence { .. }))
            {
                seq_fired += usize::from(got);
            }
        }
    }
    assert!(checked > 20_000, "only {checked} cases checked");
    assert!(
        seq_fired > checked / 50 && fired < checked / 2,
        "{seq_fired} sequence firings, {fired} firings in {checked} events"
    );
}
