//! The parser: tokens to a syntax tree, with the position of every comparison for errors.

use snapshot_common::CmpOp;

use super::{
    ExprError, builtin,
    lex::{Tok, lex},
};

/// A value in a comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// `probe.name`, or a bare `pid` / `tid` / `cpu`.
    Field {
        /// Probe name, when given.
        probe: Option<String>,
        /// Field name.
        name: String,
    },
    /// An integer.
    Int(i64),
    /// The task's command name.
    Comm,
    /// A string literal.
    Str(String),
}

/// A parsed condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ast {
    /// `a || b`
    Or(Box<Ast>, Box<Ast>),
    /// `a && b`
    And(Box<Ast>, Box<Ast>),
    /// `!a`
    Not(Box<Ast>),
    /// `lhs OP rhs`; `op: None` is the bit test `&`.
    Cmp {
        /// Left side.
        lhs: Operand,
        /// Operator.
        op: Option<CmpOp>,
        /// Right side.
        rhs: Operand,
        /// Offset of the left side.
        pos: usize,
    },
    /// `lhs ~ "glob"` (`negate`: `!~`).
    Glob {
        /// The string matched.
        lhs: Operand,
        /// The pattern, escapes kept.
        pattern: String,
        /// `!~`.
        negate: bool,
        /// Offset of the left side.
        pos: usize,
    },
    /// `max(field)`: a new maximum.
    Max(Operand, usize),
    /// `changed(field)`: a new value.
    Changed(Operand, usize),
    /// A probe's name alone: an event of that probe (`sys_enter_exit_group`), at an offset.
    Probe(String, usize),
}

/// Deepest nesting of `(` and `!` accepted (far more than the kernel program can hold; the
/// parser recurses on each level).
pub const MAX_DEPTH: usize = 64;

/// Most tokens in one expression (the kernel program holds 32 instructions).
pub const MAX_TOKENS: usize = 1024;

