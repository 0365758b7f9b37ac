//! Built-in triggers: `crash`, `signal(SIG)` and `oom`, atoms of the trigger language that
//! expand, when parsed, into conditions on tracepoints the recorder adds by itself.
//!
//! | keyword       | probe added (name = tracepoint)     | condition                                 |
//! |---------------|-------------------------------------|-------------------------------------------|
//! | `crash`       | `tracepoint:signal:signal_deliver`  | `sig` ∈ {ILL TRAP ABRT BUS FPE SEGV SYS} && `sa_handler == 0` (`SIG_DFL`: the signal kills) |
//! | `signal(SIG)` | `tracepoint:signal:signal_generate` | `sig == SIG && result == 0` (sent to a target and queued, whatever its disposition) |
//! | `oom`         | `tracepoint:oom:mark_victim`        | `pid > 0` (the OOM killer chose a victim) |
//!
//! `signal_deliver` runs in the receiving thread as it takes the signal (for a fault: the
//! faulting thread, its user stack at the fault), before the process dumps core or exits, so
//! the in-kernel flip freezes the snapshot while the process still exists.
//!
//! `signal_generate` and `mark_victim` run in another task than the one they are about: the
//! sender of the signal (`kill -TERM` from a shell), the task whose allocation ran out of
//! memory. Their probes are filtered by the victim, the `pid` field of the record
//! (`ProbeSpec::subject_pid`), not by the task they run in; a signal a target sends one of its
//! own threads is filtered by the sender as usual. `signal(SIG)` is taken where the signal is
//! sent, so it sees a SIGTERM the target does not handle, which the kernel delivers as
//! SIGKILL (`signal_deliver` never sees it); the snapshot is frozen before the target runs
//! again. A signal sent by another process to one thread (`tgkill`) other than the main one
//! is not matched: the record names the thread, and the filter knows processes.
//!
//! The expansion is an ordinary syntax tree, so a built-in combines with anything
//! (`crash && comm == "nginx"`, `--trigger crash --trigger 'x.ret < 0'`), and the headers
//! show the trigger as written. The triggering value is the signal number (shown decoded,
//! `11 SIGSEGV`) or the victim's pid.

use snapshot_common::CmpOp;

use super::{Ast, ExprError, Operand, Trigger};
use crate::probe::ProbeSpec;

/// The probe `crash` adds: a signal delivered.
pub const SIGNAL_PROBE: &str = "signal_deliver";
/// The probe `signal()` adds: a signal sent (filtered by its receiver).
pub const GENERATE_PROBE: &str = "signal_generate";
/// The probe `oom` adds: the OOM killer chose a victim.
pub const OOM_PROBE: &str = "mark_victim";

/// The signals `crash` means: faults and aborts that kill with a core by default.
pub const CRASH_SIGNALS: [(&str, i64); 7] = [
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGSEGV", 11),
    ("SIGSYS", 31),
];

/// Whether identifier `name`, followed by an operator or not, is a built-in trigger keyword
/// (a probe named `crash` still reads as one in `crash.ret`).
#[must_use]
pub fn is_keyword(name: &str, next_is_operator: bool) -> bool {
    matches!(name, "crash" | "oom" | "signal") && !next_is_operator
}

fn field(probe: &str, name: &str) -> Operand {
    Operand::Field {
        probe: Some(probe.to_owned()),
        name: name.to_owned(),
    }
}

fn cmp(probe: &str, name: &str, op: CmpOp, v: i64, pos: usize) -> Ast {
    Ast::Cmp {
        lhs: field(probe, name),
        op: Some(op),
        rhs: Operand::Int(v),
        pos,
    }
}

fn or(l: Ast, r: Ast) -> Ast {
    Ast::Or(Box::new(l), Box::new(r))
}

fn and(l: Ast, r: Ast) -> Ast {
    Ast::And(Box::new(l), Box::new(r))
}

/// The signal number a `signal()` argument names: `SIGTERM`, `TERM`, `sigterm`, `SIGRT_3`
/// or `15` (1 to 64).
#[must_use]
pub fn signal_number(arg: &str) -> Option<i64> {
    if let Ok(n) = arg.parse::<i64>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = arg.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    let alias = match name.as_str() {
        "SIGIOT" => Some(6),
        "SIGPOLL" => Some(29),
        "SIGRTMIN" => Some(32),
        "SIGRTMAX" => Some(64),
        _ => None,
    };
    alias.or_else(|| (1..=64).find(|&n| crate::abi::signal(n) == name))
}

/// The expansion of a keyword at `pos` of `expr`: `crash`, `oom`, or `signal` with its
/// argument (`None`: missing).
pub fn expand(expr: &str, pos: usize, name: &str, arg: Option<&str>) -> Result<Ast, ExprError> {
    Ok(match name {
        "crash" => {
            let (lo, hi) = (CRASH_SIGNALS[0].1, CRASH_SIGNALS[4].1);
            let range = and(
                cmp(SIGNAL_PROBE, "sig", CmpOp::Ge, lo, pos),
                cmp(SIGNAL_PROBE, "sig", CmpOp::Le, hi, pos),
            );
            let sigs = or(
                or(range, cmp(SIGNAL_PROBE, "sig", CmpOp::Eq, 11, pos)),
                cmp(SIGNAL_PROBE, "sig", CmpOp::Eq, 31, pos),
            );
            and(sigs, cmp(SIGNAL_PROBE, "sa_handler", CmpOp::Eq, 0, pos))
        }
        "oom" => cmp(OOM_PROBE, "pid", CmpOp::Gt, 0, pos),
        _ => {
            let Some(arg) = arg else {
                return Err(ExprError::new(
                    expr,
                    pos,
                    "signal() takes a signal name or number",
                    "write e.g. signal(SIGTERM) or signal(15)",
                ));
            };
            let Some(n) = signal_number(arg) else {
                return Err(ExprError::new(
                    expr,
                    pos,
                    format!("unknown signal `{arg}`"),
                    "name one as kill -l does (SIGTERM, TERM, SIGRT_3) or give its number (1 to 64)",
                ));
            };
            // `result` 0: TRACE_SIGNAL_DELIVERED, queued for the target (not ignored, not
            // already pending).
            and(
                cmp(GENERATE_PROBE, "sig", CmpOp::Eq, n, pos),
                cmp(GENERATE_PROBE, "result", CmpOp::Eq, 0, pos),
            )
        }
    })
}

