//! Trigger expressions: `manual`, or one comparison on one field of one probe
//! (`sys_exit_openat.ret < 0`, `snapshot_workload_fn.arg1 == 1`), compiled into the
//! [`Trigger`] the probes evaluate in the kernel.

use snapshot_common::{CmpOp, FIELD_RET, MAX_ARGS, Trigger};

use crate::event::ProbeInfo;

/// A parsed trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerExpr {
    /// Only SIGUSR1 / `snapshot trigger` take snapshots.
    Manual,
    /// `probe.field OP value`.
    Compare {
        /// Probe name.
        probe: String,
        /// Field name (`argN`, `ret`, or a tracepoint field).
        field: String,
        /// Operator.
        op: CmpOp,
        /// Right-hand side.
        value: i64,
    },
}

/// Why an expression was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TriggerError {
    /// Not `PROBE.FIELD OP VALUE`.
    #[error(
        "bad trigger `{0}`: write `manual` or PROBE.FIELD OP VALUE, e.g. `sys_exit_openat.ret < 0` (OP is one of == != < <= > >=)"
    )]
    Syntax(String),
    /// The value is not an integer.
    #[error(
        "bad value `{value}` in trigger `{expr}`: write a decimal or 0x-prefixed hex integer, optionally negative"
    )]
    Value {
        /// Value text.
        value: String,
        /// Whole expression.
        expr: String,
    },
    /// Unknown probe.
    #[error("trigger names probe `{probe}`, which is not among the probes: {known}")]
    UnknownProbe {
        /// Name used.
        probe: String,
        /// Valid names.
        known: String,
    },
    /// Unknown field.
    #[error("probe `{probe}` has no field `{field}`: valid fields are {known}")]
    UnknownField {
        /// Probe.
        probe: String,
        /// Field used.
        field: String,
        /// Valid fields.
        known: String,
    },
}

const OPS: [(&str, CmpOp); 6] = [
    ("==", CmpOp::Eq),
    ("!=", CmpOp::Ne),
    ("<=", CmpOp::Le),
    (">=", CmpOp::Ge),
    ("<", CmpOp::Lt),
    (">", CmpOp::Gt),
];

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = text.strip_prefix('-').map_or((false, text), |d| (true, d));
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    if neg {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        Some(magnitude as i64)
    }
}

impl std::str::FromStr for TriggerExpr {
    type Err = TriggerError;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        let text = expr.trim();
        if text == "manual" {
            return Ok(Self::Manual);
        }
        let syntax = || TriggerError::Syntax(expr.to_owned());
        let (at, op_text, op) = OPS
            .iter()
            .filter_map(|(t, op)| text.find(t).map(|i| (i, *t, *op)))
            .min_by_key(|(i, t, _)| (*i, usize::MAX - t.len()))
            .ok_or_else(syntax)?;
        let (lhs, rhs) = (text[..at].trim(), text[at + op_text.len()..].trim());
        let (probe, field) = lhs.rsplit_once('.').ok_or_else(syntax)?;
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        if !ident(probe) || !ident(field) || rhs.is_empty() {
            return Err(syntax());
        }
        let value = parse_int(rhs).ok_or_else(|| TriggerError::Value {
            value: rhs.to_owned(),
            expr: expr.to_owned(),
        })?;
        Ok(Self::Compare {
            probe: probe.to_owned(),
            field: field.to_owned(),
            op,
            value,
        })
    }
}

fn field_names(p: &ProbeInfo) -> Vec<String> {
    let mut names: Vec<String> = (0..p.nargs()).map(|i| format!("arg{i}")).collect();
    names.extend(p.arg_names.iter().cloned());
    if p.kind.is_return() || p.kind == crate::spec::ProbeKind::Tracepoint {
        names.push("ret".to_owned());
    }
    names
}

/// Index of `field` in the events of `info`: an argument, or [`FIELD_RET`].
fn field_index(info: &ProbeInfo, field: &str) -> Option<u32> {
    if field == "ret" {
        return field_names(info)
            .iter()
            .any(|f| f == "ret")
            .then_some(FIELD_RET);
    }
    if let Some(n) = field
        .strip_prefix("arg")
        .and_then(|n| n.parse::<usize>().ok())
    {
        return (n < info.nargs().min(MAX_ARGS)).then_some(n as u32);
    }
    info.arg_names
        .iter()
        .position(|a| a == field)
        .map(|n| n as u32)
}