struct Parser<'a> {
    expr: &'a str,
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.expr.len(), |(_, p)| *p)
    }

    fn err(&self, msg: impl Into<String>, hint: impl Into<String>) -> ExprError {
        ExprError::new(self.expr, self.pos(), msg, hint)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Whether the next token is the word `kw` (`then`, `within`: keywords only where a
    /// condition ends or starts, so they stay usable as field names after a `.`).
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == kw)
    }

    fn or(&mut self) -> Result<Ast, ExprError> {
        let mut l = self.and()?;
        while self.eat(&Tok::OrOr) {
            l = Ast::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Ast, ExprError> {
        let mut l = self.unary()?;
        while self.eat(&Tok::AndAnd) {
            l = Ast::And(Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }

    /// One more level of `(` or `!`, refused past [`MAX_DEPTH`].
    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                format!(
                    "the expression nests too deeply: more than {MAX_DEPTH} levels of `(` and `!`"
                ),
                "simplify it, or split it into several --trigger options",
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Ast, ExprError> {
        if self.keyword("then") || self.keyword("within") {
            return Err(self.err(
                "expected a condition here",
                "a sequence is written `A then B within 10ms`, with a condition on each side of `then`",
            ));
        }
        if matches!(self.peek(), Some(Tok::Not)) {
            self.deeper()?;
            self.i += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Ast::Not(Box::new(inner)));
        }
        if matches!(self.peek(), Some(Tok::LParen)) {
            self.deeper()?;
            self.i += 1;
            let inner = self.or()?;
            if self.keyword("then") {
                return Err(super::sequence::nested(self.expr, self.pos()));
            }
            if !self.eat(&Tok::RParen) {
                return Err(self.err("missing `)`", "close the parenthesis"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        let pos = self.pos();
        if let Some(Tok::Ident(name)) = self.peek().cloned()
            && (name == "max" || name == "changed")
            && self
                .toks
                .get(self.i + 1)
                .is_some_and(|(t, _)| *t == Tok::LParen)
        {
            self.i += 2;
            let arg = self.operand()?;
            if !matches!(arg, Operand::Field { .. }) {
                return Err(ExprError::new(
                    self.expr,
                    pos,
                    format!("{name}() takes a field"),
                    format!("write e.g. {name}(PROBE.latency)"),
                ));
            }
            if !self.eat(&Tok::RParen) {
                return Err(self.err("missing `)`", "close the parenthesis"));
            }
            return Ok(if name == "max" {
                Ast::Max(arg, pos)
            } else {
                Ast::Changed(arg, pos)
            });
        }
        if let Some(ast) = self.builtin(pos)? {
            return Ok(ast);
        }
        let lhs = self.operand()?;
        if let Operand::Field { probe: None, name } = &lhs
            && (matches!(
                self.peek(),
                None | Some(Tok::RParen | Tok::AndAnd | Tok::OrOr)
            ) || self.keyword("then")
                || self.keyword("within"))
        {
            return Ok(Ast::Probe(name.clone(), pos));
        }
        if let Some(Tok::Glob(negate)) = self.peek().cloned() {
            self.i += 1;
            let Some(Tok::Str(pattern)) = self.peek().cloned() else {
                return Err(self.err(
                    "`~` takes a string pattern on its right",
                    "write e.g. sys_enter_openat.filename ~ \"/tmp/*.lock\"",
                ));
            };
            self.i += 1;
            return Ok(Ast::Glob {
                lhs,
                pattern,
                negate,
                pos,
            });
        }
        let op = match self.peek() {
            Some(Tok::Cmp(o)) => Some(match *o {
                "==" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            }),
            Some(Tok::Amp) => None,
            _ => return Err(self.err("expected a comparison operator here", "a value alone is not a condition: compare it with == != < <= > >=, test bits with &, or match a string with ~")),
        };
        self.i += 1;
        let rhs = self.operand()?;
        Ok(Ast::Cmp { lhs, op, rhs, pos })
    }

    /// A built-in trigger (`crash`, `oom`, `signal(SIG)`) at the current token, expanded
    /// (see [`builtin`]).
    fn builtin(&mut self, pos: usize) -> Result<Option<Ast>, ExprError> {
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return Ok(None);
        };
        let next = self.toks.get(self.i + 1).map(|(t, _)| t);
        let operator = matches!(next, Some(Tok::Dot | Tok::Cmp(_) | Tok::Amp | Tok::Glob(_)));
        if !builtin::is_keyword(&name, operator) {
            return Ok(None);
        }
        self.i += 1;
        let mut arg = None;
        if self.eat(&Tok::LParen) {
            arg = match self.peek().cloned() {
                Some(Tok::Ident(a)) => Some(a),
                Some(Tok::Int(n)) => Some(n.to_string()),
                _ => None,
            };
            if arg.is_some() {
                self.i += 1;
            }
            if arg.is_some() && !self.eat(&Tok::RParen) {
                return Err(self.err("missing `)`", "write e.g. signal(SIGTERM)"));
            }
        }
        builtin::expand(self.expr, pos, &name, arg.as_deref()).map(Some)
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        match self.peek().cloned() {
            Some(Tok::Int(v)) => {
                self.i += 1;
                Ok(Operand::Int(v))
            }
            Some(Tok::Str(s)) => {
                self.i += 1;
                Ok(Operand::Str(s))
            }
            Some(Tok::Ident(name)) => {
                self.i += 1;
                if self.eat(&Tok::Dot) {
                    match self.peek().cloned() {
                        Some(Tok::Ident(field)) => {
                            self.i += 1;
                            Ok(Operand::Field {
                                probe: Some(name),
                                name: field,
                            })
                        }
                        _ => Err(self.err(
                            "expected a field name after `.`",
                            "write PROBE.FIELD, e.g. vfs_read.ret",
                        )),
                    }
                } else if name == "comm" {
                    Ok(Operand::Comm)
                } else {
                    Ok(Operand::Field { probe: None, name })
                }
            }
            Some(_) => Err(self.err(
                "expected a field or a value here",
                "write PROBE.FIELD, pid, tid, cpu, comm, or a literal",
            )),
            None => Err(self.err("the expression ends too early", "complete the comparison")),
        }
    }
}

/// Parses a trigger condition (no sequence: see [`parse_trigger`]).
pub fn parse(expr: &str) -> Result<Ast, ExprError> {
    match parse_trigger(expr)? {
        (ast, None) => Ok(ast),
        (_, Some(then)) => Err(super::sequence::nested(expr, then.pos)),
    }
}

/// The part of a sequence after `then`: B and the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Then {
    /// B.
    pub ast: Ast,
    /// The window, ns (checked: positive, at most the supported maximum).
    pub within_ns: u64,
    /// Offset of `then`.
    pub pos: usize,
}

/// Parses a trigger: a condition, or a sequence `A then B within T` (A, and the rest).
pub fn parse_trigger(expr: &str) -> Result<(Ast, Option<Then>), ExprError> {
    let toks = lex(expr)?;
    if toks.is_empty() {
        return Err(ExprError::new(
            expr,
            0,
            "empty trigger",
            "write `manual` or a condition such as `vfs_read.ret < 0`",
        ));
    }
    if let Some((_, pos)) = toks.get(MAX_TOKENS) {
        return Err(ExprError::new(
            expr,
            *pos,
            format!("the expression is too long: more than {MAX_TOKENS} tokens"),
            "split it into several --trigger options (any one firing takes the snapshot)",
        ));
    }
    let mut p = Parser {
        expr,
        toks,
        i: 0,
        depth: 0,
    };
    let ast = p.or()?;
    let then = if p.keyword("then") {
        let pos = p.pos();
        p.i += 1;
        if p.peek().is_none() {
            return Err(p.err(
                "`then` needs a condition after it",
                "write `A then B within 10ms`",
            ));
        }
        let b = p.or()?;
        if p.keyword("then") {
            return Err(super::sequence::chained(expr, p.pos()));
        }
        if !p.keyword("within") {
            return Err(p.err(
                "a sequence needs a window: `within` and a duration after its second condition",
                "write `A then B within 10ms` (ns, us, ms, s)",
            ));
        }
        p.i += 1;
        let within_ns = match p.toks.get(p.i) {
            Some((Tok::Int(v), at)) => {
                p.i += 1;
                super::sequence::window(expr, *at, *v)?
            }
            _ => {
                return Err(p.err(
                    "`within` takes a duration",
                    "write e.g. `within 10ms` (ns, us, ms, s)",
                ));
            }
        };
        Some(Then {
            ast: b,
            within_ns,
            pos,
        })
    } else {
        None
    };
    if then.is_some() && p.i < p.toks.len() {
        return Err(p.err(
            "a sequence ends at its window: nothing may follow `within DURATION`",
            "put more conditions inside A or B (in parentheses), or give them their own --trigger",
        ));
    }
    if p.i < p.toks.len() {
        return Err(p.err(
            "unexpected text after the condition",
            "join conditions with && or ||",
        ));
    }
    Ok((ast, then))
}