/// The built-in probe a field of probe `name` belongs to, as a `--probe` spec.
fn spec_of(name: &str) -> Option<&'static str> {
    match name {
        SIGNAL_PROBE => Some("signal_deliver=tracepoint:signal:signal_deliver"),
        GENERATE_PROBE => Some("signal_generate=tracepoint:signal:signal_generate"),
        OOM_PROBE => Some("mark_victim=tracepoint:oom:mark_victim"),
        _ => None,
    }
}

/// The field of built-in probe `name` that holds the task its events are about, when that is
/// not the task the tracepoint runs in.
fn subject_of(name: &str) -> Option<&'static str> {
    matches!(name, GENERATE_PROBE | OOM_PROBE).then_some("pid")
}

fn probes_of(a: &Ast, out: &mut Vec<&'static str>) {
    let mut operand = |o: &Operand| {
        if let Operand::Field { probe: Some(p), .. } = o
            && let Some(s) = spec_of(p)
            && !out.contains(&s)
        {
            out.push(s);
        }
    };
    match a {
        Ast::Or(l, r) | Ast::And(l, r) => {
            probes_of(l, out);
            probes_of(r, out);
        }
        Ast::Not(x) => probes_of(x, out),
        Ast::Cmp { lhs, rhs, .. } => {
            operand(lhs);
            operand(rhs);
        }
        Ast::Glob { lhs, .. } | Ast::Max(lhs, _) | Ast::Changed(lhs, _) => operand(lhs),
        Ast::Probe(name, _) => {
            if let Some(s) = spec_of(name)
                && !out.contains(&s)
            {
                out.push(s);
            }
        }
    }
}

/// The built-in probes a trigger names (both steps of a sequence).
fn probes_of_trigger(t: &Trigger, out: &mut Vec<&'static str>) {
    match t {
        Trigger::Condition { ast, .. } => probes_of(ast, out),
        Trigger::Sequence { first, then, .. } => {
            probes_of(first, out);
            probes_of(then, out);
        }
        Trigger::Manual => {}
    }
}

/// Why the built-in probes cannot be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--probe `{taken}` is named `{name}`, the name of the probe the trigger adds itself (`{builtin}`): rename yours (`-p OTHER_NAME=SPEC`), or make it probe that tracepoint"
)]
pub struct NameTaken {
    /// The name.
    pub name: String,
    /// The user's probe.
    pub taken: String,
    /// The built-in probe's spec.
    pub builtin: String,
}

/// `specs` and the probes the triggers' built-ins need (a trigger naming `signal_deliver`,
/// `signal_generate` or `mark_victim` gets that tracepoint, the last two filtered by their
/// victim), unless a probe of that name already attaches it.
pub fn with_probes(triggers: &[Trigger], specs: &[ProbeSpec]) -> Result<Vec<ProbeSpec>, NameTaken> {
    let mut needed = Vec::new();
    for t in triggers {
        probes_of_trigger(t, &mut needed);
    }
    let mut out = specs.to_vec();
    for text in needed {
        let Ok(mut spec) = text.parse::<ProbeSpec>() else {
            continue;
        };
        spec.subject_pid = subject_of(spec.name()).map(str::to_owned);
        match specs.iter().find(|s| s.name() == spec.name()) {
            Some(s) if s.kind == spec.kind && s.location == spec.location => {}
            Some(s) => {
                return Err(NameTaken {
                    name: spec.name().to_owned(),
                    taken: s.text.clone(),
                    builtin: text.split_once('=').map_or(text, |(_, t)| t).to_owned(),
                });
            }
            None => out.push(spec),
        }
    }
    Ok(out)
}

/// Whether a trigger names a built-in probe (a crash or an OOM kill: the process may be gone
/// when its trigger is handled, so the recorder keeps the targets' memory maps).
#[must_use]
pub fn watches_deaths(triggers: &[Trigger]) -> bool {
    triggers.iter().any(|t| {
        let mut v = Vec::new();
        probes_of_trigger(t, &mut v);
        !v.is_empty()
    })
}

/// The triggers in the order they are compiled: those naming a built-in probe first, so that
/// the value a snapshot reports on that probe's event is its first field (the signal, the
/// victim's pid). The order changes nothing else: the triggers are or-ed.
#[must_use]
pub fn ordered(triggers: &[Trigger]) -> Vec<Trigger> {
    let (mut first, rest): (Vec<Trigger>, Vec<Trigger>) = triggers
        .iter()
        .cloned()
        .partition(|t| watches_deaths(std::slice::from_ref(t)));
    first.extend(rest);
    first
}

/// How a trigger value on probe `probe` reads: `SIGSEGV` for a delivered signal, `(victim pid)`
/// for an OOM victim.
#[must_use]
pub fn describe_value(probe: &str, value: i64) -> Option<String> {
    match probe {
        SIGNAL_PROBE | GENERATE_PROBE => Some(crate::abi::signal(value)),
        OOM_PROBE => Some("(victim pid)".to_owned()),
        _ => None,
    }
}
