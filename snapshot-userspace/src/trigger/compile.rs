//! Compiling syntax trees against the probe table into the bytecode program the kernel runs
//! (`snapshot-ebpf/src/trigger.rs`): names resolved, types checked, limits enforced.

use snapshot_common::{
    ANY_PROBE, CmpOp, FIELD_CPU, FIELD_LATENCY, FIELD_PID, FIELD_RET, FIELD_TID, Insn, MAX_CONSTS,
    MAX_INSNS, MAX_SLOTS, MAX_STR_OPS, STACK_DEPTH, StrOp, TriggerProgram, op,
    strings::{PATTERN_MAX, STRING_SIZE_DEFAULT},
};

pub use super::strings::glob_pattern;
use super::{
    Ast, ExprError, Operand, Trigger,
    strings::{self, PatTok},
};
use crate::probe::{ProbeInfo, ProbeKind};

/// A field resolved against the probe table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRef {
    /// `FIELD_*` code or argument index.
    pub code: u8,
    /// Probe id, or `ANY_PROBE`.
    pub probe: u32,
}

pub(super) fn resolve(
    probes: &[ProbeInfo],
    expr: &str,
    pos: usize,
    probe: Option<&str>,
    name: &str,
) -> Result<FieldRef, ExprError> {
    let Some(probe) = probe else {
        let code = match name {
            "pid" => FIELD_PID,
            "tid" => FIELD_TID,
            "cpu" => FIELD_CPU,
            _ => {
                let known: Vec<String> = probes
                    .iter()
                    .map(|p| format!("{}.…", p.name))
                    .chain(["pid", "tid", "cpu", "comm"].map(String::from))
                    .collect();
                return Err(ExprError::new(
                    expr,
                    pos,
                    format!("unknown field `{name}`"),
                    format!("use one of {}", known.join(", ")),
                ));
            }
        };
        return Ok(FieldRef {
            code,
            probe: ANY_PROBE,
        });
    };
    let named: Vec<&ProbeInfo> = probes.iter().filter(|p| p.name == probe).collect();
    if named.is_empty() {
        let known: Vec<String> = probes.iter().map(|p| format!("`{}`", p.name)).collect();
        return Err(ExprError::new(
            expr,
            pos,
            format!("unknown probe `{probe}`"),
            format!(
                "the probes are {} (name one with --probe NAME=SPEC)",
                known.join(", ")
            ),
        ));
    }
    for p in &named {
        let code = match name {
            "ret" if p.kind.is_return() || p.kind == ProbeKind::Tracepoint => Some(FIELD_RET),
            "latency" if p.kind.is_return() => Some(FIELD_LATENCY),
            n => n
                .strip_prefix("arg")
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|&i| i < p.nargs())
                .map(|i| i as u8)
                .or_else(|| p.arg_names.iter().position(|a| a == n).map(|i| i as u8)),
        };
        if let Some(code) = code {
            return Ok(FieldRef { code, probe: p.id });
        }
    }
    let mut known: Vec<String> = Vec::new();
    for p in &named {
        known.extend((0..p.nargs()).map(|i| format!("arg{i}")));
        known.extend(p.arg_names.iter().cloned());
        if p.kind.is_return() {
            known.extend(["ret".to_owned(), "latency".to_owned()]);
        } else if p.kind == ProbeKind::Tracepoint {
            known.push("ret".to_owned());
        }
    }
    known.dedup();
    Err(ExprError::new(
        expr,
        pos,
        format!("probe `{probe}` has no field `{name}`"),
        format!("valid fields are {}", known.join(", ")),
    ))
}

/// The ids of the probes named `name` (a probe's name alone, as a condition), or the error
/// when none is.
pub(super) fn probe_ids(
    probes: &[ProbeInfo],
    expr: &str,
    pos: usize,
    name: &str,
) -> Result<Vec<u32>, ExprError> {
    let ids: Vec<u32> = probes
        .iter()
        .filter(|p| p.name == name)
        .map(|p| p.id)
        .collect();
    if ids.is_empty() {
        let known: Vec<String> = probes.iter().map(|p| format!("`{}`", p.name)).collect();
        return Err(ExprError::new(
            expr,
            pos,
            format!("`{name}` is not a probe, and a value alone is not a condition"),
            format!(
                "name a probe for any of its events ({}), or compare a value with == != < <= > >=",
                known.join(", ")
            ),
        ));
    }
    Ok(ids)
}

struct Compiler<'a> {
    expr: &'a str,
    probes: &'a [ProbeInfo],
    prog: TriggerProgram,
    depth: usize,
    max_depth: usize,
    consts: Vec<u64>,
    slots: usize,
    /// The command name compared with, once one is.
    comm: Option<[u8; snapshot_common::COMM_LEN]>,
    string_size: u32,
}

