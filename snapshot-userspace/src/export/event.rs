//! Events as people and scripts read them: ftrace-like text and JSON objects. Strings and
//! decoded values (errno names, flags, file descriptors' paths) are added by
//! [`super::decode`], which sees the whole snapshot.

use std::collections::BTreeMap;

use snapshot_common::{
    EVENT_HAS_ARGS, EVENT_HAS_DURATION, EVENT_HAS_RET, EVENT_MARKER, Event, MARKER_PROBE, MAX_ARGS,
};

use crate::{probe::ProbeInfo, sys::comm_str};

/// One event, decoded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventView {
    /// Boot-time timestamp, ns.
    pub ts_ns: u64,
    /// CPU.
    pub cpu: u32,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Command name.
    pub comm: String,
    /// Probe name.
    pub probe: String,
    /// Arguments.
    pub args: Vec<u64>,
    /// Return value, when the probe sees one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Time since the matching entry (return probes of an entry/return pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    /// The function a glob probe matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Captured strings and buffers by field name (non-printable bytes escaped, `\xNN`);
    /// null when the pointer was NULL or unreadable (see `unreadable`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub strings: BTreeMap<String, Option<String>>,
    /// The strings cut at `--string-size`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    /// The strings that could not be read, and why (`NULL`, `EFAULT`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, String>,
    /// Values decoded from the raw numbers (which stay in `args` and `ret`): `ret` an errno
    /// name, `flags` open or mmap flags, `dfd` `AT_FDCWD`, `mode` octal, `sig` a signal, `fd`
    /// the path it was opened with in this snapshot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decoded: BTreeMap<String, String>,
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`), for a line of text output:
/// names come from the traced system (a task may name itself with an escape sequence) or from
/// a file, and must neither break a line nor drive the terminal.
#[must_use]
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// The name the marker record of `--on-no-spare stop` shows as its probe.
pub const MARKER_NAME: &str = "no_spare_stop";

/// The probe name of `event`: its probe's, the marker's, or `probeN` for an id the table does
/// not know.
fn probe_name(event: &Event, probe: Option<&ProbeInfo>) -> String {
    match probe {
        Some(p) => p.name.clone(),
        None if event.probe_id == MARKER_PROBE && event.flags & EVENT_MARKER != 0 => {
            MARKER_NAME.to_owned()
        }
        None => format!("probe{}", event.probe_id),
    }
}

/// Decodes `event` with the probe table.
#[must_use]
pub fn view(event: &Event, probes: &[ProbeInfo]) -> EventView {
    let probe = probes.iter().find(|p| p.id == event.probe_id);
    let nargs = if event.flags & EVENT_HAS_ARGS == 0 {
        0
    } else {
        probe.map_or(MAX_ARGS, ProbeInfo::nargs).min(MAX_ARGS)
    };
    EventView {
        ts_ns: event.ts_ns,
        cpu: event.cpu,
        pid: event.tgid(),
        tid: event.tid(),
        comm: comm_str(&event.comm),
        probe: probe_name(event, probe),
        args: event.args[..nargs].to_vec(),
        ret: (event.flags & EVENT_HAS_RET != 0).then_some(event.ret as i64),
        duration_ns: (event.flags & EVENT_HAS_DURATION != 0).then_some(event.duration_ns),
        function: probe
            .and_then(|p| function_at(&p.functions, event.ip))
            .map(str::to_owned),
        strings: BTreeMap::new(),
        truncated: Vec::new(),
        unreadable: BTreeMap::new(),
        decoded: BTreeMap::new(),
    }
}

/// The glob-matched function a probe address is in: the function's own address, or a few
/// bytes into it where the probe sat past its first instruction (`endbr64` on IBT kernels, or
/// a breakpoint's address + 1 on kernels without `bpf_get_func_ip`).
fn function_at(functions: &[(u64, String)], ip: u64) -> Option<&str> {
    /// Past any function's first instruction (`endbr64`: 4 bytes) and within its body.
    const NEAR: u64 = 16;
    functions
        .iter()
        .filter(|(a, _)| ip != 0 && *a <= ip && ip - *a < NEAR)
        .max_by_key(|(a, _)| *a)
        .map(|(_, n)| n.as_str())
}

/// An argument's value as its probe shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgValue {
    /// A signed tracepoint field (`d`).
    Signed(i64),
    /// An unsigned tracepoint field (`u`).
    Unsigned(u64),
    /// Anything else: a raw word, shown in hex.
    Hex(u64),
}

impl std::fmt::Display for ArgValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Signed(v) => write!(f, "{v}"),
            Self::Unsigned(v) => write!(f, "{v}"),
            Self::Hex(v) => write!(f, "{v:#x}"),
        }
    }
}

/// The arguments of `v` by name (tracepoint field names from `probe`, else `arg0`, `arg1`, …)
/// and typed by the probe's formats, as the text export shows them.
#[must_use]
pub fn named_args(v: &EventView, probe: Option<&ProbeInfo>) -> Vec<(String, ArgValue)> {
    let arg_names = probe.map_or(&[][..], |p| p.arg_names.as_slice());
    let formats: Vec<char> = probe.map_or_else(Vec::new, |p| p.arg_formats.chars().collect());
    v.args
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let name = arg_names
                .get(i)
                .map_or_else(|| format!("arg{i}"), Clone::clone);
            let value = match formats.get(i) {
                Some('d') => ArgValue::Signed(a as i64),
                Some('i') => ArgValue::Signed(i64::from(a as u32 as i32)),
                Some('u') => ArgValue::Unsigned(a),
                _ => ArgValue::Hex(a),
            };
            (name, value)
        })
        .collect()
}

/// A field as the text line shows it: a captured string (`"…"`, `"…"...` when cut, `NULL`), a
/// decoded value (`fd=3</etc/hostname>`, `ret=-9 EBADF`, `flags=O_RDONLY|O_CLOEXEC`), or the
/// number.
#[must_use]
pub fn shown(v: &EventView, name: &str, raw: &dyn std::fmt::Display) -> String {
    if let Some(s) = v.strings.get(name) {
        return match (s, v.unreadable.get(name)) {
            (Some(s), _) if v.truncated.iter().any(|t| t == name) => format!("\"{s}\"..."),
            (Some(s), _) => format!("\"{s}\""),
            (None, Some(why)) if why == "NULL" => "NULL".to_owned(),
            (None, why) => format!("{raw} (unreadable: {})", why.map_or("?", String::as_str)),
        };
    }
    match (name, v.decoded.get(name)) {
        ("fd" | "dfd", Some(path)) if path != "AT_FDCWD" => format!("{raw}<{path}>"),
        ("ret", Some(errno)) => format!("{raw} {errno}"),
        (_, Some(d)) => d.clone(),
        (_, None) => raw.to_string(),
    }
}

/// The fields of an event as the text line shows them: `fd=3</etc/hostname> count=16`,
/// `ret=-9 EBADF duration=1.000us`; tracepoint fields by their C type (`probe` gives names
/// and formats), others in hex; strings and decoded values as [`shown`] shows them.
#[must_use]
pub fn fields_text(v: &EventView, probe: Option<&ProbeInfo>) -> String {
    use std::fmt::Write as _;
    let mut line = String::new();
    for (name, value) in named_args(v, probe) {
        let value = shown(v, &name, &value);
        write!(line, " {name}={value}").expect("writing to a String cannot fail");
    }
    if let Some(r) = v.ret {
        let value = shown(v, "ret", &r);
        write!(line, " ret={value}").expect("writing to a String cannot fail");
    }
    if let Some(d) = v.duration_ns {
        write!(line, " duration={}.{:03}us", d / 1000, d % 1000)
            .expect("writing to a String cannot fail");
    }
    if let Some(f) = &v.function {
        write!(line, " function={f}").expect("writing to a String cannot fail");
    }
    if probe.is_none() && v.probe == MARKER_NAME {
        line.push_str(" recording stopped: a trigger found no armed spare (--on-no-spare stop)");
    }
    printable(&line).into_owned()
}

/// ftrace-like line: `comm-tid [cpu] seconds: probe: fd=3 buf=0x7ff.. ret=..` (the fields as
/// [`fields_text`] shows them).
#[must_use]
pub fn text_line(v: &EventView, probe: Option<&ProbeInfo>) -> String {
    let line = format!(
        "{:>16}-{:<7} [{:03}] {}.{:06}: {}:{}",
        v.comm,
        v.tid,
        v.cpu,
        v.ts_ns / 1_000_000_000,
        (v.ts_ns % 1_000_000_000) / 1000,
        v.probe,
        fields_text(v, probe)
    );
    // A task named with control characters cannot break the line or drive the terminal.
    printable(&line).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_events_find_their_function_near_its_address() {
        let f = [(0x1000, "a".to_owned()), (0x1040, "b".to_owned())];
        assert_eq!(super::function_at(&f, 0x1000), Some("a"));
        assert_eq!(super::function_at(&f, 0x1044), Some("b"), "past endbr64");
        assert_eq!(
            super::function_at(&f, 0x1020),
            None,
            "not near a matched function"
        );
        assert_eq!(super::function_at(&f, 0), None);
    }

    use super::*;
    use crate::probe::ProbeSpec;

    #[test]
    fn decodes_and_formats() {
        let spec: ProbeSpec = "tracepoint:syscalls:sys_exit_close".parse().unwrap();
        let mut probes = [ProbeInfo::new(0, &spec, vec!["fd".into()])];
        probes[0].arg_formats = "u".into();
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"work");
        let ev = Event {
            seq: 1,
            ts_ns: 1_500_000_000,
            pid_tgid: (7 << 32) | 9,
            args: [3, 0, 0, 0, 0, 0],
            ret: (-9i64) as u64,
            comm,
            cpu: 1,
            probe_id: 0,
            flags: EVENT_HAS_ARGS | EVENT_HAS_RET,
            pad: 0,
            ..Event::default()
        };
        let v = view(&ev, &probes);
        assert_eq!(
            (v.pid, v.tid, v.comm.as_str(), v.args.as_slice(), v.ret),
            (7, 9, "work", &[3][..], Some(-9))
        );
        let line = text_line(&v, Some(&probes[0]));
        assert!(
            line.ends_with("[001] 1.500000: sys_exit_close: fd=3 ret=-9"),
            "{line}"
        );
        probes[0].arg_formats = "i".into();
        let ev = Event {
            args: [0xffff_ff9c, 0, 0, 0, 0, 0],
            ..ev
        };
        let line = text_line(&view(&ev, &probes), Some(&probes[0]));
        assert!(line.contains(" fd=-100 "), "an int shows signed: {line}");
        // A task named with control characters cannot break the line or drive the terminal.
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"a\x1b[2J\n");
        let line = text_line(&view(&Event { comm, ..ev }, &probes), Some(&probes[0]));
        assert!(line.contains("a\\u{1b}[2J\\n-9 "), "{line}");
        assert!(!line.chars().any(char::is_control), "{line}");
    }
}
