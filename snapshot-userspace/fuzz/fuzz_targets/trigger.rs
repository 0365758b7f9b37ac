//! Any text as a `--trigger`: parsed, compiled against a probe table, and when it compiles, the
//! bytecode the kernel runs (through its userspace twin) must agree with the syntax-tree
//! semantics on events derived from the input, `max()`/`changed()` state included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapshot_common::MAX_SLOTS;
use snapshot_userspace::{
    probe::{ProbeInfo, ProbeSpec},
    trigger::{self, EventCtx, Trigger},
};

fn probes() -> Vec<ProbeInfo> {
    let spec = |s: &str| -> ProbeSpec { s.parse().expect("a valid spec") };
    vec![
        ProbeInfo::new(0, &spec("tracepoint:syscalls:sys_exit_read"), vec!["ret".into()]),
        ProbeInfo::new(1, &spec("f=uprobe:/bin/x:work"), vec![]),
        ProbeInfo::new(2, &spec("tracepoint:syscalls:sys_enter_close"), vec!["fd".into()]),
        ProbeInfo::new(3, &spec("f=uretprobe:/bin/x:work"), vec![]),
    ]
}

/// Eight bytes of `data` from `at`, wrapping, as a word.
fn word(data: &[u8], at: usize) -> u64 {
    if data.is_empty() {
        return 0;
    }
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().enumerate() {
        *x = data[(at + i) % data.len()];
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let triggers: Result<Vec<Trigger>, _> = text.split('\n').map(str::parse).collect();
    let Ok(triggers) = triggers else {
        return;
    };
    let probes = probes();
    let Ok(prog) = trigger::compile(&triggers, &probes) else {
        return;
    };
    let (mut tree_state, mut prog_state) = ([(0, false); MAX_SLOTS], [(0, false); MAX_SLOTS]);
    for i in 0..8usize {
        let w = |k: usize| word(data, i * 64 + k * 8);
        let probe = (w(0) % 4) as u32;
        let ctx = EventCtx {
            probe,
            args: [w(1), w(2), w(3), w(4), w(5), w(6)],
            ret: (probe != 1).then(|| w(7)),
            latency: (probe == 3).then(|| w(1) >> (w(2) % 64)),
            pid: w(3) % 3,
            tid: w(4) % 3,
            cpu: w(5) % 2,
            comm: if w(6) % 2 == 0 { *b"work\0\0\0\0\0\0\0\0\0\0\0\0" } else { [b'x'; 16] },
            strings: Default::default(),
        };
        let want = trigger::evaluate_tree(&triggers, &probes, &ctx, &mut tree_state)
            .expect("what compiles evaluates");
        let got = trigger::evaluate(&prog, &ctx, &mut prog_state);
        assert_eq!(got, want, "{text:?} on {ctx:?}");
        assert_eq!(prog_state, tree_state, "{text:?}: max()/changed() state");
    }
});