impl Compiler<'_> {
    fn emit(&mut self, op: u8, a: u8, b: u32, pos: usize, push: isize) -> Result<(), ExprError> {
        let n = self.prog.len as usize;
        if n >= MAX_INSNS {
            return Err(ExprError::new(
                self.expr,
                pos,
                format!("the expression is too long: more than {MAX_INSNS} instructions"),
                "split it into several --trigger options (any one firing takes the snapshot)",
            ));
        }
        self.prog.insns[n] = Insn {
            op,
            a,
            pad: [0; 2],
            b,
        };
        self.prog.len += 1;
        self.depth = self.depth.saturating_add_signed(push);
        self.max_depth = self.max_depth.max(self.depth);
        if self.max_depth > STACK_DEPTH {
            return Err(ExprError::new(
                self.expr,
                pos,
                format!("the expression nests too deeply: more than {STACK_DEPTH} values at once"),
                "flatten it or split it into several --trigger options",
            ));
        }
        Ok(())
    }

    fn constant(&mut self, v: i64, pos: usize) -> Result<u32, ExprError> {
        let v = v as u64;
        if let Some(i) = self.consts.iter().position(|&c| c == v) {
            return Ok(i as u32);
        }
        if self.consts.len() >= MAX_CONSTS {
            return Err(ExprError::new(
                self.expr,
                pos,
                format!("more than {MAX_CONSTS} different constants"),
                "split the expression into several --trigger options",
            ));
        }
        self.prog.consts[self.consts.len()] = v;
        self.consts.push(v);
        Ok(self.consts.len() as u32 - 1)
    }

    fn operand(&mut self, o: &Operand, pos: usize) -> Result<(), ExprError> {
        match o {
            Operand::Field { probe, name } => {
                if !strings::resolve(self.probes, probe.as_deref(), name).is_empty() {
                    return Err(ExprError::new(
                        self.expr,
                        pos,
                        format!("`{name}` is a string: it does not compare with a number"),
                        "compare it with a string (`== \"/etc/hostname\"`, `~ \"/tmp/*\"`), or its address with PROBE.argN",
                    ));
                }
                let f = resolve(self.probes, self.expr, pos, probe.as_deref(), name)?;
                self.emit(op::FIELD, f.code, f.probe, pos, 1)
            }
            Operand::Int(v) => {
                let i = self.constant(*v, pos)?;
                self.emit(op::CONST, 0, i, pos, 1)
            }
            Operand::Comm | Operand::Str(_) => Err(ExprError::new(
                self.expr,
                pos,
                "`comm` compares with a string only",
                "write comm == \"name\" or comm != \"name\"",
            )),
        }
    }

    /// The strings an operand names (`comm`, or a captured string of one or more probes), or
    /// an error for a number.
    fn string_of(&self, o: &Operand, pos: usize, what: &str) -> Result<Vec<StrOp>, ExprError> {
        match o {
            Operand::Comm => Ok(vec![strings::op_of_comm()]),
            Operand::Field { probe, name } => {
                let ops = strings::resolve(self.probes, probe.as_deref(), name);
                if !ops.is_empty() {
                    return Ok(ops);
                }
                // Unknown names get the numeric resolution's error (it lists the fields).
                resolve(self.probes, self.expr, pos, probe.as_deref(), name)?;
                Err(ExprError::new(
                    self.expr,
                    pos,
                    format!("`{name}` is a number: {what}"),
                    "compare numbers with == != < <= > >= or &; strings are captured fields (`sys_enter_openat.filename`, `PROBE(argN:str)`) and comm",
                ))
            }
            _ => Err(ExprError::new(
                self.expr,
                pos,
                "a string comparison needs a string field or comm on its left",
                "write e.g. sys_enter_openat.filename ~ \"/tmp/*\"",
            )),
        }
    }

    /// String comparisons of each of `sops` (one per probe that has the string) against the
    /// pattern of `text` (a glob or a literal), or-ed: an event has at most one of them.
    fn string_cmps(
        &mut self,
        sops: &[StrOp],
        text: &str,
        glob: bool,
        negate: bool,
        pos: usize,
    ) -> Result<(), ExprError> {
        for (n, sop) in sops.iter().enumerate() {
            self.string_cmp(*sop, text, glob, negate, pos)?;
            if n > 0 {
                self.emit(op::OR, 0, 0, pos, -1)?;
            }
        }
        Ok(())
    }

    /// One string comparison: `sop` against the pattern of `text`.
    fn string_cmp(
        &mut self,
        mut sop: StrOp,
        text: &str,
        glob: bool,
        negate: bool,
        pos: usize,
    ) -> Result<(), ExprError> {
        let toks = strings::tokens(text, glob).ok_or_else(|| {
            ExprError::new(
                self.expr,
                pos,
                format!("bad escape in \"{text}\""),
                "escapes are \\\\ \\\" \\* \\? \\n \\t \\0 \\xNN",
            )
        })?;
        if toks.len() > PATTERN_MAX {
            return Err(ExprError::new(
                self.expr,
                pos,
                format!("\"{text}\" is longer than {PATTERN_MAX} characters"),
                "shorten it: a glob such as \"*/name\" matches the end of a long path",
            ));
        }
        let literal = toks.iter().filter(|t| !matches!(t, PatTok::Star)).count();
        let limit = if sop.src == snapshot_common::strings::STR_SRC_COMM {
            snapshot_common::COMM_LEN as u32 - 1
        } else {
            self.string_size
        };
        if literal > limit as usize {
            return Err(ExprError::new(
                self.expr,
                pos,
                format!("\"{text}\" can never match: the string holds at most {limit} bytes"),
                "raise --string-size, or match a shorter part with a glob",
            ));
        }
        let k = self.prog.nstr as usize;
        if k >= MAX_STR_OPS {
            return Err(ExprError::new(
                self.expr,
                pos,
                format!("more than {MAX_STR_OPS} string comparisons"),
                "split the expression into several --trigger options",
            ));
        }
        sop.pad = [0; 2];
        self.prog.str_ops[k] = sop;
        self.prog.patterns[k] = glob_pattern(&toks);
        self.prog.nstr += 1;
        self.emit(op::STR, 0, k as u32, pos, 1)?;
        if negate {
            self.emit(op::NOT, 0, 0, pos, 0)?;
        }
        Ok(())
    }

    fn ast(&mut self, a: &Ast) -> Result<(), ExprError> {
        match a {
            Ast::Or(l, r) | Ast::And(l, r) => {
                self.ast(l)?;
                self.ast(r)?;
                let o = if matches!(a, Ast::Or(..)) {
                    op::OR
                } else {
                    op::AND
                };
                self.emit(o, 0, 0, 0, -1)
            }
            Ast::Not(x) => {
                self.ast(x)?;
                self.emit(op::NOT, 0, 0, 0, 0)
            }
            Ast::Cmp {
                lhs,
                op: cmp,
                rhs,
                pos,
            } => match (lhs, rhs) {
                (Operand::Comm, Operand::Str(s)) | (Operand::Str(s), Operand::Comm) => {
                    let text = s.as_str();
                    if !matches!(cmp, Some(CmpOp::Eq | CmpOp::Ne)) {
                        return Err(ExprError::new(
                            self.expr,
                            *pos,
                            "`comm` only compares with ==, != or ~",
                            "write comm == \"name\" or comm ~ \"worker-*\"",
                        ));
                    }
                    let s = strings::unescape(s).ok_or_else(|| {
                        ExprError::new(
                            self.expr,
                            *pos,
                            format!("bad escape in \"{s}\""),
                            "escapes are \\\\ \\\" \\n \\t \\xNN",
                        )
                    })?;
                    if s.len() >= self.prog.comm.len() {
                        return Err(ExprError::new(
                            self.expr,
                            *pos,
                            format!(
                                "\"{}\" is longer than a command name (15 characters)",
                                String::from_utf8_lossy(&s)
                            ),
                            "give the first 15 characters",
                        ));
                    }
                    let mut comm = [0; snapshot_common::COMM_LEN];
                    comm[..s.len()].copy_from_slice(&s);
                    // The kernel program holds one command name (compared at once); another
                    // is compared as a string, like a captured one.
                    match &self.comm {
                        Some(first) if *first != comm => {
                            return self.string_cmps(
                                &[strings::op_of_comm()],
                                text,
                                false,
                                *cmp == Some(CmpOp::Ne),
                                *pos,
                            );
                        }
                        _ => self.comm = Some(comm),
                    }
                    self.prog.comm = comm;
                    self.emit(op::COMM_EQ, 0, 0, *pos, 1)?;
                    if *cmp == Some(CmpOp::Ne) {
                        self.emit(op::NOT, 0, 0, *pos, 0)?;
                    }
                    Ok(())
                }
                (field @ Operand::Field { .. }, Operand::Str(s))
                | (Operand::Str(s), field @ Operand::Field { .. }) => {
                    let what = "it does not compare with a string";
                    let sop = self.string_of(field, *pos, what)?;
                    if !matches!(cmp, Some(CmpOp::Eq | CmpOp::Ne)) {
                        return Err(ExprError::new(
                            self.expr,
                            *pos,
                            "strings compare with ==, != and ~ (glob) only",
                            "write e.g. PROBE.filename == \"/etc/hostname\", or ~ \"/tmp/*\" for a prefix",
                        ));
                    }
                    self.string_cmps(&sop, s, false, *cmp == Some(CmpOp::Ne), *pos)
                }
                (Operand::Comm | Operand::Str(_), _) | (_, Operand::Comm | Operand::Str(_)) => {
                    Err(ExprError::new(
                        self.expr,
                        *pos,
                        "incompatible types: a string compares only with a string field or `comm`",
                        "compare numbers with numbers, and strings (captured fields, comm) with \"text\"",
                    ))
                }
                _ => {
                    self.operand(lhs, *pos)?;
                    self.operand(rhs, *pos)?;
                    match cmp {
                        Some(c) => self.emit(op::CMP, *c as u8, 0, *pos, -1),
                        None => self.emit(op::BITAND, 0, 0, *pos, -1),
                    }
                }
            },
            Ast::Glob {
                lhs,
                pattern,
                negate,
                pos,
            } => {
                let sop = self.string_of(lhs, *pos, "`~` matches strings only")?;
                self.string_cmps(&sop, pattern, true, *negate, *pos)
            }
            Ast::Probe(name, pos) => {
                // An event of the probe: its pid is valid (and >= 0) on its events only.
                let ids = probe_ids(self.probes, self.expr, *pos, name)?;
                let zero = self.constant(0, *pos)?;
                for (n, id) in ids.into_iter().enumerate() {
                    self.emit(op::FIELD, FIELD_PID, id, *pos, 1)?;
                    self.emit(op::CONST, 0, zero, *pos, 1)?;
                    self.emit(op::CMP, CmpOp::Ge as u8, 0, *pos, -1)?;
                    if n > 0 {
                        self.emit(op::OR, 0, 0, *pos, -1)?;
                    }
                }
                Ok(())
            }
            Ast::Max(o, pos) | Ast::Changed(o, pos) => {
                if self.slots >= MAX_SLOTS {
                    return Err(ExprError::new(
                        self.expr,
                        *pos,
                        format!("more than {MAX_SLOTS} max()/changed()"),
                        "split the expression into several --trigger options",
                    ));
                }
                self.operand(o, *pos)?;
                let o = if matches!(a, Ast::Max(..)) {
                    op::MAX
                } else {
                    op::CHANGED
                };
                self.slots += 1;
                self.emit(o, 0, self.slots as u32 - 1, *pos, 0)
            }
        }
    }
}