impl TriggerExpr {
    /// Compiles the expression against the probe table into the kernel-side condition
    /// (disabled for `manual`).
    pub fn compile(&self, probes: &[ProbeInfo]) -> Result<Trigger, TriggerError> {
        let Self::Compare {
            probe,
            field,
            op,
            value,
        } = self
        else {
            return Ok(Trigger::default());
        };
        // Entry and return probes of one function share its name: take the one with the field.
        let named: Vec<&ProbeInfo> = probes.iter().filter(|p| &p.name == probe).collect();
        if named.is_empty() {
            return Err(TriggerError::UnknownProbe {
                probe: probe.clone(),
                known: probes
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let (info, index) = named
            .iter()
            .find_map(|info| field_index(info, field).map(|i| (*info, i)))
            .ok_or_else(|| {
                let mut known: Vec<String> = named.iter().flat_map(|p| field_names(p)).collect();
                known.dedup();
                TriggerError::UnknownField {
                    probe: probe.clone(),
                    field: field.clone(),
                    known: known.join(", "),
                }
            })?;
        Ok(Trigger {
            enabled: 1,
            probe_id: info.id,
            field: index,
            op: *op as u32,
            value: *value as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ProbeSpec;

    fn probes() -> Vec<ProbeInfo> {
        let tp: ProbeSpec = "tracepoint:syscalls:sys_exit_openat".parse().unwrap();
        let up: ProbeSpec = "f=uprobe:/bin/x:work".parse().unwrap();
        let close: ProbeSpec = "tracepoint:syscalls:sys_enter_close".parse().unwrap();
        vec![
            ProbeInfo::new(0, &tp, vec![]),
            ProbeInfo::new(1, &up, vec![]),
            ProbeInfo::new(2, &close, vec!["fd".into()]),
        ]
    }

    #[test]
    fn parses_and_compiles() {
        let t: TriggerExpr = "sys_exit_openat.ret < 0".parse().unwrap();
        assert_eq!(
            t.compile(&probes()).unwrap(),
            Trigger {
                enabled: 1,
                probe_id: 0,
                field: FIELD_RET,
                op: CmpOp::Lt as u32,
                value: 0
            }
        );
        let t: TriggerExpr = "f.arg1>=0x10".parse().unwrap();
        assert_eq!(
            t.compile(&probes()).unwrap(),
            Trigger {
                enabled: 1,
                probe_id: 1,
                field: 1,
                op: CmpOp::Ge as u32,
                value: 16
            }
        );
        let t: TriggerExpr = "sys_enter_close.fd == -9".parse().unwrap();
        assert_eq!(t.compile(&probes()).unwrap().value, (-9i64) as u64);
        assert_eq!(
            "manual"
                .parse::<TriggerExpr>()
                .unwrap()
                .compile(&probes())
                .unwrap()
                .enabled,
            0
        );
        let t: TriggerExpr = "f.arg0 != 3".parse().unwrap();
        assert!(matches!(t, TriggerExpr::Compare { op: CmpOp::Ne, .. }));
    }

    #[test]
    fn entry_and_return_probes_of_one_function_share_its_name() {
        let k: ProbeSpec = "kprobe:vfs_write".parse().unwrap();
        let r: ProbeSpec = "kretprobe:vfs_write".parse().unwrap();
        let probes = [ProbeInfo::new(0, &k, vec![]), ProbeInfo::new(1, &r, vec![])];
        let ret: TriggerExpr = "vfs_write.ret > 5".parse().unwrap();
        assert_eq!(ret.compile(&probes).unwrap().probe_id, 1);
        let arg: TriggerExpr = "vfs_write.arg2 > 5".parse().unwrap();
        assert_eq!(arg.compile(&probes).unwrap().probe_id, 0);
    }

    #[test]
    fn errors_name_the_valid_choices() {
        let err = "nope.ret < 0"
            .parse::<TriggerExpr>()
            .unwrap()
            .compile(&probes())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`sys_exit_openat`, `f`, `sys_enter_close`"),
            "{err}"
        );
        let err = "f.ret < 0"
            .parse::<TriggerExpr>()
            .unwrap()
            .compile(&probes())
            .unwrap_err();
        assert!(matches!(err, TriggerError::UnknownField { .. }), "{err}");
        assert!(err.to_string().contains("arg0, arg1"), "{err}");
        assert!(matches!(
            "f.arg1 = 1".parse::<TriggerExpr>(),
            Err(TriggerError::Syntax(_))
        ));
        assert!(matches!(
            "f.arg1 == one".parse::<TriggerExpr>(),
            Err(TriggerError::Value { .. })
        ));
        assert!(matches!(
            "arg1 == 1".parse::<TriggerExpr>(),
            Err(TriggerError::Syntax(_))
        ));
    }
}
