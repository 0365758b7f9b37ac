//! The probe table: what is known about each probe when its events are decoded. Every
//! snapshot file carries it, so a snapshot reads the same on any machine.

use snapshot_common::MAX_ARGS;

use super::{
    capture::Capture,
    spec::{ProbeKind, ProbeSpec},
};

/// What is known about a probe when decoding its events.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeInfo {
    /// Probe id (slot).
    pub id: u32,
    /// Display name (alias, function, tracepoint or symbol).
    pub name: String,
    /// The spec as given.
    pub spec: String,
    /// Kind.
    pub kind: ProbeKind,
    /// Names of the argument fields, where known (tracepoints).
    pub arg_names: Vec<String>,
    /// How each named argument is shown: `x` hex, `d` signed, `u` unsigned (tracepoints).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arg_formats: String,
    /// Kernel functions a glob matched, by address (events carry the address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<(u64, String)>,
    /// Strings and buffers its events carry (in the order of their payload slots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<Capture>,
    /// Its return value is an errno when negative (syscalls, kernel functions returning
    /// `int` or `long`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ret_errno: bool,
    /// Kernel functions: the argument names are the function's parameters (from BTF), so its
    /// events carry that many arguments.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub named_params: bool,
}

impl ProbeInfo {
    /// Builds the info of probe `id`.
    #[must_use]
    pub fn new(id: u32, spec: &ProbeSpec, arg_names: Vec<String>) -> Self {
        Self {
            id,
            name: spec.name().to_owned(),
            spec: spec.text.clone(),
            kind: spec.kind,
            arg_names,
            arg_formats: String::new(),
            functions: Vec::new(),
            captures: Vec::new(),
            ret_errno: false,
            named_params: false,
        }
    }

    /// How many argument words its events carry.
    #[must_use]
    pub fn nargs(&self) -> usize {
        match self.kind {
            ProbeKind::Tracepoint => self.arg_names.len(),
            _ if self.named_params => self.arg_names.len(),
            ProbeKind::Rawtp => 2,
            ProbeKind::Kretprobe | ProbeKind::Uretprobe => 0,
            _ => MAX_ARGS,
        }
    }
}