impl Compiler<'_> {
    /// Sequence number `index`: B, `SEQ_MATCH` (pops B, pushes whether it completes this
    /// thread's A within the window), A, `SEQ_ARM` (pops A); see `sequence.rs`.
    fn sequence(
        &mut self,
        index: usize,
        (first, then): (&Ast, &Ast),
        within_ns: u64,
        pos: usize,
    ) -> Result<(), ExprError> {
        let seq = super::sequence::number(self.expr, pos, index)?;
        self.ast(then)?;
        let window = self.constant(within_ns as i64, pos)?;
        self.emit(op::SEQ_MATCH, seq, window, pos, 0)?;
        self.ast(first)?;
        self.emit(op::SEQ_ARM, seq, 0, pos, -1)
    }
}

/// Compiles the triggers (any one firing takes the snapshot) into one program; `manual` alone
/// gives the empty program. Strings are checked against the default `--string-size`.
pub fn compile(triggers: &[Trigger], probes: &[ProbeInfo]) -> Result<TriggerProgram, ExprError> {
    compile_sized(triggers, probes, STRING_SIZE_DEFAULT)
}

/// As [`compile`], for strings of `string_size` bytes (`--string-size`).
pub fn compile_sized(
    triggers: &[Trigger],
    probes: &[ProbeInfo],
    string_size: u32,
) -> Result<TriggerProgram, ExprError> {
    let mut c = Compiler {
        string_size,
        expr: "",
        probes,
        prog: TriggerProgram::default(),
        depth: 0,
        max_depth: 0,
        consts: Vec::new(),
        slots: 0,
        comm: None,
    };
    let (mut n, mut seqs) = (0, 0);
    for t in triggers {
        match t {
            Trigger::Manual => continue,
            Trigger::Condition { text, ast } => {
                c.expr = text;
                c.ast(ast)?;
            }
            Trigger::Sequence {
                text,
                first,
                then,
                within_ns,
                pos,
            } => {
                c.expr = text;
                c.sequence(seqs, (first, then), *within_ns, *pos)?;
                seqs += 1;
            }
        }
        n += 1;
        if n > 1 {
            c.emit(op::OR, 0, 0, 0, -1)?;
        }
    }
    Ok(c.prog)
}
