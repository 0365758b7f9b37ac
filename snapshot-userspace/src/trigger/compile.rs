//! Compiling syntax trees against the probe table into the bytecode program the kernel runs
//! (`snapshot-ebpf/src/trigger.rs`): names resolved, types checked, limits enforced.

use snapshot_common::{
    ANY_PROBE, CmpOp, FIELD_CPU, FIELD_LATENCY, FIELD_PID, FIELD_RET, FIELD_TID, Insn, MAX_CONSTS,
    MAX_INSNS, MAX_SLOTS, STACK_DEPTH, TriggerProgram, op,
};

use super::{Ast, ExprError, Operand, Trigger};
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
                    if !matches!(cmp, Some(CmpOp::Eq | CmpOp::Ne)) {
                        return Err(ExprError::new(
                            self.expr,
                            *pos,
                            "`comm` only compares with == or !=",
                            "write comm == \"name\"",
                        ));
                    }
                    if s.len() >= self.prog.comm.len() {
                        return Err(ExprError::new(
                            self.expr,
                            *pos,
                            format!("\"{s}\" is longer than a command name (15 characters)"),
                            "give the first 15 characters",
                        ));
                    }
                    let mut comm = [0; snapshot_common::COMM_LEN];
                    comm[..s.len()].copy_from_slice(s.as_bytes());
                    // The kernel program holds one command name: a second, different one
                    // would silently replace the first.
                    match &self.comm {
                        Some(first) if *first != comm => {
                            return Err(ExprError::new(
                                self.expr,
                                *pos,
                                format!(
                                    "only one command name per trigger: `comm` is compared with \"{}\" already",
                                    crate::sys::comm_str(first)
                                ),
                                "compare comm with one name in all --trigger options",
                            ));
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
                (Operand::Comm | Operand::Str(_), _) | (_, Operand::Comm | Operand::Str(_)) => {
                    Err(ExprError::new(
                        self.expr,
                        *pos,
                        "incompatible types: a string compares only with `comm`",
                        "compare numbers with numbers, and comm with \"name\"",
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

/// Compiles the triggers (any one firing takes the snapshot) into one program; `manual` alone
/// gives the empty program.
pub fn compile(triggers: &[Trigger], probes: &[ProbeInfo]) -> Result<TriggerProgram, ExprError> {
    let mut c = Compiler {
        expr: "",
        probes,
        prog: TriggerProgram::default(),
        depth: 0,
        max_depth: 0,
        consts: Vec::new(),
        slots: 0,
        comm: None,
    };
    let conditions = triggers.iter().filter_map(|t| match t {
        Trigger::Manual => None,
        Trigger::Condition { text, ast } => Some((text, ast)),
    });
    for (n, (text, ast)) in conditions.enumerate() {
        c.expr = text;
        c.ast(ast)?;
        if n > 0 {
            c.emit(op::OR, 0, 0, 0, -1)?;
        }
    }
    Ok(c.prog)
}
